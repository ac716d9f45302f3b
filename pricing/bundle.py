"""A catalog directory as files, their content version, and the Catalog they load into (its
products, pricing/catalog.py, and its per-tenant overlays, pricing/overlays.py). The one place
that puts the two together, so that neither imports the other's loader."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from pathlib import Path

from pricing.catalog import SHIPPED_CATALOGS, Catalog, CatalogError, PriceSpec, Product, _load_file
from pricing.overlays import load_overlays

OVERLAYS = "overlays"  # the sub-directory of per-tenant price overlays (pricing/overlays.py)


def read_bundle(directory: Path | None = None) -> dict[str, str]:
    """A catalog directory's files as {name: text}: ``*.yaml`` and ``overlays/*.yaml``."""
    directory = Path(directory) if directory is not None else SHIPPED_CATALOGS
    files = {p.name: p for p in directory.glob("*.yaml")}
    files |= {f"{OVERLAYS}/{p.name}": p for p in (directory / OVERLAYS).glob("*.yaml")}
    return {name: files[name].read_text(encoding="utf-8") for name in sorted(files)}


def bundle_hash(files: dict[str, str]) -> str:
    """The content version of a catalog: sha256 over the files' names and texts, in name order
    (``sha256:`` and 16 hex digits). The same files give the same version on every machine."""
    h = hashlib.sha256()
    for name in sorted(files):
        for part in (name.encode(), files[name].encode()):
            h.update(len(part).to_bytes(8, "big"))
            h.update(part)
    return "sha256:" + h.hexdigest()[:16]


def load_catalog(directory: Path | None = None) -> Catalog:
    """Load every *.yaml catalog in ``directory`` (default: the shipped catalogs), and its
    overlays/ (per-tenant prices)."""
    directory = Path(directory) if directory is not None else SHIPPED_CATALOGS
    files = read_bundle(directory)
    if not any("/" not in name for name in files):
        raise CatalogError(f"no *.yaml catalog files in {directory}")
    return load_bundle(files)


def load_bundle(files: dict[str, str]) -> Catalog:
    """A catalog from its files' texts ({name: text}, as read_bundle gives)."""
    index: dict[tuple[str, str], list[Product]] = defaultdict(list)
    profile_of: dict[tuple[str, str], str] = {}
    currency_of: dict[str, str] = {}
    regions_of: dict[str, tuple[str, ...]] = {}
    profile_regions: dict[tuple[str, str], frozenset[str]] = {}
    names = sorted(n for n in files if "/" not in n)
    if not names:
        raise CatalogError("no catalog files")
    for name in names:
        cf = _load_file(name, files[name])
        if currency_of.setdefault(cf.provider, cf.currency) != cf.currency:
            raise CatalogError(f"{name}: provider {cf.provider} already priced in {currency_of[cf.provider]}")
        if regions_of.setdefault(cf.provider, cf.regions) != cf.regions:
            raise CatalogError(f"{name}: provider {cf.provider} declared with other regions in another file")
        for prefix, regions in cf.profiles.items():
            if profile_regions.setdefault((cf.provider, prefix), frozenset(regions)) != frozenset(regions):
                raise CatalogError(
                    f"{name}: profile {prefix} of {cf.provider} declared with other regions in another file"
                )
        for spec in cf.products:
            by_dim: dict[str, list[PriceSpec]] = defaultdict(list)
            for ps in spec.prices:
                by_dim[ps.dimension].append(ps)
            tiers = tuple(sorted({ps.above_input_tokens for ps in spec.prices if ps.above_input_tokens}))
            product = Product(
                cf.provider,
                cf.currency,
                f"{cf.provider}-{cf.currency.lower()}@{cf.version}",
                spec,
                {k: tuple(v) for k, v in by_dim.items()},
                frozenset(spec.regions if spec.regions is not None else cf.regions),
                tiers,
            )
            for model in (spec.id, *spec.aliases):
                if not spec.profile_only:
                    index[(cf.provider, model)].append(product)
                for prefix in spec.profiles or ():
                    key = (cf.provider, f"{prefix}.{model}")
                    if profile_of.setdefault(key, prefix) != prefix:
                        raise CatalogError(f"{name}: {key[1]} names two profiles")
                    index[key].append(product)
    for key in profile_of:
        if any(key in {(p.provider, n) for n in (p.spec.id, *p.spec.aliases)} for p in index[key]):
            raise CatalogError(f"{key[0]}/{key[1]}: both a product id and a cross-region profile id")
    for key, versions in index.items():
        versions.sort(key=lambda p: p.spec.effective_from)
        for a, b in zip(versions, versions[1:]):
            if a.spec.effective_to is None or a.spec.effective_to > b.spec.effective_from:
                raise CatalogError(f"{key[0]}/{key[1]}: overlapping effective ranges")
    catalog = Catalog(dict(index), sorted(files), regions_of, profile_of, profile_regions, bundle_hash(files))
    catalog.overlays = load_overlays(
        {n[len(OVERLAYS) + 1 :]: t for n, t in files.items() if n.startswith(OVERLAYS + "/")}, catalog
    )
    catalog.overlay_tenants = catalog.overlays.by_tenant
    return catalog
