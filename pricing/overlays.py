"""Per-tenant price overlays: negotiated discounts, markups and contract prices, as data beside
the catalogs (``overlays/<tenant>.yaml``, see pricing/catalogs/FORMAT.md), with effective dates.

An overlay rule changes what one tenant pays for a provider's products (all of them, or the
listed ones) over [effective_from, effective_to). The ledger keeps both prices: ``list_cost``
(the catalog's) and ``cost`` (the tenant's). A rule is one of:

- ``discount: "0.15"``: every unit price times (1 - 0.15);
- ``markup: "0.10"``:   every unit price times (1 + 0.10);
- ``prices: [...]``:    contract prices for the dimensions listed (the catalog's price spec); the
  dimensions it does not list stay at the list price.

No rounding: the loader refuses a rule whose factored unit price would need more decimal places
than a cost may carry (12 where quantities are whole units; 9 for durations and months, whose
quantities carry up to 3 places)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pricing.catalog import (
    DECIMAL_DIMENSIONS,
    MAX_UNIT_PRICE_PLACES,
    TOKEN_DIMENSIONS,
    Catalog,
    PriceSpec,
    _exact,
    _places,
    check_range,
)
from pricing.errors import CatalogError
from schemas.money import PLACES as MAX_PLACES

CONTRACT_DIMENSIONS = TOKEN_DIMENSIONS | {"audio_seconds"}


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
    provider: str
    models: tuple[str, ...] | None = None  # product ids; None: every product of the provider
    effective_from: dt.datetime
    effective_to: dt.datetime | None = None
    source: str = Field(min_length=1)  # the contract or order form, with its date
    discount: Decimal | None = None
    markup: Decimal | None = None
    prices: tuple[PriceSpec, ...] | None = None

    @field_validator("discount", "markup", mode="before")
    @classmethod
    def _fraction(cls, v: Any) -> Decimal | None:
        return None if v is None else _exact(v, "discount/markup")

    @model_validator(mode="after")
    def _one_kind(self) -> Rule:
        if sum(x is not None for x in (self.discount, self.markup, self.prices)) != 1:
            raise ValueError("a rule has exactly one of discount, markup, prices")
        for p in self.prices or ():
            if p.dimension not in CONTRACT_DIMENSIONS:
                raise ValueError(f"contract prices are for {', '.join(sorted(CONTRACT_DIMENSIONS))}, not {p.dimension}")
            if set(p.model_dump(exclude_none=True)) - {"dimension", "per", "price"}:
                raise ValueError(f"a contract price is dimension, per and price only ({p.dimension})")
        if len({p.dimension for p in self.prices or ()}) != len(self.prices or ()):
            raise ValueError("a contract price per dimension, once")
        if self.discount is not None and self.discount > 1:
            raise ValueError("discount is a fraction of the list price, at most 1")
        check_range(self.effective_from, self.effective_to)
        return self

    @property
    def factor(self) -> Decimal | None:
        if self.discount is not None:
            return 1 - self.discount
        if self.markup is not None:
            return 1 + self.markup
        return None

    def contract_price(self, dimension: str) -> PriceSpec | None:
        for p in self.prices or ():
            if p.dimension == dimension:
                return p
        return None

    def in_force(self, ts: dt.datetime) -> bool:
        return self.effective_from <= ts and (self.effective_to is None or ts < self.effective_to)


class OverlayFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    tenant_id: str = Field(min_length=1)
    rules: tuple[Rule, ...] = Field(min_length=1)


@dataclass
class Overlays:
    """tenant -> its rules; ``find`` gives the rule in force for an event, or None."""

    by_tenant: dict[str, tuple[Rule, ...]] = field(default_factory=dict)

    def find(self, tenant: str, provider: str, product_id: str, ts: dt.datetime) -> Rule | None:
        rules = self.by_tenant.get(tenant)
        if not rules:
            return None
        general = None
        for r in rules:
            if r.provider == provider and r.in_force(ts):
                if r.models is None:
                    general = r
                elif product_id in r.models:
                    return r  # a rule naming the product wins over a provider-wide one
        return general


def _check_places(rule: Rule, catalog: Catalog, where: str) -> None:
    """Refuse a rule whose factored (or contract) unit prices a cost could not carry exactly."""
    products = [
        p for p in catalog.entries() if p.provider == rule.provider and (rule.models is None or p.id in rule.models)
    ]
    if rule.models is not None:
        known = {p.id for p in products}
        if missing := [m for m in rule.models if m not in known]:
            raise CatalogError(f"{where}: rule {rule.id}: unknown model {missing[0]!r} for provider {rule.provider}")
    elif not products:
        raise CatalogError(f"{where}: rule {rule.id}: unknown provider {rule.provider!r}")
    factor = rule.factor
    units = [(p, p.price / p.per) for p in rule.prices or ()]
    if factor is not None:
        units += [(p, p.price * factor / p.per) for prod in products for p in prod.spec.prices]
    for p, unit in units:
        limit = MAX_UNIT_PRICE_PLACES if p.dimension in DECIMAL_DIMENSIONS else MAX_PLACES
        if _places(unit) > limit:
            raise CatalogError(
                f"{where}: rule {rule.id}: {p.dimension} at {p.price} per {p.per} becomes "
                f"{unit} a unit, more than {limit} decimal places: no cost could carry it exactly"
            )


def load_overlays(files: dict[str, str], catalog: Catalog) -> Overlays:
    """Overlays from {file name: text}; each checked against the catalog it applies to."""
    out: dict[str, list[Rule]] = {}
    for name in sorted(files):
        where = f"overlays/{name}"
        try:
            doc = yaml.safe_load(files[name])
            of = OverlayFile.model_validate(doc)
        except yaml.YAMLError as exc:
            raise CatalogError(f"{where}: not YAML: {exc}") from None
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            raise CatalogError(f"{where}: {'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from None
        if of.tenant_id in out:
            raise CatalogError(f"{where}: tenant {of.tenant_id} has another overlay file")
        rules = out[of.tenant_id] = list(of.rules)
        for r in rules:
            _check_places(r, catalog, where)
        for i, a in enumerate(rules):
            for b in rules[i + 1 :]:
                same_scope = a.provider == b.provider and (
                    (a.models is None and b.models is None)
                    or (a.models is not None and b.models is not None and set(a.models) & set(b.models))
                )
                overlap = (b.effective_to is None or a.effective_from < b.effective_to) and (
                    a.effective_to is None or b.effective_from < a.effective_to
                )
                if same_scope and overlap:
                    raise CatalogError(f"{where}: rules {a.id} and {b.id} apply to the same prices at the same time")
    return Overlays({t: tuple(r) for t, r in out.items()})
