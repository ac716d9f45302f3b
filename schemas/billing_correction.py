"""The billing_correction record (v1): void an event, or replace its usage, by (tenant_id,
event_id), with a reason and an author. Published as JSON Schema
(schemas/billing_correction.v1.schema.json, ``python -m schemas.export``).

``meterstream correct`` takes them (a JSON Lines file, or one from its flags). The original
ledger row is kept: the pipeline writes a row holding the difference, so the rollups, budgets
and alerts move by exactly that (docs/fixing-the-past.md). `correction_id` makes a correction
idempotent: the same one given again changes nothing."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, StringConstraints, model_validator

from schemas.billing_event import Id, Name, Usage, _printable, _Strict

CORRECTION_VERSION = 1

Reason = Annotated[str, StringConstraints(min_length=1, max_length=1024), AfterValidator(_printable)]


class BillingCorrection(_Strict):
    """One correction of one counted event."""

    correction_id: Id  # the author's id for this correction: given twice, it is applied once
    tenant_id: Name
    event_id: Id
    action: Literal["void", "replace"]
    usage: Usage | None = None  # replace: the event's whole usage as it should have been
    reason: Reason
    author: Name

    @model_validator(mode="after")
    def _check(self) -> BillingCorrection:
        if self.action == "replace" and self.usage is None:
            raise ValueError("a replace names the event's new usage")
        if self.action == "void" and self.usage is not None:
            raise ValueError("a void takes no usage")
        if self.usage is not None and not self.usage.has_quantity():
            raise ValueError("usage has no quantity above zero (void the event instead)")
        return self
