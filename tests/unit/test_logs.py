"""A worker's log: each repeated message once a window with the count of those left out, JSON
lines on request, and the dictConfig the worker hands to Faust."""

from __future__ import annotations

import json
import logging
import logging.config

import pytest

from streams.logs import JsonFormatter, Once, config


def record(msg: str, *args: object, level: int = logging.ERROR, name: str = "aiokafka") -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def test_a_repeated_message_is_written_once_a_window_with_the_count_left_out():
    clock = [0.0]
    once = Once(window_s=60, clock=lambda: clock[0])
    let = [once.filter(record("Unable connect to node with id %s", n)) for n in range(270)]
    assert let == [True] + [False] * 269  # the same format string: one line, whatever its arguments
    assert once.filter(record("another message"))  # another one is its own
    assert once.filter(record("Unable connect to node with id %s", 1, level=logging.WARNING))  # another level
    clock[0] = 61.0
    again = record("Unable connect to node with id %s", 7)
    assert once.filter(again)
    assert again.getMessage() == "Unable connect to node with id 7 (and 269 more like it in the last 60 s)"
    assert not once.filter(record("Unable connect to node with id %s", 8))


def test_json_lines_for_log_shippers():
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        rec = logging.LogRecord("meterstream.worker", logging.ERROR, __file__, 1, "failed: %s", ("x",), sys.exc_info())
    doc = json.loads(JsonFormatter().format(rec))
    assert doc["level"] == "ERROR" and doc["logger"] == "meterstream.worker" and doc["message"] == "failed: x"
    assert doc["ts"].endswith("Z") and "ValueError: boom" in doc["exc"]


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_the_config_faust_gets_logs_to_stderr_through_once(fmt, capsys):
    logging.config.dictConfig(config(fmt, "info"))
    try:
        log = logging.getLogger("meterstream.test")
        for _ in range(5):
            log.error("Kafka away: %s", "127.0.0.1:1")
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "Kafka away: 127.0.0.1:1" in err[0]
        if fmt == "json":
            assert json.loads(err[0])["message"] == "Kafka away: 127.0.0.1:1"
    finally:
        logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})
    with pytest.raises(ValueError, match="MS_LOG_FORMAT"):
        config("xml", "info")
