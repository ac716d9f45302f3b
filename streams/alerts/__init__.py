"""Alerts: budgets in, threshold crossings out, delivered once each (the `alerts` role).

budgets.py    spend limits per scope and period, in a compacted topic
evaluator.py  spend per (budget, period) and the crossings, exactly once per threshold
outbox.py     the alert log topic: what fired and how far its delivery got
delivery.py   the spend_alerts topic and signed webhooks (webhooks.py: URLs, labels, signatures)
spend.py      a (budget, period)'s spend already in the ledger, read from the sink's store
role.py       the consumer that runs all of it beside the sink, never inside it
"""
