"""The billing_event contract (v1, minor version 1.1): pydantic models and the published JSON Schema."""

from schemas.billing_event import (
    BillingEvent,
    DedicatedUsage,
    GuardrailPolicy,
    GuardrailUsage,
    ImageUsage,
    ServerToolRequests,
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
    "ServerToolRequests",
    "TextPayload",
    "TrainingUsage",
    "Usage",
]
