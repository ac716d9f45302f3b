"""Fixing the past: redrive, backfill, corrections and voids, re-rating, closed periods and the
audit log (docs/fixing-the-past.md).

Each command reads the ledger (through streams/analyst/reader.py: the store, or the worker that
holds it), decides what must change, and sends it as adjustment records (schemas/adjustment.py)
that the rating agent counts like any event (streams/rating/adjustments.py): exactly once,
through the same sink, rollups, budgets and alerts.

  ledger.py    an event's ledger rows as one state: its current values, its next adjustment
  periods.py   closed periods: where a change is booked, the digests of `period close` and `verify`
  send.py      sealing and sending adjustment records, and waiting until they are applied
  flows.py     redrive, backfill, correct, rerate: what each sends, and its audit entry
"""
