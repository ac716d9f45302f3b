"""Catalog versions per partition: live catalog updates (schemas/catalog_record.py).

A partition's state holds the versions published on it, each from the position of its catalog
record on:

  ``v|p``          -> [[from_pos, version, seq], ...]  the last KEEP_VERSIONS, in position order
  ``c|p|version``  -> {name: text}                 the files of each version kept

An event is priced with the version in force at its position: the last one published before
it, else the worker's own catalog (MS_CATALOG_DIR). Replays after a crash see the same state
(it is in the changelog) and so the same version; a version is never applied to an event
before its record. A record that is not sealed with the catalog key for this topic and
partition, whose sequence is not above the one in force (an old record written again: a
rollback), whose files do not load, or whose content does not hash to its version, is refused
with the reason (a rejection on the dead-letter topic) and the version in force stays."""

from __future__ import annotations

import bisect
from collections.abc import MutableMapping
from typing import Any

from pricing import Catalog, CatalogError
from pricing.bundle import bundle_hash, load_bundle
from schemas import catalog_record
from schemas.errors import InputRejected
from schemas.record import Seal
from streams.rating.dedup import SEP

KEEP_VERSIONS = 8  # a replay reaches back less far than 8 publications
MAX_LOADED = 16  # catalogs kept parsed in memory


class CatalogRefused(InputRejected):
    pass


def sequence(history: list[list[Any]]) -> int:
    """The sequence of the version in force after `history` (0: none published, or one kept by
    a release before sequences)."""
    return history[-1][2] if history and len(history[-1]) > 2 else 0


def history_key(p: int) -> str:
    return f"v{SEP}{p}"


def files_key(p: int, version: str) -> str:
    return f"c{SEP}{p}{SEP}{version}"


class Versions:
    """The catalogs a rater prices with: its own (``base``) and the published ones."""

    def __init__(self, base: Catalog, key: bytes | None = None) -> None:
        self.base = base
        self.key = key
        self.loaded: dict[str, Catalog] = {base.content_hash: base}
        self.current: dict[int, str] = {}  # partition -> version in force after its last batch

    def history(self, state: MutableMapping[str, Any], p: int) -> list[list[Any]]:
        return state.get(history_key(p)) or []

    def at(self, state: MutableMapping[str, Any], p: int, history: list[list[Any]], pos: int) -> Catalog:
        """The catalog in force at ``pos``: the last version published before it, else the base."""
        i = bisect.bisect_left([h[0] for h in history], pos) - 1
        if i < 0:
            return self.base
        version = history[i][1]
        catalog = self.loaded.get(version)
        if catalog is None:
            catalog = self._load(state[files_key(p, version)], version)
        return catalog

    def publish(
        self,
        state: MutableMapping[str, Any],
        topic: str,
        p: int,
        history: list[list[Any]],
        pos: int,
        value: bytes,
        seal: Seal,
    ) -> list[list[Any]]:
        """Apply the catalog record at ``pos`` of ``topic``/``p`` (``seal``: its sequence and
        signature); the history after it. CatalogRefused with the reason when the record is not a
        sealed, newer, loadable catalog (the history is unchanged)."""
        if any(h[0] == pos for h in history):
            return history  # a replay of a record applied before
        if history and history[-1][0] > pos:
            return history  # a replay of a record applied before, whose entry is no longer kept
        if self.key is None:
            raise CatalogRefused("catalog record refused: this rater has no catalog key (MS_CATALOG_KEY)")
        if seal.seq is None:
            raise CatalogRefused(
                "catalog record refused: not signed with the catalog key for this topic, partition "
                "and sequence: it has no sequence (meterstream-catalog-seq); publish the catalog "
                "again with meterstream catalog publish"
            )
        if not catalog_record.signed_by(self.key, value, seal.hmac, topic=topic, partition=p, seq=seal.seq):
            raise CatalogRefused(
                "catalog record refused: not signed with the catalog key for this topic, "
                "partition and sequence (meterstream catalog publish signs with MS_CATALOG_KEY)"
            )
        in_force = sequence(history)
        if seal.seq <= in_force:
            raise CatalogRefused(
                f"catalog record refused: its sequence {seal.seq} is not above {in_force}, the "
                "one in force (an older publication written again cannot roll prices back)"
            )
        try:
            version, files = catalog_record.decode(value)
        except ValueError as exc:
            raise CatalogRefused(f"catalog record refused: {exc}") from None
        self._load(files, version)
        kept = [*history, [pos, version, seal.seq]][-KEEP_VERSIONS:]
        if version not in {h[1] for h in history}:
            state[files_key(p, version)] = files
        for gone in [h[1] for h in history[: len(history) + 1 - len(kept)]]:
            if gone not in {h[1] for h in kept}:
                del state[files_key(p, gone)]
        state[history_key(p)] = kept
        return kept

    def _load(self, files: dict[str, str], version: str) -> Catalog:
        actual = bundle_hash(files)
        if actual != version:
            raise CatalogRefused(f"catalog record refused: its files hash to {actual}, not {version}")
        catalog = self.loaded.get(version)
        if catalog is not None:
            return catalog
        try:
            catalog = load_bundle(files)
        except CatalogError as exc:
            raise CatalogRefused(f"catalog {version} refused: {exc}") from None
        if len(self.loaded) >= MAX_LOADED:
            for v in [v for v in self.loaded if v != self.base.content_hash][:1]:
                del self.loaded[v]
        self.loaded[version] = catalog
        return catalog
