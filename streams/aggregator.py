"""The per-partition counting core of the worker: validate, deduplicate, price, roll up.

It is deterministic in the partition's log: the state and the output for offset ``o`` depend
only on the messages at offsets <= o. Every piece of state lives under a key of its own source
partition and remembers the last source offset applied to it, so a message replayed after a
crash (Kafka delivers at least once) is never applied twice. Outputs are *absolute* values
with that offset as their version: writing them again is harmless. The README's "How
meterstream counts each event exactly once" gives the whole argument.

State layout (a MutableMapping: a Faust table in the worker, a dict in tests):
  ``m|p``                          -> [watermark_ms, last_offset]      per partition
  ``s|p|tenant|event_id``          -> [first_offset, ts_ms]            dedup, kept `dedup_ms`
  ``w|p|window|start|u|tenant|user|currency`` -> Totals                per-user windows
  ``w|p|window|start|m|tenant|model|currency`` -> Totals               per-model windows
"""

from __future__ import annotations

import datetime as dt
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson

from pricing import Catalog
from pricing.rating import Rejection, rate
from streams.windows import WINDOWS

# Totals: [cost, events, input, output, cached_input, cache_write, images, guardrail_units, last_offset]
COUNTERS = ("events", "input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens",
            "images", "guardrail_units")
SEP = "\x1f"  # key separator: cannot occur in ids (printable ASCII only)


@dataclass(frozen=True, slots=True)
class Source:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int  # the Kafka record's timestamp: "now" for the future-ts bound, replay-stable


@dataclass(slots=True)
class Output:
    """What one input message produces. Rows are absolute and versioned by source offset."""

    ledger: dict[str, Any] | None = None
    rollups: list[dict[str, Any]] = field(default_factory=list)
    rejected: dict[str, Any] | None = None
    duplicate: bool = False
    evict: list[str] = field(default_factory=list)


def _strip_text(raw: bytes) -> str:
    """The payload kept with a rejection: the input without any `text` (never stored)."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw[:65_536].decode("utf-8", "replace")
    if isinstance(doc, dict) and "text" in doc:
        doc["text"] = "<removed>"
    return orjson.dumps(doc).decode()[:1_048_576]


def _counts(priced: dict[str, Any]) -> tuple[int, ...]:
    u = priced["usage"]
    return (1, u.get("input_tokens", 0), u.get("output_tokens", 0), u.get("cached_input_tokens", 0),
            u.get("cache_write_tokens", 0), _images(u), priced["guardrail_units"])


def _images(usage: dict[str, Any]) -> int:
    return sum(i["count"] for i in usage.get("images", ()))


def ledger_row(priced: dict[str, Any], ts: Any, partition: int, offset: int, *, version: int) -> dict[str, Any]:
    """The ledger row of a priced event (``ts`` in ms, or a datetime), for the stream and re-rating."""
    u = priced["usage"]
    return {
        "tenant_id": priced["tenant_id"], "event_id": priced["event_id"], "user_id": priced["user_id"],
        "provider": priced["provider"], "model": priced["model"], "region": priced["region"] or "",
        "mode": priced["mode"], "ts": ts, "currency": priced["currency"], "cost": priced["cost"],
        "input_tokens": u.get("input_tokens", 0), "output_tokens": u.get("output_tokens", 0),
        "cached_input_tokens": u.get("cached_input_tokens", 0),
        "cache_write_tokens": u.get("cache_write_tokens", 0),
        "images": _images(u), "guardrail_units": priced["guardrail_units"],
        "line_items": orjson.dumps(priced["line_items"]).decode(),
        "usage": orjson.dumps(u).decode(), "labels": priced["labels"],
        "catalog_version": priced["catalog_version"], "estimated": priced["estimated"],
        "src_partition": partition, "src_offset": offset, "version": version,
    }


class Aggregator:
    def __init__(self, catalog: Catalog, *, lateness_ms: int = 48 * 3_600_000,
                 dedup_ms: int = 24 * 3_600_000) -> None:
        self.catalog = catalog
        self.lateness_ms = lateness_ms
        self.dedup_ms = max(dedup_ms, lateness_ms)  # a duplicate must not outlive its dedup entry

    def process(self, state: MutableMapping[str, Any], src: Source, raw: bytes) -> Output:
        p = src.partition
        meta_key = f"m{SEP}{p}"
        meta = state.get(meta_key) or [0, -1]
        watermark, meta_offset = meta
        out = Output()

        now = dt.datetime.fromtimestamp(src.timestamp_ms / 1000, dt.timezone.utc)
        result = rate(raw, self.catalog, now=now)
        if isinstance(result, Rejection):
            out.rejected = self._rejected(src, raw, result.reason, result.event_id)
        else:
            ts_ms = int(dt.datetime.fromisoformat(result["ts"]).timestamp() * 1000)
            if ts_ms < watermark - self.lateness_ms:
                out.rejected = self._rejected(
                    src, raw, f"too_late: event time is {(watermark - ts_ms) // 60_000} minutes behind "
                    f"this partition's stream time (allowed lateness {self.lateness_ms // 60_000} minutes)",
                    result["event_id"])
            else:
                self._count(state, src, result, ts_ms, out)
                watermark = max(watermark, ts_ms)
        if src.offset > meta_offset:
            state[meta_key] = [watermark, src.offset]
        return out

    def _count(self, state: MutableMapping[str, Any], src: Source, priced: dict[str, Any], ts_ms: int,
               out: Output) -> None:
        p, offset = src.partition, src.offset
        tenant = priced["tenant_id"]
        seen_key = f"s{SEP}{p}{SEP}{tenant}{SEP}{priced['event_id']}"
        seen = state.get(seen_key)
        if seen is not None and seen[0] != offset:
            out.duplicate = True  # an earlier offset carried this (tenant, event_id)
            return
        if seen is None:
            state[seen_key] = [offset, ts_ms]
        cost = Decimal(priced["cost"])
        counts = _counts(priced)
        currency = priced["currency"]
        for w in WINDOWS:
            start = w.start(ts_ms)
            for kind, who in (("u", priced["user_id"]), ("m", priced["model"])):
                key = SEP.join(("w", str(p), w.name, str(start), kind, tenant, who, currency))
                tot = state.get(key)
                if tot is None:
                    tot = ["0", 0, 0, 0, 0, 0, 0, 0, -1]
                if offset > tot[8]:  # not applied yet (a replay finds it applied and only re-emits it)
                    tot = [str(Decimal(tot[0]) + cost), *(a + b for a, b in zip(tot[1:8], counts)), offset]
                    state[key] = tot
                out.rollups.append(self._rollup_row(w.name, start, kind, tenant, who, currency, p, tot))
        out.ledger = ledger_row(priced, ts_ms, src.partition, src.offset, version=1)

    @staticmethod
    def _rollup_row(window: str, start: int, kind: str, tenant: str, who: str, currency: str, p: int,
                    tot: list[Any]) -> dict[str, Any]:
        row = {"table": f"rollup_{'user' if kind == 'u' else 'model'}_{window}",
               "window_start": start, "tenant_id": tenant, "user_id" if kind == "u" else "model": who,
               "currency": currency, "src_partition": p, "cost": tot[0], "version": tot[8]}
        row.update(zip(COUNTERS, tot[1:8]))
        return row

    @staticmethod
    def _rejected(src: Source, raw: bytes, reason: str, event_id: str | None) -> dict[str, Any]:
        tenant = None
        try:
            doc = orjson.loads(raw)
            if isinstance(doc, dict) and isinstance(doc.get("tenant_id"), str):
                tenant = doc["tenant_id"][:256]
        except orjson.JSONDecodeError:
            pass
        return {"src_topic": src.topic, "src_partition": src.partition, "src_offset": src.offset,
                "event_id": event_id, "tenant_id": tenant, "reason": reason, "payload": _strip_text(raw)}

    def expired(self, state: MutableMapping[str, Any], partition: int, keys: list[str]) -> list[str]:
        """Which of ``keys`` (this partition's window and dedup keys) are past keeping."""
        meta = state.get(f"m{SEP}{partition}")
        if not meta:
            return []
        watermark = meta[0]
        from streams.windows import BY_NAME

        gone = []
        for key in keys:
            parts = key.split(SEP)
            if parts[0] == "w":
                w = BY_NAME[parts[2]]
                if int(parts[3]) + w.ms + self.lateness_ms < watermark:
                    gone.append(key)
            elif parts[0] == "s":
                val = state.get(key)
                if val is not None and val[1] + self.dedup_ms < watermark:
                    gone.append(key)
        return gone
