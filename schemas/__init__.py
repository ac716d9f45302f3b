"""The billing_event contract (v1): pydantic models and the published JSON Schema."""

from schemas.billing_event import (
    BillingEvent,
    DedicatedUsage,
    GuardrailPolicy,
    GuardrailUsage,
    ImageUsage,
    TextPayload,
    TrainingUsage,
    Usage,
)

__all__ = [
    "BillingEvent",
    "DedicatedUsage",
    "GuardrailPolicy",
    "GuardrailUsage",
    "ImageUsage",
    "TextPayload",
    "TrainingUsage",
    "Usage",
]
