"""Provider payloads through the real broker and worker: `meterstream produce --format` converts
them (adapters/), the worker prices them, and the totals equal the pricing engine's on the
converted events; a payload that cannot be converted is in the dead-letter topic and the
rejected_events table with its reason."""

from __future__ import annotations

import datetime as dt
import subprocess

import orjson
import pytest

from adapters import Ids, convert_line
from pricing import load_catalog
from streams.harness.expected import as_rows, expected_totals, normalize
from streams.harness.stack import CLI

pytestmark = pytest.mark.integration


def test_openai_and_bedrock_payloads_are_counted_exactly_and_a_bad_one_is_dead_lettered(stack, tmp_path):
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    chats = [
        {
            "id": f"chatcmpl-{i}",
            "object": "chat.completion",
            "created": int(now.timestamp()) - i,
            "model": "gpt-4o",
            "usage": {
                "prompt_tokens": 1000 + i,
                "completion_tokens": 50 + i,
                "total_tokens": 1050 + 2 * i,
                "prompt_tokens_details": {"cached_tokens": 10 * i, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": i, "audio_tokens": 0},
            },
        }
        for i in range(40)
    ]
    chats.insert(
        7,
        {
            **chats[0],
            "id": "chatcmpl-audio",
            "usage": {**chats[0]["usage"], "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 9}},
        },
    )
    chats.append(chats[3])  # a retried payload: the same response id, counted once
    converse = [
        {
            "usage": {
                "inputTokens": 500 + i,
                "outputTokens": 20,
                "cacheReadInputTokens": 0,
                "cacheWriteInputTokens": 0,
            },
            "ResponseMetadata": {"RequestId": f"br-{i}"},
        }
        for i in range(10)
    ]
    files = {"openai": chats, "bedrock-converse": converse}
    options = {
        "openai": [],
        "bedrock-converse": [
            "--model",
            "anthropic.claude-3-haiku-20240307-v1:0",
            "--region",
            "us-east-1",
            "--ts",
            now.isoformat(),
        ],
    }
    converted: list[bytes] = []
    for fmt, payloads in files.items():
        path = tmp_path / f"{fmt}.jsonl"
        path.write_bytes(b"".join(orjson.dumps(p) + b"\n" for p in payloads))
        run = subprocess.run(
            [*CLI, "produce", "--format", fmt, "--tenant", "acme", "--user", f"user-{fmt}", *options[fmt], str(path)],
            env=stack.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        ids = Ids(
            tenant_id="acme",
            user_id=f"user-{fmt}",
            model=dict(zip(options[fmt][::2], options[fmt][1::2])).get("--model"),
            region="us-east-1" if fmt != "openai" else None,
            ts=now.isoformat() if fmt != "openai" else None,
        )
        for p in payloads:
            if p.get("id") != "chatcmpl-audio":
                converted += convert_line(fmt, orjson.dumps(p), ids)
        if fmt == "openai":
            assert run.returncode == 1 and "audio tokens" in run.stderr, run.stderr[-2000:]
        else:
            assert run.returncode == 0, run.stderr[-2000:]
    exp = expected_totals(converted, load_catalog(), partitions=stack.partitions, now=now + dt.timedelta(minutes=5))
    assert exp.counted == 50 and exp.duplicates == 1
    exp.rejected += 1  # the payload produce refused: a refused record, rejected by the rater
    stack.start_worker()
    stack.wait_until_exact(exp, timeout=180)
    assert normalize(stack.report("user", "total"), "user", "total") == as_rows(exp, "user", "total")
    usage = stack.query("SELECT usage FROM ledger FINAL WHERE event_id = 'chatcmpl-5'")[0]["usage"]
    assert orjson.loads(usage) == {
        "input_tokens": 955,
        "cached_input_tokens": 50,
        "output_tokens": 55,
        "reasoning_tokens": 5,
    }
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        stack.env["MS_DEAD_LETTER_TOPIC"],
        bootstrap_servers=stack.bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
    )
    dead = [orjson.loads(m.value) for m in consumer]
    consumer.close()
    assert len(dead) == 1 and "audio tokens" in dead[0]["reason"] and "line 8" in dead[0]["reason"]
    assert "chatcmpl-audio" in dead[0]["payload"]
    [row] = stack.query("SELECT reason, payload FROM rejected_events FINAL")
    assert row["reason"] == dead[0]["reason"] and row["payload"] == dead[0]["payload"]
