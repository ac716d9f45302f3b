"""`meterstream catalog diff`: changed, added and removed prices between two sets of catalog
files (pricing/catalogs/FORMAT.md), compared as the documents say them."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml


def load_documents(path: Path) -> list[dict[str, Any]]:
    files = sorted(path.glob("*.yaml")) if path.is_dir() else [path]
    return [yaml.safe_load(f.read_text(encoding="utf-8")) for f in files]


def price_rows(docs: list[dict[str, Any]]) -> dict[tuple, str]:
    """(provider, product id, effective_from, dimension, per, qualifiers) -> price, of catalog
    documents; a product's batch factor and profile factors are rows too (``batch_factor``,
    ``profile <prefix>``, per 1)."""
    rows: dict[tuple, str] = {}
    for doc in docs:
        defaults = doc.get("defaults") or {}
        for p in doc.get("products") or []:
            start = str(p.get("effective_from") or defaults.get("effective_from"))
            factor = p.get("batch_factor", defaults.get("batch_factor"))
            if factor is not None:
                rows[(doc["provider"], p["id"], start, "batch_factor", 1, ())] = str(factor)
            for prefix, f in (p.get("profiles") or {}).items():
                rows[(doc["provider"], p["id"], start, f"profile {prefix}", 1, ())] = str(f)
            for price in p.get("prices") or []:
                quals = tuple(sorted((k, str(v)) for k, v in price.items() if k not in ("dimension", "per", "price")))
                rows[(doc["provider"], p["id"], start, price["dimension"], int(price["per"]), quals)] = str(
                    price["price"]
                )
    return rows


def diff(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> dict[str, list]:
    """Changed, added and removed prices between two sets of catalog documents."""
    a, b = price_rows(old), price_rows(new)
    return {
        "changed": sorted((k, a[k], b[k]) for k in a.keys() & b.keys() if Decimal(a[k]) != Decimal(b[k])),
        "added": sorted((k, b[k]) for k in b.keys() - a.keys()),
        "removed": sorted((k, a[k]) for k in a.keys() - b.keys()),
    }
