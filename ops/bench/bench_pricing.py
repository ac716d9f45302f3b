#!/usr/bin/env python3
"""Pricing throughput benchmark: JSON lines -> validated -> priced, on one core.

Measures meterstream's ``pricing.rating.rate(raw, catalog)`` (pydantic validation of one
billing_event v1 JSON line + exact Decimal pricing) over a deterministic, realistic mix of
providers and dimensions, and compares it with LiteLLM's ``cost_per_token`` on the same token
events when LiteLLM is installed (optional: the ``bench`` extra). See ops/bench/README.md.

    python ops/bench/bench_pricing.py [--events N] [--seed S] [--json OUT] [--cpu C]
                                      [--runs R] [--profile {cprofile,pyinstrument}] [--check]

Issue targets: all-mix >= 100,000 events/s and token subset >= 20x LiteLLM, one core.
Every line must be priced: a rejection aborts the benchmark (exit 2).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import hashlib
import json
import os
import platform
import random
import shlex
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DEFAULT_JSON = REPO / "ops" / "bench" / "results" / "pricing.json"
TARGET_EVENTS_PER_S = 100_000
TARGET_RATIO = 20.0

# ------------------------------------------------------------------------------------------
# Network guard: installed before anything else is imported, so an attempt by LiteLLM (or
# anything else) to fetch a price map or send telemetry is recorded and refused, not silent.
# ------------------------------------------------------------------------------------------
NETWORK_ATTEMPTS: list[str] = []


def _install_network_guard() -> None:
    def refuse(what: str, target: Any) -> None:
        NETWORK_ATTEMPTS.append(f"{what} {target!r}")
        raise OSError(f"bench_pricing: network access refused ({what} {target!r})")

    orig_connect = socket.socket.connect
    orig_connect_ex = socket.socket.connect_ex

    def connect(self: socket.socket, address: Any) -> Any:
        if self.family == getattr(socket, "AF_UNIX", None):
            return orig_connect(self, address)
        refuse("connect", address)

    def connect_ex(self: socket.socket, address: Any) -> Any:
        if self.family == getattr(socket, "AF_UNIX", None):
            return orig_connect_ex(self, address)
        refuse("connect_ex", address)

    def getaddrinfo(host: Any, *a: Any, **k: Any) -> Any:
        refuse("getaddrinfo", host)

    def create_connection(address: Any, *a: Any, **k: Any) -> Any:
        refuse("create_connection", address)

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]
    socket.create_connection = create_connection  # type: ignore[assignment]


# ------------------------------------------------------------------------------------------
# The event mix. Model ids and regions are the shipped catalogs' (pricing/catalogs/*.yaml);
# what each model allows (regions, batch, cached input, commitments, training methods, image
# tiers, guardrail policies) is read from the catalog entry in force, so every event is
# priceable by construction and the benchmark's no-rejection assertion guards the rest.
# ------------------------------------------------------------------------------------------
TS_FROM = dt.datetime(2024, 11, 20, tzinfo=dt.UTC)  # latest effective_from among the models used
TS_TO = dt.datetime(2024, 12, 31, tzinfo=dt.UTC)

# Share of events per kind (sums to 1).
KINDS: list[tuple[str, float]] = [
    ("tokens", 0.860),
    ("embedding", 0.040),
    ("image", 0.030),
    ("guardrail_on_model", 0.020),
    ("guardrail_standalone", 0.015),
    ("dedicated", 0.015),
    ("training", 0.008),
    ("storage", 0.004),
    ("human_tasks", 0.008),
]

# Token models: (provider, model id, relative weight). Providers: openai 45%, bedrock 35%,
# bailian 20% of token events.
TOKEN_MODELS: list[tuple[str, str, float]] = [
    ("openai", "gpt-4o", 16),
    ("openai", "gpt-4o-mini", 16),
    ("openai", "gpt-4o-2024-08-06", 4),
    ("openai", "gpt-4o-2024-11-20", 3),
    ("openai", "gpt-4o-mini-2024-07-18", 2),
    ("openai", "gpt-4o-2024-05-13", 1),
    ("openai", "gpt-3.5-turbo", 3),
    ("bedrock", "anthropic.claude-3-haiku-20240307-v1:0", 8),
    ("bedrock", "anthropic.claude-3-5-sonnet-20240620-v1:0", 6),
    ("bedrock", "anthropic.claude-3-sonnet-20240229-v1:0", 3),
    ("bedrock", "anthropic.claude-3-opus-20240229-v1:0", 1),
    ("bedrock", "anthropic.claude-v2:1", 1),
    ("bedrock", "anthropic.claude-v2", 0.5),
    ("bedrock", "anthropic.claude-instant-v1", 1.5),
    ("bedrock", "cohere.command-text-v14", 2),
    ("bedrock", "cohere.command-light-text-v14", 1),
    ("bedrock", "cohere.command-r-plus-v1:0", 1.5),
    ("bedrock", "cohere.command-r-v1:0", 1.5),
    ("bedrock", "meta.llama2-13b-chat-v1", 1),
    ("bedrock", "meta.llama2-70b-chat-v1", 1.5),
    ("bedrock", "mistral.mistral-7b-instruct-v0:2", 1),
    ("bedrock", "mistral.mixtral-8x7b-instruct-v0:1", 1.5),
    ("bedrock", "mistral.mistral-large-2402-v1:0", 1),
    ("bedrock", "ai21.j2-mid-v1", 0.5),
    ("bedrock", "ai21.j2-ultra-v1", 0.5),
    ("bedrock", "ai21.jamba-instruct-v1:0", 0.5),
    ("bedrock", "amazon.titan-text-lite-v1", 1),
    ("bailian", "qwen-max", 4),
    ("bailian", "qwen-plus", 5),
    ("bailian", "qwen-turbo", 5),
    ("bailian", "qwen-max-0403", 0.5),
    ("bailian", "qwen-plus-0723", 1),
    ("bailian", "qwen-72b-chat", 0.5),
    ("bailian", "qwen1.5-72b-chat", 0.5),
    ("bailian", "qwen1.5-110b-chat", 0.5),
    ("bailian", "qwen-14b-chat", 0.5),
    ("bailian", "qwen1.5-14b-chat", 0.5),
    ("bailian", "qwen-7b-chat", 0.5),
    ("bailian", "qwen2-7b-instruct", 1),
    ("bailian", "qwen1.5-7b-chat", 0.5),
]

# Models whose pure token events go to LiteLLM's cost_per_token under the same model id
# (checked against LiteLLM's bundled price map: an unmapped one aborts the comparison).
# Not here: Bedrock Claude 3 Haiku / Claude 3 Sonnet / Claude 2.0 / Command R(+) (LiteLLM
# 1.110 does not map those ids) and every Bailian model (LiteLLM prices DashScope in USD under
# other ids; our catalog is CNY).
LITELLM_MODELS = frozenset(
    {
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4o-2024-08-06",
        "gpt-4o-2024-11-20",
        "gpt-4o-mini-2024-07-18",
        "gpt-4o-2024-05-13",
        "gpt-3.5-turbo",
        "anthropic.claude-3-5-sonnet-20240620-v1:0",
        "anthropic.claude-3-opus-20240229-v1:0",
        "anthropic.claude-v2:1",
        "anthropic.claude-instant-v1",
        "cohere.command-text-v14",
        "cohere.command-light-text-v14",
        "meta.llama2-13b-chat-v1",
        "meta.llama2-70b-chat-v1",
        "mistral.mistral-7b-instruct-v0:2",
        "mistral.mixtral-8x7b-instruct-v0:1",
        "mistral.mistral-large-2402-v1:0",
        "ai21.j2-mid-v1",
        "ai21.j2-ultra-v1",
        "ai21.jamba-instruct-v1:0",
        "amazon.titan-text-lite-v1",
    }
)

EMBED_MODELS = [("bedrock", "cohere.embed-english-v3", 3), ("bedrock", "cohere.embed-multilingual-v3", 1)]
IMAGE_MODELS: list[tuple[str, str, float, list[tuple[int, int]], list[int | None]]] = [
    (
        "bedrock",
        "stability.stable-diffusion-xl-v1",
        5,
        [(1024, 1024), (768, 768), (1024, 576), (512, 512)],
        [30, 50, 50, 80],
    ),
    ("bedrock", "stability.stable-diffusion-xl-v0", 2, [(512, 512), (768, 768), (1024, 1024)], [30, 50, 70]),
    ("bedrock", "amazon.titan-image-generator-v1", 3, [(1024, 1024), (512, 512), (768, 768)], [None]),
]
GUARDED_MODELS = [  # Bedrock models invoked with a guardrail attached
    ("bedrock", "anthropic.claude-3-haiku-20240307-v1:0", 4),
    ("bedrock", "anthropic.claude-3-5-sonnet-20240620-v1:0", 3),
    ("bedrock", "meta.llama2-70b-chat-v1", 1),
    ("bedrock", "mistral.mixtral-8x7b-instruct-v0:1", 1),
    ("bedrock", "cohere.command-r-v1:0", 1),
]
DEDICATED_MODELS = [
    ("bedrock", "anthropic.claude-v2:1", 2),
    ("bedrock", "anthropic.claude-instant-v1", 2),
    ("bedrock", "anthropic.claude-v2", 1),
    ("bedrock", "amazon.titan-text-express-v1", 1),
    ("bedrock", "amazon.titan-image-generator-v1", 1),
    ("bedrock", "cohere.command-text-v14", 1),
    ("bedrock", "cohere.command-light-text-v14", 1),
    ("bedrock", "cohere.embed-english-v3", 1),
    ("bedrock", "meta.llama2-13b-chat-v1", 1),
    ("bedrock", "meta.llama2-13b-v1", 1),
    ("bedrock", "meta.llama2-70b-v1", 1),
    ("bedrock", "stability.stable-diffusion-xl-v1", 1),
    ("bailian", "qwen-max", 2),
    ("bailian", "qwen-plus", 2),
    ("bailian", "qwen-turbo", 2),
    ("bailian", "qwen1.5-72b-chat", 1),
    ("bailian", "qwen1.5-110b-chat", 1),
    ("bailian", "qwen1.5-14b-chat", 1),
    ("bailian", "qwen1.5-7b-chat", 1),
    ("bailian", "qwen2-72b-instruct", 1),
    ("bailian", "qwen2-7b-instruct", 1),
    ("bailian", "emo", 0.5),
    ("bailian", "emo-detect", 0.5),
    ("bailian", "animate-anyone", 0.5),
    ("bailian", "animate-anyone-detect", 0.5),
    ("bailian", "wanx-v1-0521", 0.5),
]
TRAINING_MODELS = [
    ("bedrock", "cohere.command-text-v14", 1),
    ("bedrock", "cohere.command-light-text-v14", 1),
    ("bedrock", "meta.llama2-13b-v1", 1),
    ("bedrock", "meta.llama2-70b-v1", 1),
    ("bedrock", "amazon.titan-image-generator-v1", 1),
    ("bailian", "qwen-plus", 2),
    ("bailian", "qwen-turbo", 2),
    ("bailian", "qwen-turbo-0624", 1),
    ("bailian", "qwen-plus-0723", 1),
    ("bailian", "qwen-72b-chat", 0.5),
    ("bailian", "qwen2-72b-instruct", 1),
    ("bailian", "qwen1.5-72b-chat", 0.5),
    ("bailian", "qwen-14b-chat", 0.5),
    ("bailian", "qwen-vl-plus", 0.5),
    ("bailian", "qwen1.5-14b-chat", 0.5),
    ("bailian", "qwen-7b-chat", 0.5),
    ("bailian", "qwen2-7b-instruct", 1),
    ("bailian", "qwen1.5-7b-chat", 0.5),
]
STORAGE_MODELS = [
    ("bedrock", "cohere.command-text-v14", 1),
    ("bedrock", "cohere.command-light-text-v14", 1),
    ("bedrock", "meta.llama2-13b-v1", 1),
    ("bedrock", "meta.llama2-70b-v1", 1),
    ("bedrock", "amazon.titan-image-generator-v1", 1),
]
BEDROCK_REGIONS = ["us-east-1", "us-east-1", "us-east-1", "us-west-2", "us-west-2", "eu-central-1", "ap-northeast-1"]
BAILIAN_REGIONS = ["cn-beijing"]  # the regions the CNY catalog declares (pricing/catalogs/bailian-cny.yaml)
APPS = ["chat", "search", "support-bot", "summarizer", "code-assist", "rag", "agent", "translate"]


class _Weighted:
    """Deterministic weighted choice over a fixed list."""

    def __init__(self, items: list[Any], weights: list[float]) -> None:
        self.items = items
        acc, cum = 0.0, []
        for w in weights:
            acc += w
            cum.append(acc)
        self.cum = cum

    def pick(self, rng: random.Random) -> Any:
        return rng.choices(self.items, cum_weights=self.cum)[0]


def _weighted(rows: list[tuple]) -> _Weighted:
    return _Weighted([r for r in rows], [r[2] for r in rows])


class MixGenerator:
    def __init__(self, catalog: Any, seed: int) -> None:
        self.catalog = catalog
        self.rng = random.Random(seed)
        self.kinds = _Weighted([k for k, _ in KINDS], [w for _, w in KINDS])
        self.tokens = _weighted(TOKEN_MODELS)
        self.embed = _weighted(EMBED_MODELS)
        self.image = _Weighted(IMAGE_MODELS, [r[2] for r in IMAGE_MODELS])
        self.guarded = _weighted(GUARDED_MODELS)
        self.dedicated = _weighted(DEDICATED_MODELS)
        self.training = _weighted(TRAINING_MODELS)
        self.storage = _weighted(STORAGE_MODELS)
        self.span_ms = int((TS_TO - TS_FROM).total_seconds() * 1000)
        gp = self.product("bedrock", "guardrails")
        self.guardrail_policies = [p.policy for p in gp.prices["guardrail_text_units"]]
        # 400 tenants with a skewed (Zipf-like) share of traffic
        self.tenants = _Weighted([f"tenant-{i:04d}" for i in range(400)], [1 / (i + 1) for i in range(400)])

    def product(self, provider: str, model: str) -> Any:
        return self.catalog.lookup(provider, model, TS_FROM)

    # -- common fields -------------------------------------------------------------------
    def _region(self, provider: str, product: Any, allowed: tuple[str, ...] | None = None) -> str | None:
        rng = self.rng
        regions = allowed or product.spec.regions
        if regions:
            # the first listed region carries most traffic
            return regions[0] if rng.random() < 0.5 else rng.choice(regions)
        if provider == "bedrock":
            return rng.choice(BEDROCK_REGIONS)
        if provider == "bailian":
            return rng.choice(BAILIAN_REGIONS)
        return None  # openai: no region

    def _base(self, provider: str, model: str, region: str | None) -> dict[str, Any]:
        rng = self.rng
        ts = TS_FROM + dt.timedelta(milliseconds=rng.randrange(self.span_ms))
        tenant = self.tenants.pick(rng)
        ev: dict[str, Any] = {
            "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "ts": ts.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "tenant_id": tenant,
            "user_id": f"{tenant}-user-{rng.randrange(60):03d}",
            "provider": provider,
            "model": model,
        }
        if region is not None:
            ev["region"] = region
        return ev

    def _labels(self, ev: dict[str, Any]) -> None:
        rng = self.rng
        r = rng.random()
        if r < 0.45:
            labels = {"app": rng.choice(APPS), "env": "prod" if rng.random() < 0.85 else "staging"}
            if r < 0.15:
                labels["feature"] = f"f-{rng.randrange(40)}"
            ev["labels"] = labels

    def _tokens(self, mean_ln: float, sigma: float, lo: int, hi: int) -> int:
        return max(lo, min(hi, int(self.rng.lognormvariate(mean_ln, sigma))))

    # -- kinds ---------------------------------------------------------------------------
    def token_event(self) -> tuple[dict[str, Any], bool]:
        """A model invocation billed by tokens. Returns (event, is_pure) where pure = realtime,
        input + output tokens only (the LiteLLM-comparable shape)."""
        rng = self.rng
        provider, model, _ = self.tokens.pick(rng)
        product = self.product(provider, model)
        ev = self._base(provider, model, self._region(provider, product))
        usage: dict[str, Any] = {
            "input_tokens": self._tokens(6.7, 1.2, 1, 400_000),  # median ~800
            "output_tokens": self._tokens(5.5, 1.0, 1, 16_000),  # median ~250
        }
        pure = True
        if "cached_input_tokens" in product.prices and rng.random() < 0.30:
            # OpenAI prompt caching: >= 1024 tokens, in steps of 128; disjoint from input_tokens
            usage["cached_input_tokens"] = 1024 + 128 * rng.randrange(0, 120)
            pure = False
        if product.spec.batch_factor is not None and rng.random() < 0.08:
            ev["mode"] = "batch"
            pure = False
        ev["usage"] = usage
        self._labels(ev)
        return ev, pure

    def embedding_event(self) -> dict[str, Any]:
        provider, model, _ = self.embed.pick(self.rng)
        product = self.product(provider, model)
        ev = self._base(provider, model, self._region(provider, product))
        ev["usage"] = {"input_tokens": self._tokens(5.0, 1.3, 1, 500_000)}
        self._labels(ev)
        return ev

    def image_event(self) -> dict[str, Any]:
        rng = self.rng
        provider, model, _, sizes, steps = self.image.pick(rng)
        product = self.product(provider, model)
        ev = self._base(provider, model, self._region(provider, product))
        images = []
        for _ in range(1 if rng.random() < 0.9 else 2):
            w, h = rng.choice(sizes)
            img: dict[str, Any] = {"count": rng.choice([1, 1, 1, 2, 4]), "width": w, "height": h}
            s = rng.choice(steps)
            if s is not None:
                img["steps"] = s
            images.append(img)
        ev["usage"] = {"images": images}
        self._labels(ev)
        return ev

    def _guardrail(self) -> dict[str, Any]:
        rng = self.rng
        g: dict[str, Any] = {"policies": rng.sample(self.guardrail_policies, rng.choice([1, 1, 2, 2, 3]))}
        g["input_chars"] = self._tokens(7.5, 1.2, 1, 2_000_000)
        if rng.random() < 0.6:
            g["output_chars"] = self._tokens(7.0, 1.0, 1, 200_000)
        return g

    def guardrail_on_model_event(self) -> dict[str, Any]:
        provider, model, _ = self.guarded.pick(self.rng)
        product = self.product(provider, model)
        ev = self._base(provider, model, self._region(provider, product))
        ev["usage"] = {
            "input_tokens": self._tokens(6.7, 1.2, 1, 400_000),
            "output_tokens": self._tokens(5.5, 1.0, 1, 16_000),
            "guardrail": self._guardrail(),
        }
        self._labels(ev)
        return ev

    def guardrail_standalone_event(self) -> dict[str, Any]:
        ev = self._base("bedrock", "guardrails", self.rng.choice(BEDROCK_REGIONS))
        ev["usage"] = {"guardrail": self._guardrail()}
        self._labels(ev)
        return ev

    def dedicated_event(self) -> dict[str, Any]:
        rng = self.rng
        provider, model, _ = self.dedicated.pick(rng)
        product = self.product(provider, model)
        options = []  # (period, commitment, regions or None)
        for dim, period in (("dedicated_hours", "hours"), ("dedicated_months", "months")):
            for p in product.prices.get(dim, ()):
                options.append((period, p.commitment or "none", p.regions))
        period, commitment, regions = rng.choice(options)
        ev = self._base(provider, model, self._region(provider, product, regions))
        ded: dict[str, Any] = {"instances": rng.choice([1, 1, 1, 2, 2, 4])}
        if period == "hours":
            ded["hours"] = rng.choice(["1", "1", "1", "1", "0.5", "0.25", "24"])
        else:
            ded["months"] = rng.choice(["1", "1", "0.5"])
        if commitment != "none":
            ded["commitment"] = commitment
        ev["usage"] = {"dedicated": ded}
        self._labels(ev)
        return ev

    def training_event(self) -> dict[str, Any]:
        rng = self.rng
        provider, model, _ = self.training.pick(rng)
        product = self.product(provider, model)
        ev = self._base(provider, model, self._region(provider, product))
        methods = [p.method or "sft" for p in product.prices.get("training_tokens", ())]
        if methods:
            tr: dict[str, Any] = {
                "tokens": self._tokens(15.0, 1.0, 1000, 10**10),
                "epochs": rng.choice([1, 2, 3, 3, 5]),
            }
            m = rng.choice(methods)
            if m != "sft" or rng.random() < 0.5:
                tr["method"] = m
        else:  # images-seen training (Titan Image Generator)
            tr = {"images_seen": rng.choice([500, 1000, 5000, 32000])}
        ev["usage"] = {"training": tr}
        self._labels(ev)
        return ev

    def storage_event(self) -> dict[str, Any]:
        provider, model, _ = self.storage.pick(self.rng)
        product = self.product(provider, model)
        ev = self._base(provider, model, self._region(provider, product))
        ev["usage"] = {"storage_months": self.rng.choice(["1", "1", "0.5", "0.033"])}
        return ev

    def human_tasks_event(self) -> dict[str, Any]:
        ev = self._base("bedrock", "human-evaluation", self.rng.choice(BEDROCK_REGIONS))
        ev["usage"] = {"human_tasks": self._tokens(4.0, 1.2, 1, 100_000)}
        self._labels(ev)
        return ev

    def generate(self, n: int) -> tuple[list[bytes], list[str], list[int]]:
        """N JSON lines, the kind of each, and the indexes of the LiteLLM-comparable subset."""
        import orjson

        makers: dict[str, Callable[[], dict[str, Any]]] = {
            "embedding": self.embedding_event,
            "image": self.image_event,
            "guardrail_on_model": self.guardrail_on_model_event,
            "guardrail_standalone": self.guardrail_standalone_event,
            "dedicated": self.dedicated_event,
            "training": self.training_event,
            "storage": self.storage_event,
            "human_tasks": self.human_tasks_event,
        }
        lines: list[bytes] = []
        kinds: list[str] = []
        subset: list[int] = []
        for i in range(n):
            kind = self.kinds.pick(self.rng)
            if kind == "tokens":
                ev, pure = self.token_event()
                if pure and ev["model"] in LITELLM_MODELS:
                    subset.append(i)
            else:
                ev = makers[kind]()
            lines.append(orjson.dumps(ev))
            kinds.append(kind)
        return lines, kinds, subset


# ------------------------------------------------------------------------------------------
# Machine description
# ------------------------------------------------------------------------------------------
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(pkg: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(pkg)
    except PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    try:  # read-only
        out = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        )
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "") if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def _threads_affinity() -> dict[str, str]:
    """Cpus_allowed_list of every thread of this process (checks the pinning held)."""
    out = {}
    for task in sorted(Path("/proc/self/task").iterdir()):
        try:
            for line in (task / "status").read_text().splitlines():
                if line.startswith("Cpus_allowed_list"):
                    out[task.name] = line.split(":", 1)[1].strip()
        except OSError:
            pass
    return out


# ------------------------------------------------------------------------------------------
# Timing
# ------------------------------------------------------------------------------------------
def _measure(name: str, loop: Callable[[], Any], n: int, runs: int, warmup: Callable[[], Any]) -> dict[str, Any]:
    warmup()
    times = []
    for _ in range(runs):
        gc.collect()
        t0 = time.perf_counter()
        loop()
        times.append(time.perf_counter() - t0)
    best = min(times)
    res = {
        "events": n,
        "runs_s": [round(t, 4) for t in times],
        "best_s": round(best, 4),
        "events_per_s": round(n / best, 1),
        "us_per_event": round(best / n * 1e6, 3),
    }
    print(
        f"  {name:<38} {n:>8,} events  best {best:7.3f} s  {n / best:>11,.0f} events/s  "
        f"(runs: {', '.join(f'{t:.3f}' for t in times)})",
        flush=True,
    )
    return res


class RejectedLines(AssertionError):
    pass


def _rate_loop(rate: Callable, Rejection: type, catalog: Any, lines: list[bytes]) -> Callable[[], None]:
    def loop() -> None:
        bad = []
        for i, raw in enumerate(lines):
            r = rate(raw, catalog)
            if r.__class__ is Rejection:
                bad.append((i, r))
        if bad:
            raise RejectedLines(bad)

    return loop


def _profile(
    kind: str, rate: Callable, catalog: Any, lines: list[bytes], out_dir: Path, top: int
) -> list[dict[str, Any]]:
    """Profile rate() over the lines once; print and return the top entries by cumulative time."""
    out_dir.mkdir(parents=True, exist_ok=True)

    def work() -> None:
        for raw in lines:
            rate(raw, catalog)

    if kind == "pyinstrument":
        from pyinstrument import Profiler

        prof = Profiler(interval=0.0002)
        prof.start()
        work()
        prof.stop()
        text = prof.output_text(unicode=False, color=False, show_all=False)
        (out_dir / "pricing-profile.txt").write_text(text)
        print(text)
        # also give a flat cumulative table from the pyinstrument tree
        cum: dict[str, float] = Counter()
        total = prof.last_session.duration if prof.last_session else 0.0

        def walk(frame: Any, seen: frozenset) -> None:
            key = f"{frame.function} ({Path(frame.file_path or '?').name}:{frame.line_no})"
            if key not in seen:  # count recursive frames once
                cum[key] += frame.time
            for c in frame.children:
                walk(c, seen | {key})

        root = prof.last_session.root_frame() if prof.last_session else None
        if root is not None:
            walk(root, frozenset())
        rate_s = max((v for k, v in cum.items() if k.startswith("rate (")), default=total)
        keep = [(k, v) for k, v in cum.items() if not k.startswith("[self]") and "bench_pricing.py" not in k]
        return [
            {"function": k, "cumulative_s": round(v, 4), "share_of_rate": round(v / rate_s, 4) if rate_s else None}
            for k, v in sorted(keep, key=lambda kv: -kv[1])[:top]
        ]

    import cProfile
    import io
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    work()
    prof.disable()
    prof.dump_stats(str(out_dir / "pricing.pstats"))
    buf = io.StringIO()
    st = pstats.Stats(prof, stream=buf).sort_stats("cumulative")
    st.print_stats(top)
    text = buf.getvalue()
    (out_dir / "pricing-profile.txt").write_text(text)
    print(text)
    stats = st.stats  # type: ignore[attr-defined]
    rate_s = max((v[3] for (f, _, fn), v in stats.items() if fn == "rate" and f.endswith("rating.py")), default=0.0)
    rows = []
    for (file, line, func), (_cc, nc, tt, ct, _) in sorted(stats.items(), key=lambda kv: -kv[1][3]):
        if file.endswith("bench_pricing.py") or "_lsprof" in func or "disable" in func:
            continue
        rows.append(
            {
                "function": f"{func} ({Path(file).name}:{line})",
                "calls": nc,
                "tottime_s": round(tt, 4),
                "cumulative_s": round(ct, 4),
                "share_of_rate": round(ct / rate_s, 4) if rate_s else None,
            }
        )
        if len(rows) == top:
            break
    return rows


# ------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=200_000, help="number of JSON lines to generate (default 200000)")
    ap.add_argument("--seed", type=int, default=20241102, help="generator seed (default 20241102)")
    ap.add_argument(
        "--json", type=Path, default=DEFAULT_JSON, help=f"results file (default {DEFAULT_JSON.relative_to(REPO)})"
    )
    ap.add_argument("--cpu", type=int, default=None, help="core to pin to (default: the highest allowed one)")
    ap.add_argument("--runs", type=int, default=3, help="timed runs per measurement; the best counts (default 3)")
    ap.add_argument("--no-litellm", action="store_true", help="skip the LiteLLM comparison even if it is installed")
    ap.add_argument(
        "--profile",
        choices=["cprofile", "pyinstrument"],
        default=None,
        help="after the measurements, profile rate() over the all-mix lines once and print the hot spots",
    )
    ap.add_argument("--profile-events", type=int, default=50_000, help="lines to profile (default 50000)")
    ap.add_argument(
        "--check", action="store_true", help="exit 1 when a target (>=100k events/s, >=20x LiteLLM) is missed"
    )
    args = ap.parse_args(argv)
    command = shlex.join([Path(sys.executable).as_posix(), *sys.argv])

    # 1. one core, before any import that could start threads (threads inherit the mask)
    allowed = sorted(os.sched_getaffinity(0))
    cpu = args.cpu if args.cpu is not None else allowed[-1]
    os.sched_setaffinity(0, {cpu})
    _install_network_guard()
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # bundled price map, never the network

    sys.path.insert(0, str(REPO))  # run from a checkout even without the editable install
    from pricing import load_catalog, money_str
    from pricing.rating import Rejection, rate
    from schemas.validate import parse_event

    catalog = load_catalog()

    # 2. the events
    t0 = time.perf_counter()
    lines, kinds, subset_idx = MixGenerator(catalog, args.seed).generate(args.events)
    gen_s = time.perf_counter() - t0
    subset = [lines[i] for i in subset_idx]
    import orjson

    subset_tok = []
    provider_of: dict[str, str] = {}
    for raw in subset:
        d = orjson.loads(raw)
        subset_tok.append((d["model"], d["usage"]["input_tokens"], d["usage"]["output_tokens"]))
        provider_of[d["model"]] = d["provider"]
    providers = Counter(orjson.loads(raw)["provider"] for raw in lines)
    kind_counts = Counter(kinds)
    avg_bytes = sum(map(len, lines)) / len(lines)
    digest = hashlib.sha256(b"\n".join(lines)).hexdigest()

    litellm = None
    litellm_skip = None
    import_s = None
    if args.no_litellm:
        litellm_skip = "--no-litellm"
    else:
        try:
            t0 = time.perf_counter()
            import litellm  # type: ignore[no-redef]

            import_s = time.perf_counter() - t0
        except ImportError as exc:
            litellm_skip = f"litellm not installed ({exc}); pip install 'meterstream[bench]'"

    machine = {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "allowed_cpus": allowed,
        "pinned_cpu": cpu,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
    }
    packages = {p: _version(p) for p in ("meterstream", "pydantic", "pydantic-core", "orjson", "litellm")}

    print("meterstream pricing benchmark: JSON line -> validated -> priced, one core")
    print(f"  command : {command}")
    print(f"  machine : {machine['cpu_model']}, {machine['cores']} cores, pinned to cpu {cpu}; {machine['python']}")
    print("  packages: " + ", ".join(f"{k} {v or '-'}" for k, v in packages.items()))
    print(f"  commit  : {_git_commit()}")
    print(
        f"  events  : {len(lines):,} (seed {args.seed}, {avg_bytes:.0f} bytes avg, generated in {gen_s:.1f} s); "
        f"token subset for LiteLLM: {len(subset):,}; sha256 {digest[:12]}"
    )
    print("  mix     : " + ", ".join(f"{k} {v / len(lines):.1%}" for k, v in kind_counts.most_common()))
    print("  provider: " + ", ".join(f"{k} {v / len(lines):.1%}" for k, v in providers.most_common()))
    print(flush=True)

    # 3. measurements
    results: dict[str, Any] = {}
    runs = args.runs
    warm_all = lines[: min(len(lines), 20_000)]
    try:
        results["all_mix"] = _measure(
            "meterstream rate(), all-mix",
            _rate_loop(rate, Rejection, catalog, lines),
            len(lines),
            runs,
            _rate_loop(rate, Rejection, catalog, warm_all),
        )
        results["token_subset"] = _measure(
            "meterstream rate(), token subset",
            _rate_loop(rate, Rejection, catalog, subset),
            len(subset),
            runs,
            _rate_loop(rate, Rejection, catalog, subset[:20_000]),
        )
    except RejectedLines as exc:
        bad = exc.args[0]
        print(f"\nFAILED: {len(bad)} line(s) were rejected, not priced. First ones:", file=sys.stderr)
        for i, r in bad[:10]:
            print(f"  line {i}: {r.reason}\n    {lines[i].decode() if i < len(lines) else ''}", file=sys.stderr)
        return 2

    def validate_loop(ls: list[bytes]) -> Callable[[], None]:
        def loop() -> None:
            for raw in ls:
                parse_event(raw)

        return loop

    results["validate_only"] = _measure(
        "  of which parse_event() only", validate_loop(lines), len(lines), runs, validate_loop(warm_all)
    )

    litellm_costs: list[tuple[float, float]] = []
    unmapped: dict[str, str] = {}
    if litellm is not None:
        cpt = litellm.cost_per_token
        for m in sorted({m for m, _, _ in subset_tok}):  # every subset model must be mapped
            try:
                cpt(model=m, prompt_tokens=1, completion_tokens=1)
            except Exception as exc:  # noqa: BLE001 - report whatever LiteLLM raises
                unmapped[m] = f"{type(exc).__name__}: {str(exc)[:160]}"
        if unmapped:
            litellm_skip = "LiteLLM does not map: " + "; ".join(f"{m} ({e})" for m, e in unmapped.items())
            print(f"  LiteLLM comparison skipped: {litellm_skip}", file=sys.stderr)
        else:

            def ll_loop(items: list[tuple[str, int, int]], out: list) -> Callable[[], None]:
                def loop() -> None:
                    out.clear()
                    app = out.append
                    for m, p, c in items:
                        app(cpt(model=m, prompt_tokens=p, completion_tokens=c))

                return loop

            results["litellm"] = _measure(
                "litellm cost_per_token, token subset",
                ll_loop(subset_tok, litellm_costs),
                len(subset_tok),
                runs,
                ll_loop(subset_tok[:2_000], []),
            )
            results["litellm"]["import_s"] = round(import_s or 0.0, 3)
            results["litellm"]["model_cost_entries"] = len(litellm.model_cost)

    affinity = _threads_affinity()
    pinned_ok = all(v == str(cpu) for v in affinity.values())

    # 4. prices: ours vs LiteLLM's on the same events (untimed)
    differences: list[dict[str, Any]] = []
    if litellm_costs:
        per_model: dict[str, dict[str, Any]] = {}
        for raw, (m, p, c), (li, lo) in zip(subset, subset_tok, litellm_costs):
            priced = rate(raw, catalog)
            ours = Decimal(priced["cost"])
            theirs = li + lo
            if abs(float(ours) - theirs) > 1e-9 * max(abs(theirs), float(ours)) + 1e-15:
                row = per_model.setdefault(m, {"model": m, "events": 0, "example": None})
                row["events"] += 1
                if row["example"] is None:
                    row["example"] = {
                        "event_id": priced["event_id"],
                        "input_tokens": p,
                        "output_tokens": c,
                        "meterstream_cost": priced["cost"],
                        "litellm_cost": repr(theirs),
                    }
        for m, row in sorted(per_model.items()):
            prod = catalog.lookup(provider_of[m], m, TS_TO)
            ip, op = prod.prices["input_tokens"][0], prod.prices["output_tokens"][0]
            info = litellm.model_cost.get(m, {})
            row["meterstream_per_1k"] = {
                "input": money_str(ip.price * 1000 / ip.per),
                "output": money_str(op.price * 1000 / op.per),
            }
            row["litellm_per_1k"] = {
                "input": repr(round((info.get("input_cost_per_token") or 0) * 1000, 12)),
                "output": repr(round((info.get("output_cost_per_token") or 0) * 1000, 12)),
            }
            row["total_events_of_model"] = sum(1 for mm, _, _ in subset_tok if mm == m)
            differences.append(row)

    # 5. report
    all_eps = results["all_mix"]["events_per_s"]
    sub_eps = results["token_subset"]["events_per_s"]
    ll_eps = results.get("litellm", {}).get("events_per_s")
    ratio = round(sub_eps / ll_eps, 2) if ll_eps else None
    met_rate = all_eps >= TARGET_EVENTS_PER_S
    met_ratio = ratio is not None and ratio >= TARGET_RATIO

    print()
    print(f"  {'measurement':<40} {'events':>9} {'events/s':>12} {'us/event':>9}  target")
    print(f"  {'-' * 40} {'-' * 9} {'-' * 12} {'-' * 9}  {'-' * 20}")
    rows = [
        (
            "meterstream rate(), all-mix",
            results["all_mix"],
            f">= {TARGET_EVENTS_PER_S:,}: {'met' if met_rate else 'MISSED'}",
        ),
        ("meterstream rate(), token subset", results["token_subset"], ""),
        ("meterstream parse_event() only, all-mix", results["validate_only"], ""),
    ]
    if "litellm" in results:
        rows.append(("litellm cost_per_token, token subset", results["litellm"], ""))
    for name, r, tgt in rows:
        print(f"  {name:<40} {r['events']:>9,} {r['events_per_s']:>12,.0f} {r['us_per_event']:>9.2f}  {tgt}")
    if ratio is not None:
        print(
            f"  {'ratio token subset / litellm':<40} {'':>9} {ratio:>11.2f}x {'':>9}  "
            f">= {TARGET_RATIO:.0f}x: {'met' if met_ratio else 'MISSED'}"
        )
    else:
        print(f"  LiteLLM comparison not run: {litellm_skip}")
    print(
        f"\n  pinning held for all {len(affinity)} thread(s): {pinned_ok}; "
        f"network attempts: {len(NETWORK_ATTEMPTS)}" + (f" {NETWORK_ATTEMPTS[:5]}" if NETWORK_ATTEMPTS else "")
    )
    if differences:
        print("\n  Prices that differ between meterstream's catalog and LiteLLM's bundled map (same events):")
        for d in differences:
            ex = d["example"]
            print(
                f"    {d['model']}: {d['events']:,}/{d['total_events_of_model']:,} events; per 1K in/out "
                f"ours {d['meterstream_per_1k']['input']}/{d['meterstream_per_1k']['output']} vs LiteLLM "
                f"{d['litellm_per_1k']['input']}/{d['litellm_per_1k']['output']}; e.g. {ex['input_tokens']} in + "
                f"{ex['output_tokens']} out = {ex['meterstream_cost']} vs {ex['litellm_cost']}"
            )
    elif litellm_costs:
        print("\n  Every token-subset event costs the same in meterstream and LiteLLM (rel. tol. 1e-9).")

    report = {
        "benchmark": "pricing: JSON line -> validated -> priced (pricing.rating.rate)",
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": command,
        "git_commit": _git_commit(),
        "machine": machine,
        "packages": packages,
        "params": {
            "events": len(lines),
            "seed": args.seed,
            "runs": runs,
            "statistic": "best of runs after a warm-up",
            "token_subset_events": len(subset),
            "avg_line_bytes": round(avg_bytes, 1),
            "lines_sha256": digest,
            "litellm_input": "pre-parsed (model, prompt_tokens, completion_tokens) tuples; "
            "meterstream gets the raw JSON bytes",
        },
        "mix": {"kinds": dict(kind_counts.most_common()), "providers": dict(providers.most_common())},
        "results": results,
        "ratio_token_subset_over_litellm": ratio,
        "litellm_skipped": litellm_skip,
        "targets": {
            "events_per_s": TARGET_EVENTS_PER_S,
            "events_per_s_met": met_rate,
            "ratio": TARGET_RATIO,
            "ratio_met": met_ratio if ratio is not None else None,
        },
        "pinning": {"cpu": cpu, "threads": affinity, "held": pinned_ok},
        "network_attempts": NETWORK_ATTEMPTS,
        "price_differences_vs_litellm": differences,
    }

    if args.profile:
        print(
            f"\n  Profile ({args.profile}) of rate() over the first {min(args.profile_events, len(lines)):,} all-mix lines:\n"
        )
        report["profile"] = {
            "tool": args.profile,
            "top": _profile(args.profile, rate, catalog, lines[: args.profile_events], args.json.parent, 25),
        }

    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(f"\n  results written to {args.json}")
    if args.check and not (met_rate and met_ratio):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
