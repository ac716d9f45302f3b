"""Catalog files from LiteLLM's price map (``model_prices_and_context_window.json``).

A LiteLLM entry prices a token at ``input_cost_per_token`` etc., as JSON numbers. Each is read as
the decimal written in the file (never through a float) and scaled to a price per 1M tokens,
which must then have at most 6 decimal places; a value with more (a float's artifact such as
``3.0000000000000004e-06``) is not exact and its model is listed, not imported.

  input_cost_per_token             -> input_tokens
  output_cost_per_token            -> output_tokens
  cache_read_input_token_cost      -> cached_input_tokens
  cache_creation_input_token_cost  -> cache_write_tokens (the 5-minute write); but for OpenAI's
                                   fine-tuned models (keys ``ft:...``) -> cached_input_tokens: OpenAI
                                   charges no cache writes, and the map gives those models' cached-
                                   input price under this key (ft:gpt-4o-2024-11-20: 1.875e-06, half
                                   its input price, OpenAI's cached-input rate for fine-tuned GPT-4o);
                                   an ``ft:`` key with both cache keys is ambiguous and not imported
  <cost>_above_<N>k_tokens         -> the same dimension, above_input_tokens: N x 1000 (a
                                   long-context tier; it must price every dimension the base does)
  *_batches                        -> batch_factor, when every batch price gives the same exact factor
  *_priority, *_flex, *_ultrafast, *_decisions
                                   service tiers: an event names no tier, so only the standard
                                   price is imported (the product's source says so)
  cache_creation_*_above_<N>hr*, search_context_cost_per_query
                                   not priced, named in the product's source and listed: no event
                                   field carries them (the adapters refuse 1-hour cache writes)

A model with any other cost (audio, images, seconds, characters, pixels, ...) is listed with
those keys and not imported: importing its token prices alone would price those requests wrong.
So is a mode other than chat, completion, responses or embedding. Every product carries its
source (file, LiteLLM version, key) and the ``effective_from`` the user gives."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

DIMENSIONS = {
    "input_cost_per_token": "input_tokens",
    "output_cost_per_token": "output_tokens",
    "cache_read_input_token_cost": "cached_input_tokens",
    "cache_creation_input_token_cost": "cache_write_tokens",
}
KINDS = {"chat": "text", "completion": "text", "responses": "text", "embedding": "embedding"}
PER = 1_000_000
# OpenAI's providers in the map: their fine-tuned models (``ft:`` keys) carry the cached-input price
# in cache_creation_input_token_cost (OpenAI bills no cache writes)
OPENAI_PROVIDERS = frozenset({"openai", "text-completion-openai"})


def dimensions_of(key: str, entry: dict[str, Any]) -> dict[str, str]:
    """The map's cost keys -> catalog dimensions, for this entry (see the module docstring)."""
    if key.startswith("ft:") and entry.get("litellm_provider") in OPENAI_PROVIDERS:
        if entry.get("cache_read_input_token_cost") is not None and (
            entry.get("cache_creation_input_token_cost") is not None
        ):
            raise ValueError(
                "a fine-tuned OpenAI model with both cache_read_input_token_cost and "
                "cache_creation_input_token_cost: which one is the cached-input price is ambiguous"
            )
        return DIMENSIONS | {"cache_creation_input_token_cost": "cached_input_tokens"}
    return DIMENSIONS


@dataclass
class Imported:
    """What an import made (catalog documents per provider) and what it did not (model, reason)."""

    catalogs: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    unpriced: list[tuple[str, list[str]]] = field(default_factory=list)  # imported; these costs not


def load_price_map(path: Path) -> dict[str, Any]:
    """The file, its numbers as the decimals written in it."""
    import json

    return json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)


def bundled() -> tuple[Path, str]:
    """The price map of the installed litellm package (offline), and its version."""
    from importlib import metadata, resources

    try:
        version = metadata.version("litellm")
    except metadata.PackageNotFoundError:
        raise FileNotFoundError("litellm is not installed: give the price map FILE") from None
    path = Path(str(resources.files("litellm") / "model_prices_and_context_window_backup.json"))
    return path, version


def per_million(value: Any, key: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise ValueError(f"{key} is not a number: {value!r}"[:120])
    price = (Decimal(value) * PER).normalize()
    if price < 0:
        raise ValueError(f"{key} is negative")
    if price.as_tuple().exponent < -6:  # type: ignore[operator]
        raise ValueError(f"{key} = {value} is {price} per 1M tokens: more than 6 decimal places, not exact")
    return price


def _plain(d: Decimal) -> str:
    return f"{d:f}"


def convert(
    prices: dict[str, Any],
    *,
    providers: set[str],
    effective_from: dt.datetime,
    source: str,
    provider_names: dict[str, str] | None = None,
) -> Imported:
    """Catalog documents (catalog FORMAT.md) for the entries of these LiteLLM providers."""
    names = provider_names or {}
    out = Imported()
    for key, entry in sorted(prices.items()):
        if not isinstance(entry, dict) or entry.get("litellm_provider") not in providers:
            continue
        try:
            product, notes = _product(key, entry, effective_from, source)
        except ValueError as exc:
            out.skipped.append((key, str(exc)))
            continue
        if notes:
            out.unpriced.append((key, notes))
        provider: str = names.get(entry["litellm_provider"]) or entry["litellm_provider"]
        doc = out.catalogs.setdefault(
            provider,
            {
                "provider": provider,
                "currency": "USD",
                "version": f"litellm@{effective_from.date().isoformat()}",
                "regions": [],
                "defaults": {"effective_from": effective_from.isoformat().replace("+00:00", "Z")},
                "products": [],
            },
        )
        doc["products"].append(product)
    return out


COST_KEY = re.compile(
    r"(?P<base>input_cost_per_token|output_cost_per_token|cache_read_input_token_cost"
    r"|cache_creation_input_token_cost)(?:_above_(?P<k>\d+)k_tokens)?(?:_(?P<variant>[a-z]+))?"
)
LONGER_CACHE_WRITE = re.compile(r"cache_creation_input_token_cost_above_\d+hr\b.*")
SERVICE_TIERS = ("priority", "flex", "ultrafast", "decisions")
NOT_EXPRESSED = {"search_context_cost_per_query": "web search queries (an event carries no count of them)"}


def product_of(key: str, entry: dict[str, Any], source: str) -> tuple[dict[str, Any], list[str]]:
    """One map entry as a catalog product (no dates), and the costs it leaves unpriced; ValueError
    with the reason when it cannot be converted exactly. The one mapping from the map's keys to
    catalog prices: ``catalog import`` and ``catalog check`` both use it."""
    return _product(key, entry, None, source)


def _product(
    key: str, entry: dict[str, Any], effective_from: dt.datetime | None, source: str
) -> tuple[dict[str, Any], list[str]]:
    """The product, and the costs it leaves unpriced (no event field carries them)."""
    mode = entry.get("mode")
    if mode not in KINDS:
        raise ValueError(f"mode {mode!r} is not priced by tokens here")
    dimensions = dimensions_of(key, entry)
    costs = {k for k, v in entry.items() if "cost" in k and v is not None}
    standard: dict[tuple[str, int | None], str] = {}  # (dimension, tier) -> key
    batches: dict[tuple[str, int | None], str] = {}
    tiers_seen, notes, other = set(), [], []
    for k in sorted(costs):
        m = COST_KEY.fullmatch(k)
        if m is None:
            if LONGER_CACHE_WRITE.fullmatch(k):
                notes.append(k)  # 1-hour (and longer) cache writes: the adapters refuse them
            elif k in NOT_EXPRESSED:
                notes.append(k)
            else:
                other.append(k)
            continue
        slot = (dimensions[m["base"]], int(m["k"]) * 1000 if m["k"] else None)
        variant = m["variant"]
        if variant is None:
            standard[slot] = k
        elif variant == "batches":
            batches[slot] = k
        elif variant in SERVICE_TIERS:
            tiers_seen.add(k)
        else:
            other.append(k)
    if other:
        raise ValueError(f"costs without a catalog dimension: {', '.join(other)}")
    prices = []
    for (dim, above), k in sorted(
        standard.items(), key=lambda kv: (kv[0][1] or 0, list(DIMENSIONS.values()).index(kv[0][0]))
    ):
        price = {"dimension": dim, "per": PER, "price": _plain(per_million(entry[k], k))}
        if above is not None:
            price["above_input_tokens"] = above
        prices.append(price)
    if not any(p["dimension"] in ("input_tokens", "output_tokens") for p in prices):
        raise ValueError("no input or output token price")
    base_dims = {d for d, above in standard if above is None}
    for above in sorted({a for _, a in standard if a is not None}):
        if missing := base_dims - {d for d, a in standard if a == above}:
            raise ValueError(f"the tier above {above} tokens has no {sorted(missing)[0]} price")
    source_text = f"{source}, key {key}"
    if tiers_seen:
        source_text += f"; service tiers not imported: {', '.join(sorted(tiers_seen))}"
    if notes:
        source_text += f"; not priced (no dimension): {', '.join(notes)}"
    product: dict[str, Any] = {
        "id": key.split("/", 1)[1] if "/" in key else key,
        "name": key,
        "source": source_text,
        "kind": KINDS[mode],
        "prices": prices,
    }
    factors = set()
    for slot, batch_key in batches.items():
        base_key = standard.get(slot)
        if base_key is None or Decimal(entry[base_key]) == 0:
            raise ValueError(f"{batch_key} without its standard price")
        factors.add(Decimal(entry[batch_key]) / Decimal(entry[base_key]))
    if len(factors) > 1:
        raise ValueError(f"batch prices are not one factor of the base prices ({sorted(factors)})")
    if factors:
        (factor,) = factors
        if factor.normalize().as_tuple().exponent < -6:  # type: ignore[operator]
            raise ValueError(f"batch factor {factor} is not exact")
        product["batch_factor"] = _plain(factor.normalize())
    return product, notes


def dump(doc: dict[str, Any]) -> str:
    """A catalog document as YAML (prices as strings)."""
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=120)
