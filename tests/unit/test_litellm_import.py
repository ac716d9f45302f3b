"""`meterstream catalog import litellm` and `catalog diff` (pricing/litellm_import.py): prices read
as the decimals the file holds, scaled exactly; a model with costs the catalogs cannot express is
listed, not imported; an imported catalog prices events exactly as computed by hand from the file."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import orjson
from click.testing import CliRunner

from pricing import load_catalog
from pricing.rating import Rejection, rate
from streams.cli.main import main

SAMPLE = Path(__file__).parents[1] / "data" / "litellm_prices_sample.json"
FROM = "2026-12-01T00:00:00Z"
NOW = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC)


def imported(tmp_path: Path, *providers: str) -> tuple[Path, str, str]:
    args = ["catalog", "import", "litellm", str(SAMPLE), "--effective-from", FROM, "--out", str(tmp_path / "cat")]
    for p in providers:
        args += ["--provider", p]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    return tmp_path / "cat", res.stdout, res.stderr


def test_import_converts_exactly_and_lists_what_it_cannot(tmp_path):
    out, stdout, stderr = imported(tmp_path, "openai", "anthropic")
    # openai: gpt-4o, gpt-4o-mini, o3-mini, text-embedding-3-small and the two fine-tuned models
    assert "openai-usd.yaml: 6 products" in stdout and "anthropic-usd.yaml: 2 products" in stdout
    for key, why in [
        ("ft:gpt-odd-both-caches", "which one is the cached-input price is ambiguous"),
        ("gpt-4o-audio-preview", "input_cost_per_audio_token"),
        ("dall-e-3", "mode 'image_generation'"),
        ("gpt-odd-float", "not exact"),
        ("claude-sonnet-4-5-20250929", "the tier above 200000 tokens has no cache_write_tokens price"),
    ]:
        assert f"not imported: {key}: " in stderr and why in stderr.split(f"not imported: {key}: ")[1].splitlines()[0]
    assert (
        "imported without: claude-sonnet-4-5: cache_creation_input_token_cost_above_1hr, "
        "search_context_cost_per_query" in stderr
    )
    assert "mistral" not in stdout + stderr  # another provider: not asked for
    cat = load_catalog(out)
    gpt = cat.lookup("openai", "gpt-4o", NOW).spec
    assert gpt.batch_factor == Decimal("0.5") and gpt.effective_from == dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    assert "LiteLLM price map litellm_prices_sample.json" in gpt.source and "key gpt-4o" in gpt.source
    assert "service tiers not imported: cache_read_input_token_cost_priority" in gpt.source
    sonnet = cat.lookup("anthropic", "claude-sonnet-4-5", NOW)
    assert sonnet.spec.batch_factor == Decimal("0.5") and sonnet.tiers == (200000,)
    assert "not priced (no dimension): cache_creation_input_token_cost_above_1hr" in sonnet.spec.source


def test_an_imported_catalog_prices_current_models_exactly(tmp_path):
    out, _, _ = imported(tmp_path, "openai", "anthropic")
    cat = load_catalog(out)
    raw = json.loads(SAMPLE.read_text(), parse_float=Decimal)
    cases = [
        ("openai", "gpt-4o", {"input_tokens": 1000, "cached_input_tokens": 3000, "output_tokens": 500}, "realtime"),
        ("openai", "gpt-4o-mini", {"input_tokens": 123457, "output_tokens": 999}, "batch"),
        ("openai", "o3-mini", {"input_tokens": 7, "cached_input_tokens": 11, "output_tokens": 13}, "realtime"),
        (
            "anthropic",
            "claude-3-5-haiku-20241022",
            {"input_tokens": 50, "cached_input_tokens": 4000, "cache_write_tokens": 2051, "output_tokens": 503},
            "realtime",
        ),
        (
            "anthropic",
            "claude-sonnet-4-5",
            {"input_tokens": 9000, "cached_input_tokens": 4000, "cache_write_tokens": 2051, "output_tokens": 503},
            "batch",
        ),
        (
            "anthropic",
            "claude-sonnet-4-5",  # 150,000 + 50,000 + 1 input tokens: above 200K, all at the tier
            {"input_tokens": 150000, "cached_input_tokens": 50000, "cache_write_tokens": 1, "output_tokens": 77},
            "realtime",
        ),
    ]
    keys = {
        "input_tokens": "input_cost_per_token",
        "output_tokens": "output_cost_per_token",
        "cached_input_tokens": "cache_read_input_token_cost",
        "cache_write_tokens": "cache_creation_input_token_cost",
    }
    for i, (provider, model, usage, mode) in enumerate(cases):
        ev = {
            "event_id": f"e{i}",
            "ts": NOW.isoformat(),
            "tenant_id": "t",
            "user_id": "u",
            "provider": provider,
            "model": model,
            "mode": mode,
            "usage": usage,
        }
        result = rate(orjson.dumps(ev), cat, now=NOW)
        assert not isinstance(result, Rejection), result
        entry = raw[model]
        tier = "_above_200k_tokens" if sum(n for d, n in usage.items() if d != "output_tokens") > 200_000 else ""
        suffix = "_batches" if mode == "batch" else tier
        by_hand = sum(Decimal(n) * entry[keys[d] + suffix] for d, n in usage.items())  # per-token prices from the file
        assert Decimal(result["cost"]) == by_hand, (model, result["cost"], by_hand)


def test_diff_lists_changed_added_and_removed_prices(tmp_path):
    out, _, _ = imported(tmp_path, "openai")
    new = tmp_path / "new"
    new.mkdir()
    text = (out / "openai-usd.yaml").read_text()
    text = text.replace("price: '2.5'", "price: '2.75'")
    text = text.replace("- id: o3-mini", "- id: o3-mini-renamed")
    (new / "openai-usd.yaml").write_text(text)
    res = CliRunner().invoke(main, ["catalog", "diff", str(out), str(new)])
    assert res.exit_code == 1
    lines = res.stdout.splitlines()
    assert "changed  openai/gpt-4o from 2026-12-01T00:00:00Z: input_tokens per 1000000: 2.5 -> 2.75" in lines
    assert sum(line.startswith("added    openai/o3-mini-renamed") for line in lines) == 3
    assert sum(line.startswith("removed  openai/o3-mini ") for line in lines) == 3
    same = CliRunner().invoke(main, ["catalog", "diff", str(out), str(out)])
    assert same.exit_code == 0 and "0 changed, 0 added, 0 removed" in same.stderr


def test_a_fine_tuned_openai_models_cache_creation_cost_is_its_cached_input_price(tmp_path):
    # The map gives ft:gpt-4o-2024-11-20 cache_creation_input_token_cost 1.875e-06 (half its
    # 3.75e-06 input: OpenAI's cached-input rate for fine-tuned GPT-4o); OpenAI bills no cache
    # writes. It becomes cached_input_tokens, and a cache write on it is rejected, never priced.
    out, _, _ = imported(tmp_path, "openai")
    cat = load_catalog(out)
    ft = cat.lookup("openai", "ft:gpt-4o-2024-11-20", NOW)
    assert {d: [str(p.price) for p in ps] for d, ps in ft.prices.items()} == {
        "input_tokens": ["3.75"],
        "cached_input_tokens": ["1.875"],
        "output_tokens": ["15"],
    }
    ev = {
        "event_id": "ft1",
        "ts": NOW.isoformat(),
        "tenant_id": "t",
        "user_id": "u",
        "provider": "openai",
        "model": "ft:gpt-4o-2024-11-20",
        "usage": {"input_tokens": 1000, "cached_input_tokens": 4000, "output_tokens": 100},
    }
    # 1,000 x 3.75/1M = 0.00375; 4,000 x 1.875/1M = 0.0075; 100 x 15/1M = 0.0015
    assert rate(orjson.dumps(ev), cat, now=NOW)["cost"] == "0.01275"
    ev["usage"] = {"input_tokens": 1000, "cache_write_tokens": 10}
    assert "has no price for cache_write_tokens" in rate(orjson.dumps(ev), cat, now=NOW).reason
    # an ft: model that states its cached input under the usual key is imported as it says
    mini = cat.lookup("openai", "ft:gpt-4o-mini-2024-07-18", NOW)
    assert [str(p.price) for p in mini.prices["cached_input_tokens"]] == ["0.15"]
    assert mini.spec.batch_factor == Decimal("0.5") and "cache_write_tokens" not in mini.prices
