"""The sink role: ledger, rejections and window totals into ClickHouse (consumer.py), the
windows (windows.py) and their absolute, versioned totals (rollups.py)."""
