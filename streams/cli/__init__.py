"""The `meterstream` command: main.py holds the group and the setup commands (up, down, migrate,
status); stream.py the worker, produce and price; pricing.py the catalogs; alerts.py budgets and
alerts."""

from streams.cli.main import main

__all__ = ["main"]
