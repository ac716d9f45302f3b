"""Realistic mixed billing traffic for `meterstream produce --generate N` and the demo.

Deterministic for a seed. Mixes providers, models, regions and every billing dimension, and on
request adds duplicate event_ids, late events and bad inputs (each kind of bad input named)."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from typing import Any

import orjson

# (weight, provider, model, region or None, usage builder name)
TEMPLATES: list[tuple[int, str, str, str | None, str]] = [
    (20, "openai", "gpt-4o", None, "chat_cached"),
    (15, "openai", "gpt-4o-mini", None, "chat_cached"),
    (12, "bedrock", "anthropic.claude-3-haiku-20240307-v1:0", "us-east-1", "chat"),
    (8, "bedrock", "anthropic.claude-3-5-sonnet-20240620-v1:0", "us-east-1", "chat"),
    (5, "bedrock", "anthropic.claude-3-sonnet-20240229-v1:0", "eu-west-2", "chat_guarded"),
    (5, "bedrock", "cohere.command-text-v14", None, "chat"),
    (4, "bedrock", "meta.llama2-13b-chat-v1", "us-east-1", "chat"),
    (4, "bedrock", "cohere.embed-english-v3", None, "embed"),
    (3, "bedrock", "stability.stable-diffusion-xl-v1", None, "image"),
    (3, "bedrock", "guardrails", None, "guardrail"),
    (8, "bailian", "qwen-plus", None, "chat_batchable"),
    (6, "bailian", "qwen-flash", None, "chat_batchable"),  # qwen-turbo has no current price (refused)
    (2, "bailian", "qwen-max", None, "dedicated"),
    (1, "bailian", "qwen2-7b-instruct", None, "training"),
    (1, "bedrock", "human-evaluation", None, "human"),
    (2, "openai", "gpt-4o", None, "from_text"),
]
BAD_KINDS = [
    ("not_json", lambda ev: b"{this is not json"),
    ("unknown_model", lambda ev: orjson.dumps({**ev, "model": "gpt-17-ultra"})),
    ("negative_tokens", lambda ev: orjson.dumps({**ev, "usage": {"input_tokens": -5}})),
    ("missing_tenant", lambda ev: orjson.dumps({k: v for k, v in ev.items() if k != "tenant_id"})),
    ("unknown_field", lambda ev: orjson.dumps({**ev, "cost": "0"})),
    (
        "wrong_region",
        lambda ev: orjson.dumps(
            {
                **ev,
                "provider": "bedrock",
                "model": "anthropic.claude-3-opus-20240229-v1:0",
                "region": "eu-west-2",
                "usage": {"input_tokens": 10},
            }
        ),
    ),
    ("float_tokens", lambda ev: orjson.dumps({**ev, "usage": {"input_tokens": 1.5}})),
    ("no_offset_ts", lambda ev: orjson.dumps({**ev, "ts": "2026-01-01T00:00:00"})),
    ("zero_usage", lambda ev: orjson.dumps({**ev, "usage": {"input_tokens": 0}})),
    (
        "batch_not_offered",
        lambda ev: orjson.dumps(
            {
                **ev,
                "provider": "bailian",
                "model": "qwen-max-0403",
                "mode": "batch",
                "region": None,
                "usage": {"input_tokens": 10},
            }
        ),
    ),
]
WORDS = "the cost of every token matters when billing large language model usage in real time".split()


def _usage(kind: str, rnd: random.Random) -> tuple[dict[str, Any], dict[str, Any] | None, str]:
    mode = "realtime"
    if kind in ("chat", "chat_cached", "chat_guarded", "chat_batchable"):
        u: dict[str, Any] = {"input_tokens": rnd.randint(50, 8000), "output_tokens": rnd.randint(10, 2000)}
        if kind == "chat_cached" and rnd.random() < 0.4:
            u["cached_input_tokens"] = rnd.randint(100, 4000)
        if kind == "chat_cached" and rnd.random() < 0.1:
            mode = "batch"
        if kind == "chat_batchable" and rnd.random() < 0.3:
            mode = "batch"
        if kind == "chat_guarded":
            u["guardrail"] = {
                "policies": ["content_filter", "denied_topics"],
                "input_chars": rnd.randint(0, 5000),
                "output_chars": rnd.randint(1, 8000),
            }
        return u, None, mode
    if kind == "embed":
        return {"input_tokens": rnd.randint(10, 4000)}, None, mode
    if kind == "image":
        return (
            {
                "images": [
                    {"count": rnd.randint(1, 4), "width": 1024, "height": 1024, "steps": rnd.choice([30, 50, 70])}
                ]
            },
            None,
            mode,
        )
    if kind == "guardrail":
        return (
            {
                "guardrail": {
                    "policies": rnd.sample(["content_filter", "denied_topics", "sensitive_info", "word_filter"], 2),
                    "input_chars": rnd.randint(1, 6000),
                    "output_chars": rnd.randint(0, 6000),
                }
            },
            None,
            mode,
        )
    if kind == "dedicated":
        return {"dedicated": {"instances": rnd.randint(1, 2), "hours": str(rnd.choice([1, 0.5, 2]))}}, None, mode
    if kind == "training":
        return {"training": {"tokens": rnd.randint(10_000, 2_000_000), "epochs": rnd.randint(1, 3)}}, None, mode
    if kind == "human":
        return {"human_tasks": rnd.randint(1, 50)}, None, mode
    if kind == "from_text":
        text = {
            "input": " ".join(rnd.choices(WORDS, k=rnd.randint(5, 60))),
            "output": " ".join(rnd.choices(WORDS, k=rnd.randint(5, 40))),
        }
        return {}, text, mode
    raise ValueError(kind)


def generate(
    n: int,
    *,
    seed: int = 7,
    now: dt.datetime | None = None,
    tenants: int = 3,
    users: int = 40,
    duplicate_rate: float = 0.0,
    late: int = 0,
    too_late: int = 0,
    bad: int = 0,
    spread: dt.timedelta = dt.timedelta(minutes=30),
    duplicate_window: int | None = None,
) -> Iterator[tuple[str, bytes]]:
    """Yield (kind, line) pairs: kind is "good", "duplicate", "late" (hours behind, within the
    allowed lateness), "too_late" (3 days behind) or "bad:<name>". Special lines come after the
    first tenth of the traffic, so each partition has stream time by then. A duplicate repeats
    any earlier good event, or with `duplicate_window` one of that many kept (each new event
    replaces a random kept one: bounded memory, for the soak)."""
    rnd = random.Random(seed)
    now = now or dt.datetime.now(dt.UTC).replace(microsecond=0)
    weights = [t[0] for t in TEMPLATES]
    good: list[dict[str, Any]] = []
    special = (
        ["late"] * late + ["too_late"] * too_late + [f"bad:{BAD_KINDS[i % len(BAD_KINDS)][0]}" for i in range(bad)]
    )
    total = n + len(special)
    positions = set(rnd.sample(range(total // 10, total), len(special))) if special else set()
    special_iter = iter(special)
    for i in range(n + len(special)):
        if i in positions:
            kind = next(special_iter)
            base = rnd.choice(good) if good else None
            ev = dict(base) if base else _event(rnd, weights, now, spread, i, tenants, users)
            ev["event_id"] = f"evt-{seed}-{i}"
            if kind in ("late", "too_late"):
                behind = dt.timedelta(hours=rnd.randint(2, 30) if kind == "late" else 72)
                ev["ts"] = (now - behind).isoformat()
                yield kind, orjson.dumps(ev)
            else:
                name = kind.split(":", 1)[1]
                yield kind, dict(BAD_KINDS)[name](ev)
            continue
        if good and rnd.random() < duplicate_rate:
            yield "duplicate", orjson.dumps(rnd.choice(good))
            continue
        ev = _event(rnd, weights, now, spread, i, tenants, users)
        if duplicate_window is None or len(good) < duplicate_window:
            good.append(ev)
        else:
            good[rnd.randrange(duplicate_window)] = ev  # a random one of the window makes way
        yield "good", orjson.dumps(ev)


def _event(
    rnd: random.Random, weights: list[int], now: dt.datetime, spread: dt.timedelta, i: int, tenants: int, users: int
) -> dict[str, Any]:
    _, provider, model, region, kind = rnd.choices(TEMPLATES, weights)[0]
    usage, text, mode = _usage(kind, rnd)
    tenant = f"tenant-{rnd.randrange(tenants)}"
    ev: dict[str, Any] = {
        "event_id": f"evt-{i}-{rnd.getrandbits(32):08x}",
        "ts": (now - spread * rnd.random()).isoformat(timespec="milliseconds"),
        "tenant_id": tenant,
        "user_id": f"user-{rnd.randrange(users):02d}",
        "provider": provider,
        "model": model,
        "mode": mode,
        "usage": usage,
        # a team on 4 in 5 events (no draw from rnd: the rest of the traffic is as it was)
        "labels": {"app": rnd.choice(["chat", "search", "agent"]), **({"team": f"team-{i % 4}"} if i % 5 else {})},
    }
    if region:
        ev["region"] = region
    if text:
        ev["text"] = text
    return ev
