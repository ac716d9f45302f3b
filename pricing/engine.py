"""The pricing engine: a validated billing event + a catalog -> a priced event.

Pure and exact: Decimal arithmetic in a context that traps any rounding (a cost that cannot be
carried exactly is an error, not a rounded number); costs carry at most 12 decimal places. The
only roundings are the ones the providers state: the guardrail rule (text units = ceil(chars /
1000), for input and output text separately) and a price's `rounding:` in the catalog (a duration
rounded as the provider's page says). Anything the catalog does not price is an error, never zero."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from functools import lru_cache
from typing import Any

from pricing.catalog import Catalog, PriceSpec, Product
from pricing.errors import PricingError
from pricing.overlays import Rule
from schemas.billing_event import INFERENCE_GEOS, SERVICE_TIERS, BillingEvent, ServerToolRequests, Usage
from schemas.money import EXACT, money_str
from schemas.money import PLACES as MAX_PLACES
from schemas.records import PricedEvent, priced_event

ONE = Decimal(1)

_UNIT_NAMES = {
    "input_tokens": "input tokens",
    "output_tokens": "output tokens",
    "cached_input_tokens": "cached input tokens",
    "cache_write_tokens": "cache write tokens",
    "images": "image",
    "audio_seconds": "audio second",
    "training_tokens": "training tokens",
    "training_images_seen": "training image seen",
    "storage_months": "custom-model month",
    "dedicated_hours": "unit-hour",
    "dedicated_months": "instance-month",
    "guardrail_text_units": "text units",
    "human_tasks": "human task",
    "cache_write_1h_tokens": "1-hour cache write tokens",
    "audio_input_tokens": "audio input tokens",
    "audio_output_tokens": "audio output tokens",
    "image_input_tokens": "image input tokens",
    "image_output_tokens": "image output tokens",
    "server_tool_requests": "requests",
}
# Token buckets in line-item order (a 1.0 event's: input, cached, cache write, output), and the
# ones that make a request's input size for long-context tiers (every prompt token, however billed)
TOKEN_ORDER = (
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "audio_input_tokens",
    "image_input_tokens",
    "output_tokens",
    "audio_output_tokens",
    "image_output_tokens",
)
INPUT_SIZE = (
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "audio_input_tokens",
    "image_input_tokens",
)
SERVER_TOOLS = tuple(ServerToolRequests.model_fields)  # the allow-list, in the contract's order
# a 1.0 event's token buckets, in line-item order: pricing one reads no more (the hot path of the
# full path pays nothing for 1.1)
V10_ORDER = ("input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens")
_V11_USAGE = frozenset(TOKEN_ORDER) - frozenset(V10_ORDER) | {"server_tool_requests"}
_USAGE_SERIALIZER = Usage.__pydantic_serializer__  # model_dump's own serializer, called as model_dump calls it


def _per_label(per: int) -> str:
    if per == 1:
        return ""
    if per % 1_000_000 == 0:
        return f"{per // 1_000_000}M "
    if per % 1000 == 0:
        return f"{per // 1000}K "
    return f"{per} "


@lru_cache(maxsize=4096)
def _unit_text(per: int, dim: str, note: str) -> str:
    return f"{_per_label(per)}{_UNIT_NAMES[dim]}{note}"


@lru_cache(maxsize=4096)
def _price_text(price: Decimal) -> str:
    return money_str(price)


def _region_ok(p: PriceSpec, region: str | None) -> bool:
    return p.regions is None or (region is not None and region in p.regions)


MEMO_MAX = 4096  # entries per product: regions and image sizes come from producers


def _select(product: Product, dim: str, region: str | None, what: str, **want: Any) -> PriceSpec:
    """The price for dim; remembered per product (a pure function of its arguments but `what`)."""
    key = (dim, region, *want.items())
    hit = product.memo.get(key)
    if hit is None:
        hit = _select_uncached(product, dim, region, what, **want)
        if len(product.memo) < MEMO_MAX:
            product.memo[key] = hit
    return hit


def _select_uncached(product: Product, dim: str, region: str | None, what: str, **want: Any) -> PriceSpec:
    candidates = product.prices.get(dim)
    if not candidates:
        raise PricingError(f"{product.provider}/{product.id} has no price for {what}")
    matches = []
    needs_steps = False
    for p in candidates:
        if not _region_ok(p, region):
            continue
        if "method" in want and (p.method or "sft") != want["method"]:
            continue
        if "commitment" in want and (p.commitment or "none") != want["commitment"]:
            continue
        if "policy" in want and p.policy != want["policy"]:
            continue
        if "tier" in want and p.above_input_tokens != want["tier"]:
            continue
        if p.service_tier != want.get("service_tier") or p.tool != want.get("tool"):
            continue  # a service tier's own price, or another tool's
        if "size" in want:
            w, h, steps = want["size"]
            if (p.max_width is not None and w > p.max_width) or (p.max_height is not None and h > p.max_height):
                continue
            if p.min_steps is not None or p.max_steps is not None:
                if steps is None:
                    needs_steps = True
                    continue
                if (p.min_steps is not None and steps < p.min_steps) or (
                    p.max_steps is not None and steps > p.max_steps
                ):
                    continue
        matches.append(p)
    if not matches:
        if needs_steps:
            raise PricingError(f"{product.provider}/{product.id} prices {what} by steps: `steps` is required")
        where = f" in region {region}" if region else ""
        raise PricingError(f"{product.provider}/{product.id} has no price for {what}{where}")
    if len(matches) > 1:
        # a region-specific price wins over a general one; the smallest image tier that fits wins
        specific = [p for p in matches if p.regions is not None]
        matches = specific or matches
        if "size" in want:
            matches.sort(key=lambda p: (p.max_width or 10**9) * (p.max_height or 10**9))
            matches = matches[:1]
    if len(matches) > 1:
        raise PricingError(f"catalog defect: {len(matches)} prices match {product.id} {what}")
    return matches[0]


class _Bill:
    """Line items and totals; with an overlay rule (pricing/overlays.py) each item is the
    tenant's price and keeps its list price beside it."""

    __slots__ = ("items", "list_total", "rule", "total")

    def __init__(self, rule: Rule | None = None) -> None:
        self.items: list[dict[str, str]] = []
        self.total = Decimal(0)
        self.list_total = Decimal(0)  # kept with a rule only: else it is the total
        self.rule = rule

    def add(self, dim: str, qty: Decimal | int, p: PriceSpec, factor: Decimal = ONE, note: str = "") -> None:
        if p.rounding is not None:  # the provider's stated rounding (catalog `rounding:`), never our own
            qty, note = p.rounding.apply(Decimal(qty)), f"{note} (rounded {p.rounding.mode} to {p.rounding.unit})"
        unit_price = EXACT.multiply(p.price, factor) if factor != ONE else p.price
        cost = EXACT.divide(EXACT.multiply(qty, unit_price), p.per)
        item = {
            "dimension": dim,
            "quantity": money_str(qty) if isinstance(qty, Decimal) else str(qty),
            "unit": _unit_text(p.per, dim, note),
            "unit_price": _price_text(unit_price),
            "cost": money_str(cost),
        }
        rule = self.rule
        if rule is not None:
            self.list_total = EXACT.add(self.list_total, cost)
            contract = rule.contract_price(dim) if rule.prices else None
            if rule.factor is not None:
                t_unit, per = EXACT.multiply(unit_price, rule.factor), p.per
            elif contract is not None:
                t_unit, per = EXACT.multiply(contract.price, factor), contract.per
            else:
                t_unit, per = unit_price, p.per
            t_cost = EXACT.divide(EXACT.multiply(qty, t_unit), per)
            item |= {
                "unit": _unit_text(per, dim, note),
                "unit_price": _price_text(t_unit),
                "cost": money_str(t_cost),
                "list_unit_price": _price_text(EXACT.divide(EXACT.multiply(unit_price, per), p.per)),
                "list_cost": item["cost"],
            }
            cost = t_cost
        self.total = EXACT.add(self.total, cost)
        self.items.append(item)


def _guardrail_product(catalog: Catalog, product: Product, event: BillingEvent) -> Product:
    if "guardrail_text_units" in product.prices:
        return product
    return catalog.lookup(event.provider, "guardrails", event.ts)


def _count_text(product: Product, text: str) -> int:
    tok = product.spec.tokenizer
    if tok is None:
        raise PricingError(f"{product.provider}/{product.id} has no tokenizer: send token counts, not text")
    from pricing.tokenizer import count_tokens

    return count_tokens(text, tok.encoding)


def _check_region(catalog: Catalog, product: Product, region: str | None) -> None:
    """An event's region must be one of its provider's (catalog `regions`) and one where the
    product is offered (its own `regions`, else the provider's); it may be absent only when the
    product's prices ignore region (no `regions` of its own)."""
    if region is None:
        if product.spec.regions is not None:
            raise PricingError(f"{product.provider}/{product.id} is priced by region: `region` is required")
    elif region not in product.regions:
        if region not in catalog.regions(product.provider):
            raise PricingError(f"unknown region {region!r} for provider {product.provider}")
        raise PricingError(f"{product.provider}/{product.id} is not offered in region {region}")


def _check_profile(catalog: Catalog, product: Product, profile: str | None, region: str | None) -> None:
    """A call through a cross-region profile comes from one of the profile's source Regions."""
    if profile is not None and region is not None:
        sources = catalog.profile_regions.get((product.provider, profile), frozenset())
        if region not in sources:
            raise PricingError(
                f"{product.provider}: the cross-region profile {profile}. is not called from "
                f"{region} (its source Regions: {', '.join(sorted(sources))})"
            )


def _check_guardrail_applies(product: Product, gp: Product) -> None:
    """A guardrail on an invocation: the guardrails product says which kinds it applies to
    (catalog `applies_to`; seed 002: not to images or embeddings)."""
    applies = gp.spec.applies_to
    if gp is product or applies is None:
        return
    kind = product.spec.kind
    if kind not in applies:
        raise PricingError(
            f"guardrails do not apply to {kind or 'unknown-kind'} invocations "
            f"({product.provider}/{product.id}; {gp.id} applies to {', '.join(applies)})"
        )


def price_event(event: BillingEvent, catalog: Catalog) -> PricedEvent:
    """Price one event. Raises PricingError with the reason when it cannot be priced."""
    product, profile = catalog.resolve(event.provider, event.model, event.ts)
    region = event.region
    _check_region(catalog, product, region)
    _check_profile(catalog, product, profile, region)
    factor, batch_note = _token_factor(product, event.mode, profile)
    own_tier = None  # a service tier priced by prices of its own (catalog `service_tier:`)
    if event.service_tier is not None or event.inference_geo is not None:
        extra, note, own_tier = _modifiers(product, event)
        factor = EXACT.multiply(factor, extra) if extra != ONE else factor
        batch_note += note

    usage = event.usage
    rule = (
        catalog.overlays.find(event.tenant_id, event.provider, product.id, event.ts)
        if event.tenant_id in catalog.overlay_tenants
        else None
    )
    if own_tier is not None and rule is not None and rule.prices:
        raise PricingError(
            f"tenant price rule {rule.id} sets contract prices, which are for the standard tier: "
            f"{product.provider}/{product.id} prices the service tier {own_tier} apart, and no contract price states it"
        )
    bill = _Bill(rule)
    estimated = False
    v11 = not _V11_USAGE.isdisjoint(usage.model_fields_set)  # a 1.1 bucket given: read them all
    dims = TOKEN_ORDER if v11 else V10_ORDER
    counts = {d: getattr(usage, d) for d in dims}
    if event.text is not None:
        for dim, text in (("input_tokens", event.text.input), ("output_tokens", event.text.output)):
            if text and counts[dim] is None:
                counts[dim] = _count_text(product, text)
                estimated = True
    tier: dict[str, Any] = {}
    if product.tiers:  # a long-context tier prices every token of the request
        size = sum(counts.get(d) or 0 for d in INPUT_SIZE)
        above = max((t for t in product.tiers if size > t), default=None)
        tier = {"tier": above}
        if above is not None:
            batch_note += f" (above {_per_label(above).strip() or above} input tokens)"
    if own_tier is not None:
        tier["service_tier"] = own_tier
    what = ""
    if own_tier is not None:
        above = tier.get("tier")
        what = f" (service tier {own_tier}" + (f", above {_per_label(above).strip()} input tokens)" if above else ")")
    for dim in dims:
        qty = counts[dim]
        if qty:
            bill.add(dim, qty, _select(product, dim, region, dim + what, **tier), factor, batch_note)

    tools = usage.server_tool_requests if v11 else None
    if tools is not None:  # per request: no token factor (batch, tier, geography) applies
        for name in SERVER_TOOLS:
            n = getattr(tools, name)
            if n:
                p = _select(product, "server_tool_requests", region, f"server tool {name} requests", tool=name)
                bill.add("server_tool_requests", n, p, note=f" ({name})")

    for img in usage.images or ():
        p = _select(
            product,
            "images",
            region,
            f"images of {img.width}x{img.height}" + (f" at {img.steps} steps" if img.steps is not None else ""),
            size=(img.width, img.height, img.steps),
        )
        size_note = f" ({img.width}x{img.height}" + (f", {img.steps} steps)" if img.steps is not None else ")")
        bill.add("images", img.count, p, note=size_note)

    if usage.audio_seconds:
        bill.add("audio_seconds", usage.audio_seconds, _select(product, "audio_seconds", region, "audio_seconds"))

    tr = usage.training
    if tr is not None:
        if tr.tokens:
            p = _select(product, "training_tokens", region, f"training ({tr.method})", method=tr.method)
            bill.add("training_tokens", tr.tokens * tr.epochs, p, note=f" ({tr.method}, {tr.epochs} epochs)")
        if tr.images_seen:
            bill.add(
                "training_images_seen",
                tr.images_seen,
                _select(product, "training_images_seen", region, "training images seen"),
            )

    if usage.storage_months:
        bill.add("storage_months", usage.storage_months, _select(product, "storage_months", region, "storage"))

    ded = usage.dedicated
    if ded is not None:
        if ded.hours:
            p = _select(
                product,
                "dedicated_hours",
                region,
                f"dedicated hours (commitment {ded.commitment})",
                commitment=ded.commitment,
            )
            cu = p.compute_units or 1
            qty = EXACT.multiply(Decimal(ded.instances * cu), ded.hours)
            note = f" ({ded.instances} x {cu} compute units)" if p.compute_units else f" (commitment {ded.commitment})"
            bill.add("dedicated_hours", qty, p, note=note)
        if ded.months:
            p = _select(
                product,
                "dedicated_months",
                region,
                f"dedicated months (commitment {ded.commitment})",
                commitment=ded.commitment,
            )
            bill.add("dedicated_months", EXACT.multiply(Decimal(ded.instances), ded.months), p)

    guardrail_units = 0
    g = usage.guardrail
    if g is not None:
        gp = _guardrail_product(catalog, product, event)
        _check_guardrail_applies(product, gp)
        guardrail_units = g.input_units + g.output_units
        if guardrail_units:
            for policy in g.policies:
                pol = policy.value
                p = _select(gp, "guardrail_text_units", region, f"guardrail policy {pol}", policy=pol)
                bill.add("guardrail_text_units", guardrail_units, p, note=f" ({pol})")

    if usage.human_tasks:
        bill.add("human_tasks", usage.human_tasks, _select(product, "human_tasks", region, "human tasks"))

    if not bill.items:
        raise PricingError("nothing to price: every quantity is zero")
    total = bill.total
    list_total = bill.list_total if rule is not None else total
    for t in (total, list_total) if rule is not None else (total,):
        if t.normalize(EXACT).as_tuple().exponent < -MAX_PLACES:  # type: ignore[operator]
            raise PricingError(f"cost {t} needs more than {MAX_PLACES} decimal places")

    usage_out = _USAGE_SERIALIZER.to_python(usage, mode="json", exclude_none=True)  # == usage.model_dump(...)
    for dim, qty in counts.items():
        if qty is not None:
            usage_out[dim] = qty
    cost = money_str(total)
    priced = priced_event(
        event.event_id,
        event.ts.isoformat(),
        event.tenant_id,
        event.user_id,
        event.provider,
        event.model,
        product.id,
        region,
        event.mode,
        usage_out,
        event.labels or {},
        product.currency,
        cost,
        money_str(list_total) if rule is not None else cost,
        rule.id if rule is not None else "",
        bill.items,
        product.catalog_version,
        catalog.content_hash,
        estimated,
        guardrail_units,
    )
    if event.service_tier is not None:  # 1.1: kept, so that a re-rating prices the same tier
        priced["service_tier"] = event.service_tier
    if event.inference_geo is not None:
        priced["inference_geo"] = event.inference_geo
    return priced


def _modifiers(product: Product, event: BillingEvent) -> tuple[Decimal, str, str | None]:
    """The event's service tier and inference geography as the product prices them (catalog
    `service_tiers`, `inference_geos`): a factor on the token prices, its unit note, and the
    service tier whose own prices apply (None: the standard tier's). The standard tier and the
    default geography are the list price; any other the product does not price is refused."""
    spec = product.spec
    factor, note, own = ONE, "", None
    name = f"{product.provider}/{product.id}"
    for kind, value, standard, priced in (
        ("service tier", event.service_tier, SERVICE_TIERS, spec.service_tiers),
        ("inference_geo", event.inference_geo, INFERENCE_GEOS, spec.inference_geos),
    ):
        if value is None or value == standard[event.provider][0]:  # the schema checked it is the provider's
            continue
        mod = (priced or {}).get(value)
        if mod is None:
            has = ", ".join((standard[event.provider][0], *(priced or ())))
            raise PricingError(f"{name} does not price the {kind} {value} (it prices: {has})")
        if mod.effective_from is not None and event.ts < mod.effective_from:
            raise PricingError(f"{name} prices the {kind} {value} from {mod.effective_from.isoformat()}")
        if mod.factor is None:
            own, note = value, f"{note} (service tier {value})"
        else:
            factor = EXACT.multiply(factor, mod.factor)
            note = f"{note} ({kind} {value} x{money_str(mod.factor)})"
    return factor, note, own


def _token_factor(product: Product, mode: str, profile: str | None) -> tuple[Decimal, str]:
    """The factor on token prices (batch mode, a cross-region profile) and its unit note."""
    spec = product.spec
    factor, note = ONE, ""
    if mode == "batch":
        if spec.batch_factor is None:
            raise PricingError(f"{product.provider}/{product.id} does not offer batch mode")
        factor, note = spec.batch_factor, f" (batch x{money_str(spec.batch_factor)})"
    if profile is not None:
        pf = spec.profiles[profile]  # type: ignore[index]  # indexed only where the product lists it
        factor = EXACT.multiply(factor, pf)
        note += f" (profile {profile} x{money_str(pf)})"
    return factor, note


# Fast path for events schemas.validate.parse_common passed (plain counts only, no text).
_PLAIN = (
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "output_tokens",
    "human_tasks",
)  # line-item order
_USAGE_ORDER = tuple(f for f in Usage.model_fields if f in _PLAIN)  # model_dump's order
_LAYOUTS: dict[tuple[str, ...], tuple[tuple[str, ...], bool]] = {}  # at most 325 orders of those 5 keys


def _layout(keys: tuple[str, ...]) -> tuple[tuple[str, ...], bool]:
    """Usage keys in line-item order, and whether they already come in Usage field order."""
    return tuple(d for d in _PLAIN if d in keys), keys == tuple(d for d in _USAGE_ORDER if d in keys)


def _plan(
    catalog: Catalog, product: Product, region: str | None, mode: str, profile: str | None
) -> dict[str, tuple[Decimal, str, str]]:
    """Per plain dimension priced for (region, mode, profile): (price per 1 unit, unit text, unit
    price text). Empty when price_event would reject the region or mode."""
    spec = product.spec
    if (region is None and spec.regions is not None) or (region is not None and region not in product.regions):
        return {}  # price_event rejects the region (see _check_region)
    try:
        _check_profile(catalog, product, profile, region)
        factor, note = _token_factor(product, mode, profile)
    except PricingError:
        return {}
    tier = {"tier": None} if product.tiers else {}  # below every tier (price_common checks the size)
    plan = {}
    for dim in _PLAIN:
        f, n = (ONE, "") if dim == "human_tasks" else (factor, note)  # batch applies to tokens only
        try:
            p = _select(product, dim, region, dim, **({} if dim == "human_tasks" else tier))
            unit_price = EXACT.multiply(p.price, f) if f != ONE else p.price
            per_unit = EXACT.divide(unit_price, p.per)  # qty * per_unit == qty * unit_price / per, exactly
        except (PricingError, ArithmeticError):
            continue  # price_event decides
        if per_unit.normalize(EXACT).as_tuple().exponent >= -MAX_PLACES:  # type: ignore[operator]
            plan[dim] = (per_unit, _unit_text(p.per, dim, n), _price_text(unit_price))
        # else: costs could exceed MAX_PLACES; price_event decides
    return plan


def price_common(doc: dict[str, Any], ts: dt.datetime, ts_text: str, catalog: Catalog) -> PricedEvent | None:
    """price_event's priced dict for a parse_common event, or None when price_event must decide
    (it then gives the rejection reason)."""
    try:
        product, profile = catalog.resolve(doc["provider"], doc["model"], ts)
    except PricingError:
        return None
    tenants = catalog.overlay_tenants
    if tenants and doc["tenant_id"] in tenants:
        return None  # a tenant with price overlays: price_event
    region, mode = doc.get("region"), doc.get("mode", "realtime")
    memo = product.memo
    key = ("plan", region, mode, profile)  # "plan" is no dimension: never one of _select's keys
    plan = memo.get(key)
    if plan is None:
        plan = _plan(catalog, product, region, mode, profile)
        if len(memo) < MEMO_MAX:
            memo[key] = plan
    usage = doc["usage"]
    if (
        product.tiers
        and sum(usage.get(d) or 0 for d in ("input_tokens", "cached_input_tokens", "cache_write_tokens"))
        > product.tiers[0]
    ):
        return None  # a long-context tier: price_event
    keys = tuple(usage)
    dims, clean = _LAYOUTS.get(keys) or _LAYOUTS.setdefault(keys, _layout(keys))
    items = []
    total = None
    for dim in dims:
        qty = usage[dim]
        if qty is None:
            clean = False  # model_dump leaves None out
        elif qty:
            line = plan.get(dim)
            if line is None:
                return None
            per_unit, unit, price_text = line
            cost = EXACT.multiply(qty, per_unit)  # integer qty: at most MAX_PLACES places (see _plan)
            total = cost if total is None else EXACT.add(total, cost)
            items.append(
                {
                    "dimension": dim,
                    "quantity": str(qty),
                    "unit": unit,
                    "unit_price": price_text,
                    "cost": money_str(cost),
                }
            )
    if total is None:
        return None
    cost_text = money_str(total)
    return priced_event(
        doc["event_id"],
        ts_text,
        doc["tenant_id"],
        doc["user_id"],
        doc["provider"],
        doc["model"],
        product.spec.id,
        region,
        mode,
        usage if clean else {k: usage[k] for k in _USAGE_ORDER if usage.get(k) is not None},
        doc.get("labels") or {},
        product.currency,
        cost_text,
        cost_text,
        "",
        items,
        product.catalog_version,
        catalog.content_hash,
        False,
        0,
    )
