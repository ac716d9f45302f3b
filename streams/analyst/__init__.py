"""Reads for people: named reads (reads.py), checked ad-hoc SQL (sql_guard.py), the reader that
runs them on the store or through a worker (reader.py), re-rating (rerate.py), plots (plot.py)."""
