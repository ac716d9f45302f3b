"""billing_event v1: what producers write to Kafka, one JSON object per message.

Bounds are part of the contract (an event outside them is rejected with the field and the
bound in the reason). Token buckets are disjoint: ``input_tokens`` excludes
``cached_input_tokens`` and ``cache_write_tokens``. Decimal quantities (durations, months)
carry at most 3 decimal places, no exponent and no negative zero, and are kept canonical; send
them as JSON strings when the exact text matters (JSON numbers with more than 15 significant
digits cannot be told apart from their float). ``ts`` is an instant (judged in UTC) with at most
microsecond precision. Label values hold no control or format characters (FORBIDDEN_CHARS).
Strict JSON (no repeated keys, no NaN) is checked before the models, in schemas/validate.py.

Version 1.1 (SCHEMA_MINOR) is additive: usage buckets for 1-hour cache writes, audio and image
tokens and server-tool requests, and the event's ``service_tier`` and ``inference_geo``, each
judged from an allow-list. Every 1.0 event is a 1.1 event and is priced exactly as before."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any, Literal, cast

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    StringConstraints,
    model_validator,
)
from pydantic_core import CoreSchema

SCHEMA_VERSION = 1
SCHEMA_MINOR = 1  # additive changes within v1: a 1.0 event is valid and priced the same (see the docstring)
MAX_EVENT_BYTES = 1_048_576  # a whole serialized event, without its line ending (the one limit)
MAX_FUTURE = dt.timedelta(minutes=15)  # clock skew allowed for `ts` ahead of the receiver
EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)  # no ts before this instant

# The service tiers each provider names, its standard (list-price) tier first: a value is judged
# from this allow-list, never priced as standard unless it is the standard. Sources:
# openai-python types/responses/service_tier.py (default, flex, priority; auto, scale, fast and
# ultrafast are not priced here); anthropic-sdk-python types/usage.py (standard, priority; batch is
# `mode`); Amazon Bedrock's service tiers (Standard, Priority, Flex; the API's `default` is
# standard, `reserved` is not priced here). Whether a product prices a tier is the catalog's say.
SERVICE_TIERS: dict[str, tuple[str, ...]] = {
    "openai": ("default", "flex", "priority"),
    "anthropic": ("standard", "priority"),
    "bedrock": ("standard", "priority", "flex"),
}
ServiceTier = Literal["default", "standard", "flex", "priority"]
# Where inference ran, per provider, the default (list-price) geography first: Anthropic's
# `inference_geo` (https://platform.claude.com/docs/en/build-with-claude/data-residency).
INFERENCE_GEOS: dict[str, tuple[str, ...]] = {"anthropic": ("global", "us")}
InferenceGeo = Literal["global", "us"]

# Characters no id or label may hold: Unicode categories Cc (C0, DEL, C1 controls), Cf (format:
# bidi embeddings, overrides, isolates and marks, zero-width characters, soft hyphen, BOM, tags),
# Cs (surrogates), Co (private use), Zl and Zp (line and paragraph separators).
# tests/unit/test_strict_input.py checks the ranges against the running Python's Unicode data.
FORBIDDEN_CHARS = re.compile(
    "[\x00-\x1f\x7f-\x9f\xad\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2\u180e"
    "\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ud800-\uf8ff\ufeff\ufff9-\ufffb"
    "\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0001\U000e0020-\U000e007f\U000f0000-\U0010ffff]"
)

_ID = r"^[\x21-\x7e]+$"  # printable ASCII, no spaces or control characters
Id = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=_ID)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=_ID)]
Region = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9-]+$")]


def _canonical(v: Decimal) -> Decimal:
    """A quantity as a plain decimal of at most 3 places, kept in canonical form ("2.50" -> 2.5,
    "100.0" -> 100): no exponent notation, no negative zero, nothing stored as sent."""
    sign, digits, exponent = v.as_tuple()
    if exponent < -3:  # type: ignore[operator]
        raise ValueError("at most 3 decimal places")
    if exponent > 0:  # type: ignore[operator]
        raise ValueError("a positive exponent is not allowed: write the plain decimal")
    if sign:  # negative values fail `ge=0` first: this is -0
        raise ValueError("negative zero is not a quantity")
    if len(digits) > 20:
        raise ValueError("too many digits")
    n = v.normalize()  # exact: at most 20 digits
    return n if n.as_tuple().exponent <= 0 else n.quantize(Decimal(1))  # type: ignore[operator]


def _printable(v: str) -> str:
    m = FORBIDDEN_CHARS.search(v)
    if m is not None:
        raise ValueError(f"must not contain control or format characters (U+{ord(m.group()):04X})")
    return v


class _Microseconds:
    """A datetime with at most 6 fractional second digits: more is an error, not truncated."""

    def __get_pydantic_core_schema__(self, source: object, handler: GetCoreSchemaHandler) -> CoreSchema:
        schema = handler(source)
        cast(dict[str, Any], schema)["microseconds_precision"] = "error"  # pydantic-core's datetime option
        return schema


Timestamp = Annotated[dt.datetime, _Microseconds()]


def count(le: int) -> Any:
    return Field(default=None, ge=0, le=le)


Quantity = Annotated[Decimal, Field(ge=0, allow_inf_nan=False), AfterValidator(_canonical)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ImageUsage(_Strict):
    count: int = Field(ge=1, le=10_000)
    width: int = Field(ge=1, le=10_000)
    height: int = Field(ge=1, le=10_000)
    steps: int | None = Field(default=None, ge=1, le=500)


class TrainingUsage(_Strict):
    """Either a token-priced training run (tokens × epochs) or an images-seen one."""

    tokens: int | None = Field(default=None, ge=0, le=10**12)
    epochs: int = Field(default=1, ge=1, le=100)
    method: Literal["sft", "dpo"] = "sft"
    images_seen: int | None = Field(default=None, ge=0, le=10**9)

    @model_validator(mode="after")
    def _one_kind(self) -> TrainingUsage:
        if (self.tokens is None) == (self.images_seen is None):
            raise ValueError("training needs exactly one of `tokens` or `images_seen`")
        return self


class DedicatedUsage(_Strict):
    """Dedicated capacity: Bailian instances (compute units) or Bedrock model units."""

    instances: int = Field(default=1, ge=1, le=1_000)
    hours: Annotated[Quantity, Field(le=100_000)] | None = None
    months: Annotated[Quantity, Field(le=120)] | None = None
    commitment: Literal["none", "1m", "6m"] = "none"

    @model_validator(mode="after")
    def _one_period(self) -> DedicatedUsage:
        if (self.hours is None) == (self.months is None):
            raise ValueError("dedicated needs exactly one of `hours` or `months`")
        return self


class GuardrailPolicy(str, Enum):
    content_filter = "content_filter"
    denied_topics = "denied_topics"
    sensitive_info = "sensitive_info"
    sensitive_info_regex = "sensitive_info_regex"
    word_filter = "word_filter"
    contextual_grounding = "contextual_grounding"


class GuardrailUsage(_Strict):
    """Text units are ``ceil(chars / 1000)``, for input and output text separately."""

    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)  # policies from JSON strings
    policies: list[GuardrailPolicy] = Field(min_length=1, max_length=6)
    input_chars: int = Field(default=0, ge=0, le=100_000_000, strict=True)
    output_chars: int = Field(default=0, ge=0, le=100_000_000, strict=True)

    @model_validator(mode="after")
    def _distinct(self) -> GuardrailUsage:
        if len(set(self.policies)) != len(self.policies):
            raise ValueError("guardrail policies must not repeat")
        return self

    @property
    def input_units(self) -> int:
        return -(-self.input_chars // 1000)

    @property
    def output_units(self) -> int:
        return -(-self.output_chars // 1000)


class ServerToolRequests(_Strict):
    """Requests to a provider's server-side tools, billed per request on top of tokens. The keys
    are the allow-list: a tool not named here is rejected (a catalog prices each with `tool:`)."""

    web_search: int | None = count(1_000_000)

    def has_quantity(self) -> bool:
        return bool(self.web_search)


class Usage(_Strict):
    input_tokens: int | None = count(100_000_000)
    output_tokens: int | None = count(100_000_000)
    cached_input_tokens: int | None = count(100_000_000)
    cache_write_tokens: int | None = count(100_000_000)
    images: list[ImageUsage] | None = Field(default=None, min_length=1, max_length=100)
    audio_seconds: Annotated[Quantity, Field(le=3_000_000)] | None = None
    training: TrainingUsage | None = None
    storage_months: Annotated[Quantity, Field(le=120)] | None = None
    dedicated: DedicatedUsage | None = None
    guardrail: GuardrailUsage | None = None
    human_tasks: int | None = count(10_000_000)
    # Of output_tokens, those the model spent reasoning: a count to see, priced as output
    # (OpenAI's completion_tokens_details.reasoning_tokens are part of completion_tokens).
    reasoning_tokens: int | None = count(100_000_000)
    # 1.1: buckets disjoint from the ones above, each priced apart where the catalog prices it
    cache_write_1h_tokens: int | None = count(100_000_000)  # 1-hour cache writes (cache_write_tokens: 5-minute)
    audio_input_tokens: int | None = count(100_000_000)  # not in input_tokens
    audio_output_tokens: int | None = count(100_000_000)  # not in output_tokens
    image_input_tokens: int | None = count(100_000_000)  # not in input_tokens
    image_output_tokens: int | None = count(100_000_000)  # not in output_tokens
    server_tool_requests: ServerToolRequests | None = None

    @model_validator(mode="after")
    def _reasoning_within_output(self) -> Usage:
        if self.reasoning_tokens and self.reasoning_tokens > (self.output_tokens or 0):
            raise ValueError("reasoning_tokens are part of output_tokens: they cannot exceed them")
        return self

    def has_quantity(self) -> bool:
        t = self.training
        d = self.dedicated
        g = self.guardrail
        return bool(
            self.input_tokens
            or self.output_tokens
            or self.cached_input_tokens
            or self.cache_write_tokens
            or self.images
            or self.audio_seconds
            or (t is not None and (t.tokens or t.images_seen))
            or self.storage_months
            or (d is not None and (d.hours or d.months))
            or (g is not None and (g.input_chars or g.output_chars))
            or self.human_tasks
            or self.cache_write_1h_tokens
            or self.audio_input_tokens
            or self.audio_output_tokens
            or self.image_input_tokens
            or self.image_output_tokens
            or (self.server_tool_requests is not None and self.server_tool_requests.has_quantity())
        )


class TextPayload(_Strict):
    """Only for counting tokens when a count is absent; never stored, logged or forwarded."""

    input: str | None = Field(default=None, max_length=500_000)
    output: str | None = Field(default=None, max_length=500_000)


LabelKey = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:/-]+$")]
LabelValue = Annotated[str, StringConstraints(max_length=256), AfterValidator(_printable)]


# schemas.validate.parse_common re-checks the common shape by hand (rate()'s fast path): keep the
# two in step; tests/unit/test_rating_fastpath.py compares them.
class BillingEvent(_Strict):
    event_id: Id
    ts: Timestamp
    tenant_id: Name
    user_id: Name
    provider: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9_-]+$")]
    model: Name
    region: Region | None = None
    mode: Literal["realtime", "batch"] = "realtime"
    service_tier: ServiceTier | None = None  # 1.1; absent: the provider's standard tier
    inference_geo: InferenceGeo | None = None  # 1.1; absent: the provider's default geography
    usage: Usage
    text: TextPayload | None = None
    labels: dict[LabelKey, LabelValue] | None = Field(default=None, max_length=32)

    @model_validator(mode="after")
    def _check(self) -> BillingEvent:
        if self.ts.tzinfo is None:
            raise ValueError("ts must carry a UTC offset (RFC 3339)")
        if self.ts < EARLIEST:  # the instant, whatever the offset
            raise ValueError("ts is before 2000 (UTC)")
        if self.service_tier is not None:
            tiers = SERVICE_TIERS.get(self.provider, ())
            if self.service_tier not in tiers:
                raise ValueError(
                    f"service_tier {self.service_tier!r} is not one of {self.provider}'s service tiers"
                    + (f" ({', '.join(tiers)})" if tiers else " (it names none)")
                )
            if self.mode == "batch" and self.service_tier != tiers[0]:
                raise ValueError(f"a batch request has no service tier but the standard ({tiers[0]})")
        if self.inference_geo is not None:
            geos = INFERENCE_GEOS.get(self.provider, ())
            if self.inference_geo not in geos:
                raise ValueError(
                    f"inference_geo {self.inference_geo!r} is not one of {self.provider}'s inference geographies"
                    + (f" ({', '.join(geos)})" if geos else " (it names none)")
                )
        text = self.text
        from_text = text is not None and (
            (text.input and self.usage.input_tokens is None) or (text.output and self.usage.output_tokens is None)
        )
        if not (self.usage.has_quantity() or from_text):
            raise ValueError("usage has no quantity above zero")
        return self
