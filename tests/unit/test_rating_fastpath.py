"""The fast path of rate() (schemas.validate.parse_common + pricing.engine.price_common) gives
exactly what the pydantic path (parse_event + price_event) gives, or steps aside (None).

Checked over the benchmark's generated mix, both bad-input corpora, one-change variants of good
events and variants with a repeated key: whenever the fast path answers, the priced dict serializes to the same bytes (same keys,
order, decimal strings); it never answers for an input the full path rejects; and rate() returns
the same priced dict or Rejection as the full path for every input."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import random
from pathlib import Path
from typing import Any

import orjson
import pytest

from pricing import PricingError, load_catalog, price_event
from pricing.engine import price_common
from pricing.rating import Rejection, rate
from schemas.billing_event import MAX_FUTURE
from schemas.validate import InvalidEvent, _limit, parse_common, parse_event
from tests.corpus import BAD, HOSTILE, load, raw_bytes

ROOT = Path(__file__).resolve().parents[2]
CATALOG = load_catalog()
NOW = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def _bench_lines(n: int) -> list[bytes]:
    spec = importlib.util.spec_from_file_location("bench_pricing", ROOT / "ops" / "bench" / "bench_pricing.py")
    bench = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(bench)  # type: ignore[union-attr]
    return bench.MixGenerator(CATALOG, 20241102).generate(n)[0]


LINES = _bench_lines(20_000)


def full_path(raw: bytes | str, now: dt.datetime | None = NOW) -> dict[str, Any] | Rejection:
    """rate() as it was before the fast path: pydantic validation, then price_event."""
    try:
        event = parse_event(raw, now=now)
    except InvalidEvent as exc:
        return Rejection(exc.reason, exc.event_id)
    try:
        return price_event(event, CATALOG)
    except PricingError as exc:
        return Rejection(exc.reason, event.event_id)


def check(raw: bytes | str) -> bool:
    """Assert fast path == full path for raw; True when the fast path priced it."""
    ref = full_path(raw)
    got = rate(raw, CATALOG, now=NOW)
    if isinstance(ref, Rejection):
        assert got == ref
    else:
        assert orjson.dumps(got) == orjson.dumps(ref)
    common = parse_common(raw, NOW)
    if common is None:
        return False
    assert not isinstance(ref, Rejection) or not ref.reason.startswith(("not JSON", "event is")), ref
    event = parse_event(raw, now=NOW)  # the fast path accepts only what pydantic accepts
    doc, ts, iso = common
    assert ts == event.ts and iso == event.ts.isoformat()
    priced = price_common(doc, ts, iso, CATALOG)
    if priced is None:
        return False
    assert orjson.dumps(priced) == orjson.dumps(ref)
    return True


def test_bench_mix_is_identical_and_mostly_fast():
    fast = sum(check(raw) for raw in LINES)
    assert fast >= 0.85 * len(LINES)  # token, embedding and human-task events take the fast path


@pytest.mark.parametrize("path", [BAD, HOSTILE], ids=["bad_events", "bad_events_hostile"])
def test_bad_corpus_is_identical(path):
    for case in load(path):
        raw = raw_bytes(case)
        assert not check(raw), case["kind"]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            continue
        assert not check(text), case["kind"]


def _repeated_keys(raw: bytes) -> list[bytes]:
    """Variants of a good line with a key repeated (at the top, in usage, in labels), spelled
    plainly, with whitespace before the colon, or with an escape."""
    doc = orjson.loads(raw)
    first = next(iter(doc["usage"])).encode()
    out = [
        raw[:-1] + b',"event_id":"other"}',
        raw[:-1] + b',"tenant_id" :"other"}',
        raw.replace(b'"usage":{', b'"usage":{"' + first + b'":7,', 1),
        raw.replace(b'"usage":{', b'"usage":{"' + first + b'"\n:\t7,', 1),
        raw.replace(b'"usage":{', b'"usage":{"' + first.replace(b"_", b"\\u005f") + b'":7,', 1),
        raw.replace(b'"usage":{', b'"usage":{"' + first + b'":7},"usage":{', 1),
    ]
    if doc.get("labels"):
        k = next(iter(doc["labels"])).encode()
        out.append(raw.replace(b'"labels":{', b'"labels":{"' + k + b'":"x",', 1))
    return [v for v in out if v != raw]


def test_repeated_keys_are_identical_and_never_fast():
    for raw in LINES[:800]:
        for variant in _repeated_keys(raw):
            assert not check(variant), variant
            got = rate(variant, CATALOG, now=NOW)
            assert isinstance(got, Rejection) and "duplicate key" in got.reason, (variant, got)


TS_VARIANTS = [
    "2024-12-01T10:00:00Z",
    "2024-12-01T10:00:00.5Z",
    "2024-12-01T10:00:00.000Z",
    "2024-12-01T10:00:00.000001Z",
    "2024-12-01T10:00:00.1234567Z",
    "2024-12-01T10:00:00+08:00",
    "2024-12-01T10:00:00-05:30",
    "2024-12-01T10:00:00-00:00",
    "2024-12-01T10:00:00+23:59",
    "2024-12-01T10:00:00+24:00",
    "2024-12-01T10:00:00+05:60",
    "2024-12-01t10:00:00z",
    "2024-12-01 10:00:00Z",
    "2024-12-01T10:00Z",
    "2024-12-01T10:00:00",
    "2024-12-01T10:00:00+0800",
    "2024-12-01T24:00:00Z",
    "2024-12-01T10:60:00Z",
    "2024-12-01T10:00:60Z",
    "2024-02-30T10:00:00Z",
    "2024-02-29T10:00:00Z",
    "2023-02-29T10:00:00Z",
    "1999-12-31T23:59:59Z",
    "2099-01-01T00:00:00Z",
    "2025-01-01T00:15:00Z",
    "2025-01-01T00:15:00.000001Z",
    "2025-01-01T08:15:00+08:00",
    "\uff12024-12-01T10:00:00Z",
    "2024-12-01T10:00:00.Z",
    "2024-12-01T10:00:00,5Z",
    "2000-01-01T00:00:00+23:59",
    "1999-12-31T23:59:59-00:01",
    "2000-01-01T00:00:00Z",
    "2024-12-01T10:00:00.123456789Z",
    "2024-12-01T10:00:00.1234560Z",
    "2024-12-01T10:00:00,1234567+08:00",
]


def _mutations() -> list[Any]:
    def usage(**kw: Any) -> Any:
        return lambda d: d["usage"].update(kw)

    def top(**kw: Any) -> Any:
        return lambda d: d.update(kw)

    muts: list[Any] = [top(ts=t) for t in TS_VARIANTS]
    muts += [
        top(region=None),
        top(region="us-west-2"),
        top(region="mars-1"),
        top(region="US-EAST-1"),
        top(region=""),
        top(region=5),
        lambda d: d.pop("region", None),
        top(mode="batch"),
        top(mode="BATCH"),
        top(mode=None),
        top(mode="realtime"),
        top(labels=None),
        top(labels={}),
        top(labels={"a b": "x"}),
        top(labels={"k": 1}),
        top(labels={"k": "v" * 257}),
        top(labels={"k": "\u00e9" * 256}),
        top(labels={"k\n": "v"}),
        top(labels={f"k{i}": "v" for i in range(33)}),
        top(labels={f"k{i}": "v" for i in range(32)}),
        top(labels={"k" * 65: "v"}),
        top(labels=[]),
        top(text=None),
        top(text={"input": "hello world"}),
        top(labels={"k": "a\u202eb"}),
        top(labels={"k": "a\u0000b"}),
        top(labels={"k": "\u00a0"}),
        top(labels={"k": "a\u200bb"}),
        top(labels={"k": 'say "hi": now'}),
        top(labels={"k": "\U0001f680"}),
        top(region="xx-nowhere-1"),
        top(region="us-east1"),
        top(region="cn-beijing"),
        top(region="eu-west-3"),
        top(extra=1),
        top(event_id="x" * 129),
        top(event_id="x" * 128),
        top(event_id="\u00e9"),
        top(event_id="a\n"),
        top(event_id="a\nb"),
        top(event_id=""),
        top(event_id=None),
        top(event_id=7),
        top(tenant_id=""),
        top(user_id="u" * 256),
        top(user_id="u" * 257),
        top(model="nope"),
        top(provider="azure"),
        top(provider="Openai"),
        top(provider="open ai"),
        top(usage=[1]),
        top(usage={}),
        top(usage=None),
        lambda d: d.pop("usage"),
        lambda d: d.pop("ts"),
        lambda d: d.pop("event_id"),
        top(ts=1732000000),
        usage(input_tokens=0),
        usage(input_tokens=None),
        usage(input_tokens=True),
        usage(input_tokens=1.0),
        usage(input_tokens=100_000_000),
        usage(input_tokens=100_000_001),
        usage(input_tokens=-1),
        usage(input_tokens=0, output_tokens=0),
        usage(output_tokens=None),
        usage(cached_input_tokens=1024),
        usage(cached_input_tokens=0),
        usage(cache_write_tokens=77),
        usage(human_tasks=3),
        usage(human_tasks=10_000_001),
        usage(storage_months="1"),
        usage(bogus=1),
        usage(input_tokens=2**70),
        lambda d: d.update(usage=dict(reversed(list(d["usage"].items())))),
        # billing_event 1.1: never the fast path, the same answer
        top(service_tier="default"),
        top(service_tier="standard"),
        top(service_tier="flex"),
        top(service_tier="priority"),
        top(service_tier="scale"),
        top(service_tier=None),
        top(inference_geo="us"),
        top(inference_geo="global"),
        top(inference_geo=None),
        usage(cache_write_1h_tokens=5),
        usage(audio_input_tokens=3),
        usage(audio_output_tokens=0),
        usage(image_input_tokens=7),
        usage(image_output_tokens=2),
        usage(server_tool_requests={"web_search": 1}),
        usage(server_tool_requests={"web_search": 0}),
        usage(server_tool_requests={}),
        usage(server_tool_requests={"web_fetch": 1}),
    ]
    return muts


def test_one_change_variants_are_identical():
    rng = random.Random(7)
    muts = _mutations()
    good = LINES[:1500]
    for i, raw in enumerate(good):
        for picks in ([muts[i % len(muts)]], rng.sample(muts, 2)):
            doc = orjson.loads(raw)
            try:
                for m in picks:
                    m(doc)
            except (AttributeError, KeyError, TypeError):
                continue  # the first change removed what the second changes
            check(json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode())  # json: big ints too


@pytest.mark.parametrize(
    "raw",
    [
        # duplicate keys: the last one wins, for orjson and pydantic alike
        b'{"event_id":"a","event_id":"b","ts":"2024-12-01T00:00:00Z","tenant_id":"t","user_id":"u",'
        b'"provider":"openai","model":"gpt-4o","usage":{"input_tokens":1,"input_tokens":2}}',
        b'{"event_id":"a","ts":"2024-12-01T00:00:00Z","tenant_id":"t","user_id":"u","provider":"openai",'
        b'"model":"gpt-4o","usage":{"output_tokens":3,"input_tokens":2},"labels":{"a":"1","b":"2","a":"3"}}',
        b'{"event_id":"a","ts":"2024-12-01T00:00:00Z","tenant_id":"t","user_id":"u","provider":"openai",'
        b'"model":"gpt-4o","usage":{"input_tokens":2},"labels":{"a":"x\\u0000y"}}',
        b'\xef\xbb\xbf{"event_id":"a","ts":"2024-12-01T00:00:00Z","tenant_id":"t","user_id":"u","provider":"openai",'
        b'"model":"gpt-4o","usage":{"input_tokens":2}}',
        b'{"event_id":"a","ts":"2024-12-01T00:00:00Z","tenant_id":"t","user_id":"u","provider":"openai",'
        b'"model":"gpt-4o","usage":{"input_tokens":2}}\n',
        b'{"event_id":"a","ts":"2024-12-01T00:00:00Z","tenant_id":"t","user_id":"u","provider":"openai",'
        b'"model":"gpt-4o","usage":{"input_tokens":2}} {}',
    ],
)
def test_odd_json_is_identical(raw):
    check(raw)


def test_ts_limit_without_now_never_exceeds_the_clock():
    assert _limit(None) <= dt.datetime.now(dt.UTC) + MAX_FUTURE
    doc = orjson.loads(LINES[0])
    doc["ts"] = (dt.datetime.now(dt.UTC) + MAX_FUTURE + dt.timedelta(seconds=2)).isoformat()
    assert parse_common(orjson.dumps(doc)) is None
    assert isinstance(rate(orjson.dumps(doc), CATALOG), Rejection)


def test_fast_checks_mirror_the_models_constraints():
    from schemas import validate as v
    from schemas.billing_event import BillingEvent, LabelKey, LabelValue, Region

    def rx(annotated_meta: Any) -> str:  # "^[...]+$" with min/max length -> "[...]{min,max}"
        c = next(m for m in annotated_meta if hasattr(m, "pattern"))
        assert c.pattern.startswith("^[") and c.pattern.endswith("]+$")
        return f"{c.pattern[1:-2]}{{{c.min_length},{c.max_length}}}"

    fields = BillingEvent.model_fields
    assert [rx(fields[f].metadata) for f in ("event_id", "tenant_id", "user_id", "provider", "model")] == [
        v._ID,
        v._NAME,
        v._NAME,
        "[a-z0-9_-]{1,64}",
        v._NAME,
    ]
    assert v._REGION.__self__.pattern == rx(Region.__metadata__)
    assert v._LABEL_KEYS.__self__.pattern.startswith(rx(LabelKey.__metadata__))
    assert next(m.max_length for m in LabelValue.__metadata__ if hasattr(m, "max_length")) == 256
    from schemas.billing_event import _printable  # checked by str.isprintable() (see test_strict_input)

    assert [m.func for m in LabelValue.__metadata__ if hasattr(m, "func")] == [_printable]
    assert next(m.max_length for m in fields["labels"].metadata) == 32
