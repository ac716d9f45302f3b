"""`meterstream catalog check --against litellm MAP`: where our catalogs and LiteLLM's price map
disagree, so that staleness is visible before a bill is.

Each map entry of one of our providers is read with the import's own mapping
(pricing/litellm_import.py ``product_of``: the same keys to the same dimensions, tiers and batch
factor) and compared with our entry in force at the check's time (``as_of``, default now):

  price     a token price per 1M differs, or one side prices a dimension (or tier) the other does
            not; a Bedrock key ``bedrock/<region>/<id>`` is compared with our price in that Region,
            a key ``<profile>.<id>`` with our price times the product's profile factor
  batch     the batch factor differs (or one side has batch mode and the other not)
  offer     the map prices a Region or cross-region profile our product is not offered in
  date      the map deprecates a model (deprecation_date on or before as_of) that we still price,
            or our last entry ends where the map lists the model with another or no deprecation
  map-only  a model the map has (for our providers) that our catalog lacks
  ours-only a product we price that the map lacks (by id, alias or profile id)

Lines marked ``note`` are not disagreements: a provider the map has no entries for, a map entry
the import cannot convert exactly (its reason), Bailian's prices (CNY, the China mainland list)
against the map's DashScope prices (USD, the international list): models are compared, not
prices. The exit code is 1 when any disagreement is listed, else 0."""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pricing.catalog import TOKEN_DIMENSIONS, Catalog, PriceSpec, Product
from pricing.litellm_import import PER, product_of

# our provider -> LiteLLM's litellm_provider values for it
PROVIDERS: dict[str, tuple[str, ...]] = {
    "openai": ("openai", "text-completion-openai"),
    "anthropic": ("anthropic",),
    "bedrock": ("bedrock", "bedrock_converse"),
    "bailian": ("dashscope",),
}
# providers whose map prices are in another currency than our catalog's: models only
OTHER_CURRENCY = {"bailian": "our prices are CNY (the China mainland list), the map's dashscope prices USD"}
REGION = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
PROFILE_PREFIXES = frozenset({"us", "eu", "apac", "jp", "au", "ca", "global", "us-gov"})
KINDS = ("price", "batch", "offer", "date", "map-only", "ours-only")


@dataclass
class Report:
    lines: list[tuple[str, str]] = field(default_factory=list)  # (kind, text), in order

    def add(self, kind: str, text: str) -> None:
        self.lines.append((kind, text))

    @property
    def disagreements(self) -> int:
        return sum(k in KINDS for k, _ in self.lines)

    def counts(self) -> dict[str, int]:
        return {k: sum(kind == k for kind, _ in self.lines) for k in KINDS}


@dataclass(frozen=True)
class MapKey:
    key: str
    base: str  # our product id (or alias) the key names
    region: str | None
    profile: str | None


def parse_key(key: str, litellm_provider: str, profiles: frozenset[str]) -> MapKey:
    """``bedrock/us-east-1/meta.x`` -> (meta.x, region us-east-1); ``us.anthropic.x`` -> (anthropic.x,
    profile us); ``dashscope/qwen-plus`` -> qwen-plus."""
    rest, region, profile = key, None, None
    if rest.startswith(litellm_provider + "/"):
        rest = rest[len(litellm_provider) + 1 :]
    head, sep, tail = rest.partition("/")
    if sep and REGION.match(head):
        rest, region = tail, head
    prefix, dot, base = rest.partition(".")
    if dot and base and prefix in (profiles | PROFILE_PREFIXES):
        rest, profile = base, prefix
    return MapKey(key, rest, region, profile)


def _per_million(p: PriceSpec, factor: Decimal) -> Decimal:
    return (p.price * PER / p.per * factor).normalize()


def _ours(product: Product, dim: str, above: int | None, region: str | None) -> PriceSpec | None:
    """Our plain price for a token dimension and tier (no other qualifier), in the Region if given."""
    found = [
        p
        for p in product.prices.get(dim, ())
        if p.above_input_tokens == above and (p.regions is None or (region is not None and region in p.regions))
    ]
    specific = [p for p in found if p.regions is not None]
    best = specific or found
    return best[0] if best else None


def _fmt(d: Decimal) -> str:
    return f"{d.normalize():f}"


def check(prices: dict[str, Any], catalog: Catalog, as_of: dt.datetime, source: str) -> Report:
    report = Report()
    for provider in sorted(PROVIDERS):
        if provider not in catalog.providers():
            continue
        _check_provider(prices, catalog, provider, as_of, source, report)
    return report


def _in_force(catalog: Catalog, provider: str, as_of: dt.datetime) -> dict[str, Product]:
    """Our entries of a provider in force at as_of, by id and alias."""
    names: dict[str, Product] = {}
    for p in catalog.entries():
        s = p.spec
        if p.provider == provider and s.effective_from <= as_of and (s.effective_to is None or as_of < s.effective_to):
            for n in (s.id, *s.aliases):
                names[n] = p
    return names


def _check_provider(
    prices: dict[str, Any], catalog: Catalog, provider: str, as_of: dt.datetime, source: str, report: Report
) -> None:
    litellm = PROVIDERS[provider]
    entries = {k: v for k, v in sorted(prices.items()) if isinstance(v, dict) and v.get("litellm_provider") in litellm}
    if not entries:
        report.add("note", f"{provider}: the map has no {'/'.join(litellm)} entries: not compared")
        return
    other_currency = OTHER_CURRENCY.get(provider)
    if other_currency:
        report.add("note", f"{provider}: {other_currency}: models compared, not prices")
    profiles = frozenset(p for prov, p in catalog.profile_regions if prov == provider)
    ours = _in_force(catalog, provider, as_of)
    latest = {n: p for p in catalog.entries() if p.provider == provider for n in (p.spec.id, *p.spec.aliases)}
    matched: set[int] = set()  # id() of our products a map key names
    map_only: dict[str, list[str]] = defaultdict(list)
    for key, entry in entries.items():
        mk = parse_key(key, entry["litellm_provider"], profiles)
        product = ours.get(mk.base)
        if product is None:
            if (gone := latest.get(mk.base)) is not None:  # priced once, not at as_of
                span = f"end {gone.spec.effective_to.date()}" if gone.spec.effective_to else "start later"
                report.add("date", f"{provider}/{gone.id} ({key}): our entries {span}; the map still lists it")
            else:
                map_only[mk.base].append(key)
            continue
        matched.add(id(product))
        name = f"{provider}/{product.id}" + (f" ({key})" if key != product.id else "")
        _check_dates(catalog, product, entry, name, as_of, report)
        factor = Decimal(1)
        if mk.profile is not None:
            pf = (product.spec.profiles or {}).get(mk.profile)
            if pf is None:
                report.add("offer", f"{name}: the map prices the profile {mk.profile}.; ours is not offered through it")
                continue
            factor = pf
        if mk.region is not None and mk.region not in product.regions:
            report.add("offer", f"{name}: the map prices the Region {mk.region}; ours is not offered there")
            continue
        if other_currency:
            continue
        try:
            theirs, _notes = product_of(key, entry, source)
        except ValueError as exc:
            report.add("note", f"{name}: not compared: the map entry cannot be imported exactly ({exc})")
            continue
        _check_prices(product, theirs, factor, mk.region, name, report)
    for base, keys in sorted(map_only.items()):
        report.add("map-only", f"{provider}/{base}: in the map ({', '.join(keys)}), not in our catalog")
    seen: set[int] = set()
    for _name, product in sorted(ours.items()):
        if id(product) in matched or id(product) in seen:
            continue
        seen.add(id(product))
        report.add("ours-only", f"{provider}/{product.id}: in our catalog, not in the map")


def _check_prices(
    product: Product, theirs: dict[str, Any], factor: Decimal, region: str | None, name: str, report: Report
) -> None:
    compared: set[tuple[str, int | None]] = set()
    for tp in theirs["prices"]:
        dim, above = tp["dimension"], tp.get("above_input_tokens")
        compared.add((dim, above))
        tier = f" above {above} input tokens" if above else ""
        mine = _ours(product, dim, above, region)
        if mine is None:
            report.add("price", f"{name}: {dim}{tier}: the map {tp['price']} per 1M; ours has no price")
        elif (ours := _per_million(mine, factor)) != Decimal(tp["price"]):
            report.add("price", f"{name}: {dim}{tier} per 1M: ours {_fmt(ours)}, the map {tp['price']}")
    for dim, specs in sorted(product.prices.items()):
        if dim not in TOKEN_DIMENSIONS:
            continue
        for p in specs:
            if (dim, p.above_input_tokens) in compared or p.method or p.commitment or p.policy:
                continue
            if p.regions is not None and (region is None or region not in p.regions):
                continue
            tier = f" above {p.above_input_tokens} input tokens" if p.above_input_tokens else ""
            compared.add((dim, p.above_input_tokens))
            report.add("price", f"{name}: {dim}{tier}: ours {_fmt(_per_million(p, factor))} per 1M; the map has none")
    mine_b, theirs_b = product.spec.batch_factor, theirs.get("batch_factor")
    if (mine_b is None) != (theirs_b is None) or (
        mine_b is not None and theirs_b is not None and mine_b != Decimal(theirs_b)
    ):
        say = {None: "no batch mode"}
        report.add(
            "batch",
            f"{name}: batch: ours {say.get(mine_b) or 'x' + _fmt(mine_b)}, "  # type: ignore[arg-type]
            f"the map {say.get(theirs_b) or 'x' + str(theirs_b)}",
        )


def _check_dates(
    catalog: Catalog, product: Product, entry: dict[str, Any], name: str, as_of: dt.datetime, report: Report
) -> None:
    dep = entry.get("deprecation_date")
    try:
        deprecated = dt.date.fromisoformat(str(dep)) if dep else None
    except ValueError:
        report.add("note", f"{name}: the map's deprecation_date {dep!r} is not a date")
        return
    versions = catalog.products.get((product.provider, product.id)) or [product]
    last_end = versions[-1].spec.effective_to
    if deprecated is not None and deprecated <= as_of.date():
        report.add("date", f"{name}: deprecated in the map on {deprecated}; ours still prices it at {as_of.date()}")
    elif last_end is not None and (deprecated is None or deprecated != last_end.date()):
        report.add(
            "date",
            f"{name}: our last entry ends {last_end.date()}; the map "
            + (f"deprecates it on {deprecated}" if deprecated else "lists it without a deprecation_date"),
        )
