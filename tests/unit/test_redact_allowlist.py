"""What a rejection stores is an allow-list (schemas/redact.py), and a reason quotes input only
when it is an id (schemas.validate.quoted): prompt text planted anywhere a sender can put it
(OTLP attribute values, provider payload fields, values an adapter's reason names, keys outside
the schema, label keys and values, the start of non-JSON input, a producer's refused-record
reason) reaches no stored payload and no reason, on every path that stores one: the rater's
rejection row, the HTTP ingest's refusal (its refused record and its header reason), `meterstream
produce --format`'s refusal. Ids and numbers stay visible, and `meterstream rejects` prints a
stored reason with its control characters written out."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from adapters import ConversionError, Ids, convert
from pricing import load_catalog
from schemas.redact import MAX_PAYLOAD, OTLP_ATTRIBUTES, OTLP_ID_ATTRIBUTES, REMOVED, stored_payload
from schemas.validate import MAX_REASON, hidden, quoted
from streams.ingest.intake import Intake
from streams.rating.rater import Rater, Source
from tests.corpus import PROMPT_MARKER

ROOT = Path(__file__).resolve().parents[2]
CAT = load_catalog()
NOW = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
MS = int(NOW.timestamp() * 1000)


def secret(where: str) -> str:
    """Prompt text: the marker, then words (never an id)."""
    return f"{PROMPT_MARKER}{where} tell me everything you know"


def event(**kw: Any) -> dict[str, Any]:
    doc = {
        "event_id": "e-1",
        "ts": "2024-11-01T12:00:00Z",
        "tenant_id": "acme",
        "user_id": "alice",
        "provider": "bedrock",
        "model": "cohere.command-text-v14",
        "usage": {"input_tokens": 1000},
    }
    doc.update(kw)
    return doc


def clean(*texts: str | bytes) -> None:
    for t in texts:
        assert PROMPT_MARKER not in (t.decode("utf-8", "replace") if isinstance(t, bytes) else t), t[:2000]


def rejected_row(raw: bytes, refused: str | None = None) -> dict[str, Any]:
    out = Rater(CAT).process_batch({}, [(Source("billing_events", 0, 5, MS, refused=refused), raw)])
    assert len(out.rejected) == 1 and not out.ledger, out
    return out.rejected[0]


def row_is_clean(row: dict[str, Any]) -> None:
    from schemas.records import dead_letter_value

    clean(row["reason"], row["payload"], dead_letter_value(row))
    assert len(row["reason"]) <= MAX_REASON and len(row["payload"].encode()) <= MAX_PAYLOAD
    assert row["payload"].isascii() and row["payload"].isprintable()


# ------------------------------------------------------------------------------ provider payloads


def otlp_payload(attrs: dict[str, Any], resource: dict[str, Any] | None = None, name: str = "chat") -> dict[str, Any]:
    def kv(d: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            {"key": k, "value": {"intValue": str(v)} if type(v) is int else {"stringValue": v}} for k, v in d.items()
        ]

    return {
        "resourceSpans": [
            {
                "resource": {"attributes": kv(resource or {"service.name": "chat", "tenant.id": "acme"})},
                "scopeSpans": [
                    {
                        "scope": {"name": "opentelemetry.instrumentation.openai"},
                        "spans": [
                            {
                                "traceId": "5b8efff798038103d269b633813fc60c",
                                "spanId": "eee19b7ec3c1b174",
                                "name": name,
                                "endTimeUnixNano": "1764590400250000000",
                                "attributes": kv(attrs),
                            }
                        ],
                    }
                ],
            }
        ]
    }


OTLP_TEXT = {  # free text a GenAI span carries, beside its usage
    "gen_ai.prompt.0.content": secret("otlp-prompt"),
    "gen_ai.completion.0.content": secret("otlp-completion"),
    "gen_ai.input.messages": secret("otlp-input-messages"),
    "app.note": secret("otlp-custom-attribute"),
    secret("otlp-attribute-name"): "x",
}
OTLP_USAGE = {
    "gen_ai.provider.name": "openai",
    "gen_ai.response.model": "gpt-4o",
    "gen_ai.response.id": "chatcmpl-otel-9",
    "gen_ai.usage.input_tokens": 100,
    "gen_ai.usage.output_tokens": 10,
    "user.id": "alice",
}
CHAT = {
    "id": "chatcmpl-leak-1",
    "object": "chat.completion",
    "created": 1764590400,
    "model": "gpt-4o",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": secret("openai-content")}}],
    "user": secret("openai-user-field"),
    "note": secret("openai-unknown-field"),
    "usage": {"prompt_tokens": 20, "completion_tokens": 3},
}
ANTHROPIC = {
    "id": "msg_leak_1",
    "type": "message",
    "model": "claude-sonnet-4-5-20250929",
    "content": [{"type": "text", "text": secret("anthropic-text")}],
    "stop_sequence": secret("anthropic-stop-sequence"),
    "usage": {"input_tokens": 5, "output_tokens": 3},
}
CONVERSE = {
    "output": {"message": {"role": "assistant", "content": [{"text": secret("converse-text")}]}},
    "usage": {"inputTokens": 10, "outputTokens": 3, "totalTokens": 13},
    "ResponseMetadata": {"RequestId": "req-leak-1", "HTTPStatusCode": 200},
}
INVOKE = {
    "x-amzn-requestid": "req-leak-2",
    "x-amzn-bedrock-input-token-count": "10",
    "x-amzn-bedrock-output-token-count": "3",
    "x-app-echo": secret("invoke-header"),
}
DASHSCOPE = {
    "status_code": 200,
    "request_id": "902fee3b-leak",
    "code": "",
    "message": secret("dashscope-message"),
    "output": {"text": secret("dashscope-text")},
    "usage": {"input_tokens": 10, "output_tokens": 3},
}
WHISPER = {"text": secret("transcript"), "segments": [{"text": secret("segment")}], "usage": {"type": "duration"}}

# Each: a payload the adapter refuses, free text where the format carries it, and the value its
# reason names set to prompt text.
REFUSED: list[tuple[str, str, dict[str, Any], str, str]] = [
    (
        "otlp-attribute-values-and-provider",
        "otlp-json",
        otlp_payload(
            {**OTLP_USAGE, **OTLP_TEXT, "gen_ai.provider.name": secret("otlp-provider")},
            {"service.name": secret("otlp-resource"), "tenant.id": "acme"},
            name=secret("otlp-span-name"),
        ),
        "has no catalog provider",
        "chatcmpl-otel-9",
    ),
    (
        "otlp-token-count-as-text",
        "otlp-json",
        otlp_payload({**OTLP_USAGE, **OTLP_TEXT, "gen_ai.usage.output_tokens": secret("otlp-count")}),
        "gen_ai.usage.output_tokens must be an integer",
        "5b8efff798038103d269b633813fc60c",
    ),
    (
        "otlp-int-value-as-text",
        "otlp-json-cached-excluded",
        {
            "resourceSpans": [
                {
                    "scopeSpans": [
                        {
                            "spans": [
                                {
                                    "attributes": [
                                        {
                                            "key": "gen_ai.usage.input_tokens",
                                            "value": {"intValue": secret("otlp-int-value")},
                                        },
                                        {
                                            "key": "gen_ai.prompt.0.content",
                                            "value": {"stringValue": secret("otlp-prompt-2")},
                                        },
                                    ]
                                }
                            ]
                        }
                    ]
                }
            ]
        },
        "is not an integer",
        "gen_ai.usage.input_tokens",
    ),
    (
        "otlp-service-tier-priced-apart",
        "otlp-json",
        otlp_payload({**OTLP_USAGE, **OTLP_TEXT, "openai.response.service_tier": "scale"}),
        "openai.response.service_tier 'scale'",
        "chatcmpl-otel-9",
    ),
    (
        "openai-service-tier",
        "openai",
        {**CHAT, "service_tier": secret("openai-tier")},
        "service_tier <string:",
        "chatcmpl-leak-1",
    ),
    ("openai-object", "openai", {**CHAT, "object": secret("openai-object")}, "(object: <string:", "chatcmpl-leak-1"),
    (
        "openai-count-as-text",
        "openai",
        {**CHAT, "usage": {"prompt_tokens": secret("openai-count"), "completion_tokens": 1}},
        "usage.prompt_tokens must be an integer >= 0, not <string:",
        "chatcmpl-leak-1",
    ),
    ("anthropic-type", "anthropic", {**ANTHROPIC, "type": secret("anthropic-type")}, "(type: <string:", "msg_leak_1"),
    (
        "anthropic-service-tier",
        "anthropic",
        {**ANTHROPIC, "usage": {**ANTHROPIC["usage"], "service_tier": secret("anthropic-tier")}},
        "service_tier <string:",
        "msg_leak_1",
    ),
    (
        "anthropic-speed",
        "anthropic",
        {**ANTHROPIC, "usage": {**ANTHROPIC["usage"], "speed": secret("anthropic-speed")}},
        "speed <string:",
        "msg_leak_1",
    ),
    (
        "anthropic-geo",
        "anthropic",
        {**ANTHROPIC, "usage": {**ANTHROPIC["usage"], "inference_geo": secret("anthropic-geo")}},
        "inference_geo <string:",
        "msg_leak_1",
    ),
    (
        "converse-total",
        "bedrock-converse",
        {**CONVERSE, "usage": {**CONVERSE["usage"], "totalTokens": secret("converse-total")}},
        "totaltokens <string:",
        "req-leak-1",
    ),
    (
        "invoke-header-count",
        "bedrock-invoke",
        {**INVOKE, "x-amzn-bedrock-output-token-count": secret("invoke-count")},
        "is not a count: <string:",
        "req-leak-2",
    ),
    (
        "dashscope-code",
        "dashscope",
        {**DASHSCOPE, "status_code": 400, "code": secret("dashscope-code")},
        "a failed call (status_code 400, code <string:",
        "902fee3b-leak",
    ),
    (
        "dashscope-status",
        "dashscope",
        {**DASHSCOPE, "status_code": secret("dashscope-status")},
        "status_code <string:",
        "902fee3b-leak",
    ),
    (
        "transcription-type",
        "openai-transcription",
        {**WHISPER, "usage": {"type": secret("transcription-type")}},
        "usage.type must be duration, not <string:",
        '"usage":{"type":"<string: ',
    ),
    (
        "transcription-seconds",
        "openai-transcription",
        {**WHISPER, "usage": {"type": "duration", "seconds": secret("transcription-seconds")}},
        "usage.seconds must be a number, not <string:",
        "duration",
    ),
]


@pytest.mark.parametrize("fmt, payload, reason, kept", [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_a_refused_provider_payload_keeps_no_prompt_text(
    fmt: str, payload: dict[str, Any], reason: str, kept: str
) -> None:
    """Through the HTTP ingest (its answer, the refused record and its header reason), `produce
    --format` (streams/cli/formats.converted) and then the rater, which stores the refused record:
    the marker is nowhere; the reason says why; an id of the payload stays visible."""
    from streams.cli.formats import converted

    raw = orjson.dumps(payload)
    assert PROMPT_MARKER.encode() in raw
    with pytest.raises(ConversionError) as exc:
        convert(fmt, payload, Ids(tenant_id="acme", user_id="alice", ts="2026-12-01T12:00:00Z", model="m-1"))
    clean(str(exc.value))
    assert reason.lower() in str(exc.value).lower(), str(exc.value)

    intake = Intake("POST /v1/payloads/test (producer gw)")
    intake.payload(3, fmt, raw, Ids(tenant_id="acme", user_id="alice", ts="2026-12-01T12:00:00Z", model="m-1"))
    [(value, header_reason)] = intake.refusals
    [answer] = intake.rejected
    clean(value, header_reason, answer["reason"])
    assert kept in value.decode(), value  # ids stay visible to find the payload

    refusals: list[tuple[int, str]] = []
    assert (
        list(
            converted(
                [raw],
                fmt,
                Ids(tenant_id="acme", user_id="alice", ts="2026-12-01T12:00:00Z", model="m-1"),
                lambda n, line, why: refusals.append((n, why)),
            )
        )
        == []
    )
    [(_, cli_reason)] = refusals
    clean(cli_reason, stored_payload(raw))

    row = rejected_row(value, refused=header_reason)
    row_is_clean(row)
    assert row["payload"] == value.decode()  # a stored payload redacted again is the same


def test_otlp_attributes_keep_their_names_and_ids_never_their_text() -> None:
    doc = orjson.loads(stored_payload(orjson.dumps(otlp_payload({**OTLP_USAGE, **OTLP_TEXT}))))
    span = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    attrs = {a["key"]: a["value"] for a in span["attributes"]}
    assert attrs["gen_ai.prompt.0.content"] == {"stringValue": hidden(secret("otlp-prompt"))}
    assert attrs["gen_ai.completion.0.content"] == {"stringValue": hidden(secret("otlp-completion"))}
    assert attrs[hidden("app.note")] == {"stringValue": hidden(secret("otlp-custom-attribute"))}
    assert attrs[hidden(secret("otlp-attribute-name"))] == {"stringValue": hidden("x")}
    assert attrs["gen_ai.response.id"] == {"stringValue": "chatcmpl-otel-9"}
    assert attrs["gen_ai.response.model"] == {"stringValue": "gpt-4o"}
    assert attrs["gen_ai.usage.input_tokens"] == {"intValue": "100"}
    assert span["traceId"] == "5b8efff798038103d269b633813fc60c" and span["endTimeUnixNano"] == "1764590400250000000"


def test_every_otlp_attribute_the_adapter_reads_is_named_in_stored_payloads() -> None:
    import adapters.otlp as otlp

    read = set(
        re.findall(r'"((?:gen_ai|openai|tenant|user|enduser)\.[a-z0-9_.]*[a-z0-9_])"', Path(otlp.__file__).read_text())
    )
    assert read >= set(otlp.TIER_KEYS) and "gen_ai.response.id" in read
    assert read <= OTLP_ATTRIBUTES, read - OTLP_ATTRIBUTES
    assert {k for k in read if not k.startswith("gen_ai.usage.")} <= OTLP_ID_ATTRIBUTES


def test_an_unknown_format_name_is_not_quoted() -> None:
    with pytest.raises(ConversionError) as exc:
        convert(secret("format"), {}, Ids())
    clean(str(exc.value))
    assert "unknown format <string:" in str(exc.value)


# ------------------------------------------------------------------------------ billing events


BAD_EVENTS: list[tuple[str, dict[str, Any] | bytes, str]] = [
    ("unknown-key-note", event(note=secret("note")), "note: extra inputs are not permitted"),
    ("unknown-key-msg", event(msg={"role": "user", "body": [secret("msg")]}), "msg: extra inputs are not permitted"),
    ("unknown-key-is-prompt", event(**{secret("key"): 1}), ": extra inputs are not permitted"),
    ("label-key", event(labels={secret("label-key"): "x"}), "labels.<key: "),
    (
        "label-value-with-control",
        event(labels={"team": secret("label-value") + "\x1b[2J"}),
        "labels.team: must not contain control or format characters (u+001b)",
    ),
    (
        "label-value-valid-event-otherwise-bad",
        event(labels={"team": secret("label-value-2")}, cost=1),
        "cost: extra inputs are not permitted",
    ),
    ("model-not-a-name", event(model=secret("model")), "model: string should match pattern"),
    ("region-not-a-region", event(region=secret("region")), "region: string should match pattern"),
    ("mode", event(mode=secret("mode")), "mode: input should be 'realtime' or 'batch'"),
    ("ts", event(ts=secret("ts")), "ts: input should be a valid datetime"),
    (
        "guardrail-policy",
        event(usage={"guardrail": {"policies": [secret("policy")], "input_chars": 10}}),
        "usage.guardrail.policies.0: input should be",
    ),
    ("event-id", event(event_id=secret("event-id")), "event_id: string should match pattern"),
    (
        "duplicate-prompt-key",
        b'{"event_id":"e-1","' + secret("dup").encode() + b'":1,"' + secret("dup").encode() + b'":2}',
        "duplicate key",
    ),
    ("not-json-prompt-first", secret("not-json-first").encode() + b' {"event_id":"e-1"}', "not json"),
    (
        "not-json-prompt-in-prefix",
        b'{"event_id":"e-1","note":"' + secret("prefix").encode() + b'","usage":{},}',
        "not json",
    ),
]


@pytest.mark.parametrize("doc, reason", [c[1:] for c in BAD_EVENTS], ids=[c[0] for c in BAD_EVENTS])
def test_a_rejected_event_keeps_no_prompt_text(doc: dict[str, Any] | bytes, reason: str) -> None:
    """The rater's row (payload, reason, dead-letter value) and the HTTP ingest's refusal."""
    raw = doc if isinstance(doc, bytes) else orjson.dumps(doc)
    row = rejected_row(raw)
    row_is_clean(row)
    assert reason in row["reason"].lower(), row["reason"]
    intake = Intake("POST /v1/events (producer gw)")
    intake.event(0, raw)
    [(value, header_reason)] = intake.refusals
    clean(value, header_reason, intake.rejected[0]["reason"])
    if not row["payload"].startswith('{"not_stored"'):
        assert orjson.loads(row["payload"])["event_id"] in ("e-1", hidden(secret("event-id")))


def test_an_unknown_model_is_rejected_without_its_text_in_the_payload() -> None:
    model = f"{PROMPT_MARKER}model:\"tell{{me}}every'secret'\""  # a valid Name (printable ASCII), not an id
    row = rejected_row(orjson.dumps(event(model=model)))
    assert "unknown model" in row["reason"]
    clean(row["payload"])
    assert orjson.loads(row["payload"])["model"] == hidden(model)


def test_an_unknown_model_reason_does_not_quote_a_model_that_is_not_an_id() -> None:
    model = f"{PROMPT_MARKER}model:\"tell{{me}}every'secret'\""
    row = rejected_row(orjson.dumps(event(model=model)))
    clean(row["reason"])


def test_an_unknown_model_that_is_an_id_is_still_named() -> None:
    row = rejected_row(orjson.dumps(event(model="no-such-model-9")))
    assert "unknown model 'no-such-model-9'" in row["reason"]


# ------------------------------------------------------------------------------ the allow-list


def test_ids_numbers_and_enums_are_kept_everything_else_is_hashed() -> None:
    doc = event(
        region="us-east-1",
        mode="batch",
        usage={
            "input_tokens": 5,
            "dedicated": {"hours": "2.5", "commitment": "1m"},
            "guardrail": {"policies": ["content_filter", "not-a-policy"], "input_chars": 7},
        },
        labels={"team": "search"},
        text={"input": secret("text")},
        flag=True,
        ratio=0.5,
        nothing=None,
    )
    got = orjson.loads(stored_payload(orjson.dumps(doc)))
    assert {k: got[k] for k in ("event_id", "ts", "tenant_id", "user_id", "provider", "model", "region", "mode")} == {
        k: doc[k] for k in ("event_id", "ts", "tenant_id", "user_id", "provider", "model", "region", "mode")
    }
    assert got["usage"] == {
        "input_tokens": 5,
        "dedicated": {"hours": "2.5", "commitment": "1m"},
        "guardrail": {"policies": ["content_filter", hidden("not-a-policy")], "input_chars": 7},
    }
    assert got["labels"] == {hidden("team", "key"): hidden("search")}
    assert got["text"] == REMOVED
    assert (got[hidden("flag", "key")], got[hidden("ratio", "key")], got[hidden("nothing", "key")]) == (True, 0.5, None)
    assert hidden("search") == f"<string: 6 chars, sha256:{hashlib.sha256(b'search').hexdigest()[:8]}>"


def test_an_id_field_keeps_only_an_id_like_value() -> None:
    long_id = "e" * 129
    got = orjson.loads(stored_payload(orjson.dumps(event(event_id=long_id, user_id="a b", tenant_id="t\u202e"))))
    assert (got["event_id"], got["user_id"], got["tenant_id"]) == (hidden(long_id), hidden("a b"), hidden("t\u202e"))


def test_not_json_keeps_only_its_hash_and_length() -> None:
    raw = b'{"event_id":"e-1","note":"' + secret("x").encode() + b'",'
    assert orjson.loads(stored_payload(raw)) == {
        "not_stored": {"why": "not JSON", "sha256": hashlib.sha256(raw).hexdigest(), "bytes": len(raw)}
    }


@pytest.mark.parametrize(
    "raw",
    [
        orjson.dumps(event(labels={"a b": secret("l")}, note=secret("n"), text={"input": "x"})),
        orjson.dumps(otlp_payload({**OTLP_USAGE, **OTLP_TEXT})),
        orjson.dumps([event(), {"deep": [[[[[[[[[[[[[[[[[[["x"]]]]]]]]]]]]]]]]]]]}]),
        b"not json at all " + secret("x").encode(),
        orjson.dumps(event(blob="y" * 1_000_000)),
    ],
)
def test_redacting_a_stored_payload_again_changes_nothing(raw: bytes) -> None:
    once = stored_payload(raw)
    assert stored_payload(once) == once


def test_large_inputs_are_redacted_fast_and_bounded() -> None:
    big = [
        orjson.dumps(event(blob=['"'] * 200_000)),
        orjson.dumps(event(**{"k" * 900_000: 1})),
        orjson.dumps(event(labels={f"l{i}": "v" * 10 for i in range(40_000)})),
        orjson.dumps([1] * 300_000),
        orjson.dumps(event(text={"input": secret("big") * 20_000})),
        orjson.dumps(event(blob=secret("b") * 20_000)),
    ]
    for raw in big:
        start = time.perf_counter()
        out = stored_payload(raw)
        assert time.perf_counter() - start < 2.0  # ~30 ms here; a generous bound for a shared machine
        assert len(out.encode()) <= MAX_PAYLOAD and PROMPT_MARKER not in out


# ------------------------------------------------------------------------------ reasons


def test_quoted_shows_ids_and_numbers_and_hides_the_rest() -> None:
    assert quoted("gpt-4o") == "'gpt-4o'" and quoted("us.anthropic.claude-3:0") == "'us.anthropic.claude-3:0'"
    assert quoted("a b") == hidden("a b") == f"<string: 3 chars, sha256:{hashlib.sha256(b'a b').hexdigest()[:8]}>"
    assert quoted("x" * 129) == hidden("x" * 129) and quoted("") == hidden("")
    assert quoted("it's") == hidden("it's") and quoted("\x1b[2J") == hidden("\x1b[2J")
    assert (quoted(3), quoted(-1.5), quoted(True), quoted(None)) == ("3", "-1.5", "True", "None")
    assert quoted(10**40) == "<number of 41 characters>"
    assert (quoted({"a": 1}), quoted([1, 2])) == ("<object of 1 members>", "<array of 2 items>")


# ------------------------------------------------------------------------------ meterstream rejects


def test_rejects_prints_a_stored_reason_with_its_controls_written_out(tmp_path: Path) -> None:
    """A reason from a producer's meterstream-refused header may hold anything: printed, ESC, CR,
    LF, C1 and bidi characters are written <U+XXXX>, in the table and in JSON."""
    import json

    from click.testing import CliRunner

    from streams.cli.main import main
    from streams.settings import Settings
    from streams.storage.chdb_store import ChdbStore
    from streams.storage.migrations import migrate

    reason = "not converted: \x1b[2J\x1b]0;owned\x07 line\r\nnext \x9b31m \u202eevil"
    with ChdbStore(tmp_path / "chdb", "meterstream") as store:
        migrate(store, Settings().migrations_dir)
        store.insert(
            "rejected_events",
            [
                {
                    "src_topic": "billing_events",
                    "src_partition": 0,
                    "src_offset": 1,
                    "src_index": 0,
                    "event_id": None,
                    "tenant_id": None,
                    "reason": reason,
                    "payload": '{"a":"\x1b[1m"}',
                    "rejected_at": NOW,
                }
            ],
        )
    env = {"MS_DATA_DIR": str(tmp_path)}
    table = CliRunner().invoke(main, ["rejects"], env=env, terminal_width=400)
    assert table.exit_code == 0, table.output
    as_json = CliRunner().invoke(main, ["rejects", "--format", "json"], env=env)
    assert as_json.exit_code == 0, as_json.output
    [row] = json.loads(as_json.output)
    assert row["reason"] == (
        "not converted: <U+001B>[2J<U+001B>]0;owned<U+0007> line<U+000D><U+000A>next <U+009B>31m <U+202E>evil"
    )
    assert row["payload"] == '{"a":"<U+001B>[1m"}'
    for out in (table.output, as_json.output):
        assert not any(c in out for c in "\x1b\x07\r\x9b\u202e"), repr(out)
    assert "<U+001B>[2J" in table.output.replace("\n", "").replace("│", "").replace(" ", "")
