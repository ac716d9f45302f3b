"""Price catalogs: YAML data files (pricing/catalogs/FORMAT.md) loaded into an index.

Catalog files are data, not code: every price carries its source and effective dates, and the
engine looks prices up by (provider, product, time, dimension, qualifiers)."""

from __future__ import annotations

import bisect
import datetime as dt
import difflib
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pricing.errors import CatalogError, PricingError
from schemas.billing_event import INFERENCE_GEOS, SERVICE_TIERS
from schemas.validate import quoted

SHIPPED_CATALOGS = Path(__file__).parent / "catalogs"

Dimension = Literal[
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "images",
    "audio_seconds",
    "training_tokens",
    "training_images_seen",
    "storage_months",
    "dedicated_hours",
    "dedicated_months",
    "guardrail_text_units",
    "human_tasks",
    # billing_event 1.1
    "cache_write_1h_tokens",
    "audio_input_tokens",
    "audio_output_tokens",
    "image_input_tokens",
    "image_output_tokens",
    "server_tool_requests",
]
TOKEN_DIMENSIONS = frozenset(
    {
        "input_tokens",
        "output_tokens",
        "cached_input_tokens",
        "cache_write_tokens",
        "cache_write_1h_tokens",
        "audio_input_tokens",
        "audio_output_tokens",
        "image_input_tokens",
        "image_output_tokens",
    }
)
# server-side tools priced per request (`tool:` on a server_tool_requests price): the event's
# usage.server_tool_requests keys (schemas.billing_event.ServerToolRequests)
Tool = Literal["web_search"]
# dimensions whose quantities are decimals (up to 3 places); the others count whole units
DECIMAL_DIMENSIONS = frozenset({"audio_seconds", "storage_months", "dedicated_hours", "dedicated_months"})
# What a product is; a guardrails product lists the kinds of invocation it applies to (`applies_to`).
Kind = Literal["text", "embedding", "image", "video", "guardrail", "evaluation"]
RegionId = Annotated[str, Field(pattern=r"^[a-z0-9-]{1,64}$")]  # the event's `region` constraint
MAX_UNIT_PRICE_PLACES = 9  # price/per; with quantities of <= 3 places, costs stay within 12
ProfilePrefix = Annotated[str, Field(pattern=r"^[a-z]{2,8}(-[a-z]{2,8})?$")]  # us, eu, apac, global, us-gov
ONE = Decimal(1)


def check_range(start: dt.datetime, end: dt.datetime | None) -> None:
    """An effective range [start, end): both with a UTC offset, end after start."""
    for t in (start, end):
        if t is not None and t.tzinfo is None:
            raise ValueError("effective dates need a UTC offset")
    if end is not None and end <= start:
        raise ValueError("effective_to must be after effective_from")


def _places(d: Decimal) -> int:
    """Decimal places of an exact value (0 for an integer)."""
    return max(0, -d.normalize().as_tuple().exponent)  # type: ignore[operator]


def _exact(value: Any, what: str) -> Decimal:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a quoted decimal string, not {type(value).__name__} {value!r}")
    try:
        d = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{what} is not a decimal: {value!r}") from None
    if not d.is_finite() or d < 0:
        raise ValueError(f"{what} must be finite and >= 0: {value!r}")
    return d


class Rounding(BaseModel):
    """How the provider rounds a decimal quantity (a duration) before pricing it, as its own page
    states it (FORMAT.md, "Rounding"): to a multiple of ``unit``, ``up``, ``down``, ``half_up``,
    ``half_even`` or ``nearest`` (a tie exactly halfway is refused: the page says no rule for it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    unit: Decimal
    mode: Literal["up", "down", "nearest", "half_up", "half_even"]

    @field_validator("unit", mode="before")
    @classmethod
    def _unit(cls, v: Any) -> Decimal:
        d = _exact(v, "rounding unit")
        if d <= 0:
            raise ValueError("rounding unit must be > 0")
        return d

    def apply(self, qty: Decimal) -> Decimal:
        """``qty`` rounded to a multiple of the unit, exactly (no float)."""
        steps = qty / self.unit
        if self.mode == "nearest" and steps - steps.to_integral_value(rounding=ROUND_FLOOR) == Decimal("0.5"):
            raise PricingError(
                f"{qty} is halfway between two multiples of {self.unit}: the provider rounds to the "
                "nearest and states no rule for a tie"
            )
        return steps.to_integral_value(rounding=ROUNDING_MODES[self.mode]) * self.unit


# nearest: a tie is refused above, so the tie rule below never decides
ROUNDING_MODES = {
    "up": ROUND_CEILING,
    "down": ROUND_FLOOR,
    "nearest": ROUND_HALF_EVEN,
    "half_up": ROUND_HALF_UP,
    "half_even": ROUND_HALF_EVEN,
}


class PriceSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    dimension: Dimension
    per: int = Field(ge=1)
    price: Decimal
    regions: tuple[RegionId, ...] | None = None
    max_width: int | None = None
    max_height: int | None = None
    min_steps: int | None = None
    max_steps: int | None = None
    method: Literal["sft", "dpo"] | None = None
    commitment: Literal["none", "1m", "6m"] | None = None
    compute_units: int | None = Field(default=None, ge=1)
    policy: (
        Literal[
            "content_filter",
            "denied_topics",
            "sensitive_info",
            "sensitive_info_regex",
            "word_filter",
            "contextual_grounding",
        ]
        | None
    ) = None
    # long-context tier: this price applies to a request whose input size (input + cached input +
    # cache write tokens) is above this many tokens, to the whole request, as providers bill it
    above_input_tokens: int | None = Field(default=None, ge=1)
    # a service tier's own price (the product's `service_tiers` declares it, with its source);
    # absent: the standard tier's
    service_tier: str | None = Field(default=None, pattern=r"^[a-z]{1,16}$")
    # server_tool_requests: the tool this price is for (required there, nowhere else)
    tool: Tool | None = None
    # the provider's stated rounding of a decimal quantity (audio_seconds ...) before pricing
    rounding: Rounding | None = None

    @field_validator("price", mode="before")
    @classmethod
    def _price(cls, v: Any) -> Decimal:
        return _exact(v, "price")

    @model_validator(mode="after")
    def _qualifiers(self) -> PriceSpec:
        if (self.tool is None) != (self.dimension != "server_tool_requests"):
            raise ValueError("a server_tool_requests price names its `tool`, and only it does")
        if self.service_tier is not None and self.dimension not in TOKEN_DIMENSIONS:
            raise ValueError(f"a service tier prices token dimensions only, not {self.dimension}")
        return self

    @model_validator(mode="after")
    def _places(self) -> PriceSpec:
        if self.rounding is not None and self.dimension not in DECIMAL_DIMENSIONS:
            raise ValueError(f"rounding applies to decimal quantities only, not {self.dimension}")
        unit = self.price / self.per
        if unit.normalize().as_tuple().exponent < -MAX_UNIT_PRICE_PLACES:  # type: ignore[operator]
            raise ValueError(f"price/per has more than {MAX_UNIT_PRICE_PLACES} decimal places")
        return self


class Tokenizer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    encoding: str
    exact: bool


class Modifier(BaseModel):
    """A service tier or an inference geography a product prices apart from its list prices, with
    the page that says so: a `factor` on every token price, or (service tiers only, no factor)
    prices of its own qualified by `service_tier:`. `effective_from`: priced from then on (absent:
    as long as the product's entry)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    factor: Decimal | None = None
    source: str = Field(min_length=1)
    effective_from: dt.datetime | None = None

    @field_validator("factor", mode="before")
    @classmethod
    def _factor(cls, v: Any) -> Decimal | None:
        return None if v is None else _exact(v, "factor")

    @model_validator(mode="after")
    def _aware(self) -> Modifier:
        if self.effective_from is not None and self.effective_from.tzinfo is None:
            raise ValueError("effective dates need a UTC offset")
        return self


class ProductSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str
    name: str | None = None
    aliases: tuple[str, ...] = ()
    effective_from: dt.datetime
    effective_to: dt.datetime | None = None
    source: str = Field(min_length=1)
    # the day the source's prices were read (YYYY-MM-DD): `catalog validate` warns when the entry
    # prices events more than a stated age after it (pricing/staleness.py)
    source_date: dt.date | None = None
    kind: Kind | None = None  # None: unknown (a guardrail with `applies_to` then does not apply)
    applies_to: tuple[Kind, ...] | None = None  # a guardrails product: the invocation kinds it applies to
    regions: tuple[RegionId, ...] | None = None  # None: the provider's regions, and `region` may be absent
    batch_factor: Decimal | None = None
    # Bedrock cross-region inference profiles: `<prefix>.<id>` resolves to this product, its token
    # prices times the factor (the price of the Region the call was made from, then the factor)
    profiles: dict[ProfilePrefix, Decimal] | None = None
    profile_only: bool = False  # the bare id is not invoked on demand: only through a profile
    # service tiers other than the standard one (the event's `service_tier`), and inference
    # geographies other than the default (its `inference_geo`), this product prices
    service_tiers: dict[str, Modifier] | None = None
    inference_geos: dict[str, Modifier] | None = None
    tokenizer: Tokenizer | None = None
    prices: tuple[PriceSpec, ...] = Field(min_length=1)

    @field_validator("batch_factor", mode="before")
    @classmethod
    def _factor(cls, v: Any) -> Decimal | None:
        return None if v is None else _exact(v, "batch_factor")

    @field_validator("profiles", mode="before")
    @classmethod
    def _profiles(cls, v: Any) -> Any:
        if v is None:
            return None
        if not isinstance(v, dict) or not v:
            raise ValueError("profiles must map profile prefixes (us, eu, apac, global, ...) to factors")
        return {k: _exact(f, f"profile {k!r} factor") for k, f in v.items()}

    @model_validator(mode="after")
    def _tiers_and_factors(self) -> ProductSpec:
        if self.profile_only and not self.profiles:
            raise ValueError("profile_only needs profiles")
        base = {p.dimension for p in self.prices if p.above_input_tokens is None and p.dimension in TOKEN_DIMENSIONS}
        tiers = sorted({p.above_input_tokens for p in self.prices if p.above_input_tokens is not None})
        service = self.service_tiers or {}
        if undeclared := sorted({p.service_tier for p in self.prices if p.service_tier} - service.keys()):
            raise ValueError(f"prices for the service tier {undeclared[0]!r}, which service_tiers does not declare")
        for name, geo in (self.inference_geos or {}).items():
            if geo.factor is None:
                raise ValueError(f"inference geography {name!r} needs a factor on the token prices")
        for name, tier in service.items():  # a tier of its own prices: every token dimension of the base
            has = {p.dimension for p in self.prices if p.service_tier == name and p.above_input_tokens is None}
            if tier.factor is not None and has:
                raise ValueError(f"service tier {name!r} has a factor and prices of its own: one or the other")
            if tier.factor is None and (missing := base - has):
                raise ValueError(
                    f"service tier {name!r} has no {sorted(missing)[0]} price (a tier without a factor prices "
                    "every token dimension of the base)"
                )
        for t in tiers:
            for group_tier in (None, *service):
                group = [p for p in self.prices if p.above_input_tokens == t and p.service_tier == group_tier]
                if not group and group_tier is not None:
                    continue  # the service tier prices no request above t: such a request is refused
                have = {p.dimension for p in group}
                if stray := have - TOKEN_DIMENSIONS:
                    raise ValueError(f"a long-context tier prices token dimensions only, not {sorted(stray)[0]}")
                if gap := base - have:
                    what = "" if group_tier is None else f" (service tier {group_tier})"
                    raise ValueError(
                        f"the tier above {t} input tokens{what} has no {sorted(gap)[0]} price "
                        "(a tier prices the whole request: every token dimension of the base)"
                    )
        # token quantities are integers: a factored price per token must stay within 12 places
        factors = [ONE, *(self.profiles or {}).values()]
        if self.batch_factor is not None:
            factors += [f * self.batch_factor for f in factors]
        for mods in (service, self.inference_geos or {}):
            factors += [f * m.factor for f in factors for m in mods.values() if m.factor is not None]
        for p in self.prices:
            if p.dimension in TOKEN_DIMENSIONS:
                for f in factors:
                    if _places(p.price * f / p.per) > 12:
                        raise ValueError(f"{p.dimension} {p.price} per {p.per} x factor {f} needs more than 12 places")
        return self

    @model_validator(mode="after")
    def _dates(self) -> ProductSpec:
        check_range(self.effective_from, self.effective_to)
        return self


class CatalogFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    provider: str
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    version: str
    regions: tuple[RegionId, ...]  # every region the provider serves here; [] for none
    # cross-region inference profiles: prefix -> the source Regions a call through it comes from
    profiles: dict[ProfilePrefix, tuple[RegionId, ...]] = Field(default_factory=dict)
    products: tuple[ProductSpec, ...]

    @model_validator(mode="after")
    def _regions(self) -> CatalogFile:
        if len(set(self.regions)) != len(self.regions):
            raise ValueError("regions must not repeat")
        known = set(self.regions)
        for prefix, regions in self.profiles.items():
            if stray := [r for r in regions if r not in known]:
                raise ValueError(f"profile {prefix!r}: region {stray[0]!r} is not among the provider's regions")
        for spec in self.products:
            if stray := [k for k in spec.profiles or () if k not in self.profiles]:
                raise ValueError(f"product {spec.id!r}: profile {stray[0]!r} is not declared in the file's profiles")
        for spec in self.products:
            for what, named, allowed in (
                ("service tier", spec.service_tiers, SERVICE_TIERS),
                ("inference geography", spec.inference_geos, INFERENCE_GEOS),
            ):
                others = allowed.get(self.provider, ())[1:]  # the first is the standard: priced by the base
                if stray := [k for k in named or () if k not in others]:
                    raise ValueError(
                        f"product {spec.id!r}: {what} {stray[0]!r} is not one of {self.provider}'s priced apart "
                        f"({', '.join(others) or 'none'}; schemas.billing_event)"
                    )
        for spec in self.products:
            used = [*(spec.regions or ()), *(r for ps in spec.prices for r in ps.regions or ())]
            stray = [r for r in used if r not in known]
            if stray:
                raise ValueError(f"product {spec.id!r}: region {stray[0]!r} is not among the provider's regions")
        return self


@dataclass(frozen=True)
class Product:
    """One catalog entry in force over [effective_from, effective_to)."""

    provider: str
    currency: str
    catalog_version: str
    spec: ProductSpec
    prices: dict[str, tuple[PriceSpec, ...]] = field(hash=False)
    regions: frozenset[str] = field(default=frozenset(), hash=False)  # where an event may be: its own or the provider's
    tiers: tuple[int, ...] = ()  # long-context thresholds (above_input_tokens), ascending
    memo: dict[Any, Any] = field(default_factory=dict, hash=False, compare=False)  # engine's lookups

    @property
    def id(self) -> str:
        return self.spec.id


@dataclass
class Catalog:
    products: dict[tuple[str, str], list[Product]]  # (provider, id, alias or profile id) -> by effective_from
    files: list[str]  # the files' names, as in the bundle (overlays/ included)
    provider_regions: dict[str, tuple[str, ...]] = field(default_factory=dict)
    profile_of: dict[tuple[str, str], str] = field(default_factory=dict)  # (provider, profile id) -> prefix
    profile_regions: dict[tuple[str, str], frozenset[str]] = field(
        default_factory=dict
    )  # (provider, prefix) -> sources
    content_hash: str = ""  # sha256 of the files (see bundle_hash): the version a ledger row names
    overlays: Any = None  # pricing.overlays.Overlays: per-tenant prices
    overlay_tenants: dict[str, Any] = field(default_factory=dict)  # the tenants with overlays (empty: none)
    # key -> (versions, their starts, their ends); bounds as stdlib-UTC datetimes: the same
    # instants, cheaper to compare than pydantic's TzInfo
    _index: dict[tuple[str, str], tuple[list[Product], list[dt.datetime], list[dt.datetime | None], str | None]] = (
        field(default_factory=dict, repr=False)
    )

    def __post_init__(self) -> None:
        utc = dt.UTC
        self._index = {
            k: (
                v,
                [p.spec.effective_from.astimezone(utc) for p in v],
                [p.spec.effective_to and p.spec.effective_to.astimezone(utc) for p in v],
                self.profile_of.get(k),
            )
            for k, v in self.products.items()
        }

    def providers(self) -> set[str]:
        return {p for p, _ in self.products}

    def regions(self, provider: str) -> tuple[str, ...]:
        """The regions a provider's catalog declares (empty: the provider has none)."""
        return self.provider_regions.get(provider, ())

    def entries(self) -> list[Product]:
        seen: dict[int, Product] = {}
        for plist in self.products.values():
            for p in plist:
                seen[id(p)] = p
        return sorted(seen.values(), key=lambda p: (p.provider, p.id, p.spec.effective_from))

    def lookup(self, provider: str, model: str, ts: dt.datetime) -> Product:
        return self.resolve(provider, model, ts)[0]

    def resolve(self, provider: str, model: str, ts: dt.datetime) -> tuple[Product, str | None]:
        """The product in force, and the cross-region profile prefix when ``model`` names one."""
        hit = self._index.get((provider, model))
        if hit is None:
            if provider not in self.providers():
                raise PricingError(f"unknown provider {provider!r}")
            via = sorted(
                pre for (prov, pid), pre in self.profile_of.items() if prov == provider and pid == f"{pre}.{model}"
            )
            prefix, _, base = model.partition(".")
            if base and (provider, prefix) in self.profile_regions and (provider, base) in self.products:
                raise PricingError(f"{provider}/{base} is not offered through the cross-region profile {prefix}.")
            if via:
                raise PricingError(
                    f"{provider}/{model} is invoked through a cross-region inference profile only "
                    f"({', '.join(p + '.' for p in via)})"
                )
            raise PricingError(
                f"unknown model {quoted(model)} for provider {provider!r}{self._did_you_mean(provider, model)}"
            )
        versions, starts, ends, profile = hit
        i = bisect.bisect_right(starts, ts) - 1
        if i < 0 or ((end := ends[i]) is not None and ts >= end):
            last = versions[-1].spec.effective_to
            span = f"; the last ends {last.isoformat()}" if last is not None and ts >= last else ""
            raise PricingError(
                f"no price for {provider}/{model} in force at {ts.isoformat()} "
                f"(catalog entries start {versions[0].spec.effective_from.isoformat()}{span})"
            )
        return versions[i], profile

    def _did_you_mean(self, provider: str, model: str) -> str:
        """``; did you mean 'x'?`` with the closest of the provider's model ids, aliases and profile
        ids (difflib, similarity 0.75 or more), or "" when none is that close. Memoized per catalog
        (bounded): a stream of one misspelled model asks once."""
        memo: dict[tuple[str, str], str] = self.__dict__.setdefault("_did_you_mean_memo", {})
        said = memo.get((provider, model))
        if said is None:
            names = sorted(m for p, m in self.products if p == provider)
            close = difflib.get_close_matches(model, names, n=1, cutoff=0.75)
            said = f"; did you mean {quoted(close[0])}?" if close else ""
            if len(memo) >= 4096:
                memo.clear()
            memo[(provider, model)] = said
        return said


def _load_file(name: str, text: str) -> CatalogFile:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CatalogError(f"{name}: not YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise CatalogError(f"{name}: expected a mapping at the top")
    defaults = doc.pop("defaults", {}) or {}
    products = []
    for raw in doc.get("products") or []:
        products.append({**defaults, **raw})
    doc["products"] = products
    try:
        return CatalogFile.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        loc = ".".join(str(p) for p in first["loc"])
        where = loc
        if first["loc"][:1] == ("products",) and len(first["loc"]) > 1:
            idx = first["loc"][1]
            if isinstance(idx, int) and idx < len(products):
                where = f"product {products[idx].get('id')!r}: {loc}"
        raise CatalogError(f"{name}: {where}: {first['msg']}") from None
