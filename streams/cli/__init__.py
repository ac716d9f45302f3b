"""The `meterstream` command: main.py holds the group (settings once, errors as one line) and the
setup commands (up, down, migrate, status, demo); stream.py the worker, produce, report, rejects
and sql; pricing.py price and the catalogs; alerts.py budgets and alerts; ingest.py the HTTP
ingest and its tokens; past.py redrive, backfill, correct, rerate, period and audit."""

from streams.cli.main import main

__all__ = ["main"]
