"""Reading a Kafka record, whatever it holds: its headers never raise (schemas/record.py), a
message without a value or with unreadable headers becomes a rejection with its reason
(streams/rating/agent.py source_of), and aiokafka's fetcher parses a batch whose header keys are
not UTF-8 instead of raising (streams/aiokafka_records.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from aiokafka.record.default_records import _DefaultRecordBatchBuilderPy

import streams.aiokafka_records as aiokafka_records
from schemas.batch import BATCH_HEADER, is_batch
from schemas.catalog_record import CATALOG_HEADER
from schemas.record import BATCH, EVENT, Seal, printable, read_kind
from schemas.refusal import REFUSED_HEADER, refusal_of
from streams.harness.hostile import RawKey
from streams.rating.agent import TOMBSTONE, source_of


@pytest.mark.parametrize(
    "headers, kind",
    [
        (None, EVENT),
        ([], EVENT),
        ({}, EVENT),
        ([BATCH_HEADER], BATCH),
        ([("Content-Type", b"application/jsonl")], BATCH),
        ([("x", None)], EVENT),
        ([("x", None), BATCH_HEADER], BATCH),
        ([("content-type", b"application/json")], EVENT),
        ([("x-bin", b"\xff\xfe")], EVENT),
        ({"content-type": b"application/jsonl"}, BATCH),
    ],
)
def test_what_a_record_is(headers, kind):
    assert read_kind(headers) == kind


@pytest.mark.parametrize(
    "headers, reason",
    [
        ([("\udcff\udcfe", b"1")], "a header key is not UTF-8"),
        ([("ok", b"1"), ("\udcc3(", None)], "a header key is not UTF-8"),
        ([(REFUSED_HEADER, None)], "the header meterstream-refused has no value"),
        ([("content-type", None)], "the header content-type has no value"),
        ([BATCH_HEADER, BATCH_HEADER], "the header content-type is given twice"),
        ([(b"content-type", b"application/jsonl")], "a header key is not a string"),
        ([("a", b"1", b"2")], "a header is not a (key, value) pair"),
        (42, "its headers are not a list"),
    ],
)
def test_a_record_that_cannot_be_read_says_why(headers, reason):
    kind = read_kind(headers)
    assert kind.unreadable is not None and reason in kind.unreadable
    assert not kind.batch and kind.catalog is None and kind.refused is None


def test_our_headers():
    assert read_kind([(REFUSED_HEADER, b"\x1b[2Jbad\r\nline")]).refused == "\\x1b[2Jbad\\x0d\\x0aline"
    assert refusal_of([(REFUSED_HEADER, b"")]) == "refused by its producer"
    assert refusal_of([(REFUSED_HEADER, b"x"), BATCH_HEADER]) == "x"  # refused wins
    seal = read_kind([CATALOG_HEADER, ("meterstream-catalog-seq", b"17"), ("meterstream-catalog-hmac", b"ab")]).catalog
    assert seal == Seal(17, "ab")
    assert read_kind([CATALOG_HEADER]).catalog == Seal(None, "")
    assert read_kind([CATALOG_HEADER, ("meterstream-catalog-seq", b"-1")]).catalog == Seal(None, "")
    assert read_kind([CATALOG_HEADER, ("meterstream-catalog-seq", b"9" * 40)]).catalog == Seal(None, "")
    assert is_batch([BATCH_HEADER]) and not is_batch([("x", None)])
    assert printable("a\u202eb\x7f") == "a<U+202E>b\\x7f"


def _msg(value, headers, offset=5):
    return SimpleNamespace(
        topic="billing_events", partition=2, offset=offset, timestamp=1_700_000_000.0, value=value, headers=headers
    )


def test_a_message_becomes_a_source_or_a_rejection_never_an_exception():
    src, value = source_of(_msg(None, None), 0.0)
    assert (src.refused, value) == (TOMBSTONE, b"")
    src, value = source_of(_msg(None, [BATCH_HEADER]), 0.0)  # an empty batch: split() says so
    assert src.batch and src.refused is None and value == b""
    src, value = source_of(_msg(b'{"a":1}', [("\udcff", b"")]), 0.0)
    assert src.refused == "unreadable record: a header key is not UTF-8" and value == b'{"a":1}'
    src, value = source_of(_msg(b"x", [(REFUSED_HEADER, b"why")]), 0.0)
    assert src.refused == "why"
    src, _ = source_of(_msg(b"{}", [("x", None)]), 0.0)
    assert (
        src.refused is None
        and not src.batch
        and (src.partition, src.offset, src.timestamp_ms) == (2, 5, 1_700_000_000_000)
    )


def test_aiokafka_reads_a_batch_whose_header_keys_are_not_utf8():
    builder = _DefaultRecordBatchBuilderPy(
        magic=2,
        compression_type=0,
        is_transactional=0,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1 << 20,
    )
    builder.append(0, timestamp=None, key=None, value=b"v0", headers=[("ok", b"1")])
    builder.append(1, timestamp=None, key=None, value=b"v1", headers=[(RawKey(b"\xff\xfe"), b"1")])
    builder.append(2, timestamp=None, key=None, value=b"v2", headers=[("n", None)])
    builder.append(3, timestamp=None, key=b"k", value=None, headers=[])
    data = bytes(builder.build())
    from aiokafka.record.memory_records import MemoryRecords

    with pytest.raises(UnicodeDecodeError):  # what aiokafka's own reader does
        list(MemoryRecords(data).next_batch())
    records = aiokafka_records.TolerantMemoryRecords(data + data)
    for _ in range(2):
        batch = records.next_batch()
        assert (batch.base_offset, batch.next_offset, batch.is_control_batch, batch.validate_crc()) == (
            0,
            4,
            False,
            True,
        )
        assert [(r.offset, r.key, r.value, r.headers) for r in batch] == [
            (0, None, b"v0", [("ok", b"1")]),
            (1, None, b"v1", [("\udcff\udcfe", b"1")]),
            (2, None, b"v2", [("n", None)]),
            (3, b"k", None, []),
        ]
    assert not records.has_next()
    assert read_kind([("\udcff\udcfe", b"1")]).unreadable == "unreadable record: a header key is not UTF-8"
