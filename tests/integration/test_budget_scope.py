"""A budget whose scope no counted event has (a misspelled tenant, user or model) is kept as
given, with a warning that it may never fire; one for a scope the ledger has is set quietly."""

from __future__ import annotations

import datetime as dt

import pytest

from streams.harness.generate import generate

pytestmark = pytest.mark.integration
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def test_a_budget_for_a_scope_never_counted_is_set_with_a_warning(stack):
    stack.produce([line for _, line in generate(80, seed=5, now=NOW, tenants=2, users=3)])
    stack.start_worker()
    stack.wait_until_exact(stack.expected(NOW + dt.timedelta(minutes=5)))
    [seen] = stack.query("SELECT tenant_id, user_id, currency FROM ledger FINAL ORDER BY event_id LIMIT 1")

    def budget(bid: str, tenant: str, user: str) -> str:
        done = stack.cli(
            "budgets",
            "set",
            "--id",
            bid,
            "--tenant",
            tenant,
            "--user",
            user,
            "--period",
            "day",
            "--currency",
            seen["currency"],
            "--amount",
            "10",
        )
        assert f"set 1 budget(s): {bid}" in done.stdout.decode()
        return done.stderr.decode()

    assert "warning" not in budget("known", seen["tenant_id"], seen["user_id"])
    said = budget("typo", seen["tenant_id"] + "x", seen["user_id"])
    assert (
        f"warning: budget typo: no event of tenant {seen['tenant_id']}x, user {seen['user_id']} in "
        f"{seen['currency']} has been counted yet"
    ) in said
    listed = stack.cli("budgets", "list", "--format", "json").stdout.decode()
    assert '"typo"' in listed and '"known"' in listed  # both kept as given
