"""Catalog files from LiteLLM's price map (``model_prices_and_context_window.json``).

A LiteLLM entry prices a token at ``input_cost_per_token`` etc., as JSON numbers. Each is read as
the decimal written in the file (never through a float) and scaled to a price per 1M tokens,
which must then have at most 6 decimal places; a value with more (a float's artifact such as
``3.0000000000000004e-06``) is not exact and its model is listed, not imported.

  input_cost_per_token             -> input_tokens
  output_cost_per_token            -> output_tokens
  cache_read_input_token_cost      -> cached_input_tokens
  cache_creation_input_token_cost  -> cache_write_tokens
  *_batches                        -> batch_factor, when input and output give the same exact factor
  *_priority, *_flex               service tiers: an event names no tier, so only the standard
                                   price is imported (the model's note says so)

A model with any other cost (a tier above N tokens, audio, images, seconds, characters, queries,
reasoning, 1-hour cache writes, ...) is listed with those keys and not imported: importing its
base prices alone would price those requests wrong. So is a mode other than chat, completion,
responses or embedding. Every product carries its source (file, LiteLLM version, key) and the
``effective_from`` the user gives."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

DIMENSIONS = {"input_cost_per_token": "input_tokens", "output_cost_per_token": "output_tokens",
              "cache_read_input_token_cost": "cached_input_tokens",
              "cache_creation_input_token_cost": "cache_write_tokens"}
BATCH = {"input_cost_per_token_batches": "input_cost_per_token", "output_cost_per_token_batches": "output_cost_per_token"}
TIER_SUFFIXES = ("_priority", "_flex")
KINDS = {"chat": "text", "completion": "text", "responses": "text", "embedding": "embedding"}
PER = 1_000_000


@dataclass
class Imported:
    """What an import made (catalog documents per provider) and what it did not (model, reason)."""

    catalogs: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)


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


def convert(prices: dict[str, Any], *, providers: set[str], effective_from: dt.datetime, source: str,
            provider_names: dict[str, str] | None = None) -> Imported:
    """Catalog documents (catalog FORMAT.md) for the entries of these LiteLLM providers."""
    names = provider_names or {}
    out = Imported()
    for key, entry in sorted(prices.items()):
        if not isinstance(entry, dict) or entry.get("litellm_provider") not in providers:
            continue
        try:
            product = _product(key, entry, effective_from, source)
        except ValueError as exc:
            out.skipped.append((key, str(exc)))
            continue
        provider = names.get(entry["litellm_provider"], entry["litellm_provider"])
        doc = out.catalogs.setdefault(provider, {
            "provider": provider, "currency": "USD", "version": f"litellm@{effective_from.date().isoformat()}",
            "regions": [], "defaults": {"effective_from": effective_from.isoformat().replace("+00:00", "Z")},
            "products": []})
        doc["products"].append(product)
    return out


def _product(key: str, entry: dict[str, Any], effective_from: dt.datetime, source: str) -> dict[str, Any]:
    mode = entry.get("mode")
    if mode not in KINDS:
        raise ValueError(f"mode {mode!r} is not priced by tokens here")
    costs = {k for k, v in entry.items() if "cost" in k and v is not None}
    tiers = sorted(k for k in costs if k.endswith(TIER_SUFFIXES))
    other = sorted(costs - set(DIMENSIONS) - set(BATCH) - set(tiers))
    if other:
        raise ValueError(f"costs without a catalog dimension: {', '.join(other)}")
    prices = [{"dimension": dim, "per": PER, "price": _plain(per_million(entry[k], k))}
              for k, dim in DIMENSIONS.items() if k in costs]
    if not any(p["dimension"] in ("input_tokens", "output_tokens") for p in prices):
        raise ValueError("no input or output token price")
    product: dict[str, Any] = {"id": key.split("/", 1)[1] if "/" in key else key, "name": key,
                               "source": f"{source}, key {key}" + (f"; service tiers not imported: {', '.join(tiers)}"
                                                                     if tiers else ""),
                               "kind": KINDS[mode], "prices": prices}
    factors = set()
    for batch_key, base_key in BATCH.items():
        if batch_key in costs:
            if base_key not in costs or Decimal(entry[base_key]) == 0:
                raise ValueError(f"{batch_key} without {base_key}")
            factors.add(Decimal(entry[batch_key]) / Decimal(entry[base_key]))
    if len(factors) > 1:
        raise ValueError(f"batch prices are not one factor of the base prices ({sorted(factors)})")
    if factors:
        (factor,) = factors
        if factor.normalize().as_tuple().exponent < -6:  # type: ignore[operator]
            raise ValueError(f"batch factor {factor} is not exact")
        product["batch_factor"] = _plain(factor.normalize())
    return product


def dump(doc: dict[str, Any]) -> str:
    """A catalog document as YAML (prices as strings)."""
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=120)
