"""The usage API (`meterstream api`, a real subprocess) on the real pipeline: a read token of
tenant-0 gets exactly what `meterstream report --tenant tenant-0` says (by model, by a rolled-up
label, per day, per day in a time zone) and the oracle's totals; filters and label group-bys
agree with each other; a tenant-0 token asking for tenant-1 gets 403 and nothing; a missing and a
wrong token get 401 with different messages; /metrics needs a token; a revoked token stops
working within a second; no token is in the API's log."""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from streams.harness.generate import generate
from streams.harness.stack import CLI, Stack, free_port

pytestmark = pytest.mark.integration

NOW = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
TOKEN_COLUMNS = ("input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens")


class Api:
    """`meterstream api` in a subprocess on a free port, with the stack's settings."""

    def __init__(self, env: dict[str, str], tmp: Path) -> None:
        self.env = env
        self.port = free_port()
        self.tokens = tmp / "api-tokens"
        self.log = tmp / f"api-{self.port}.log"
        self.issued: list[str] = []

    def token(self, name: str, *tenants: str) -> str:
        args = [arg for t in tenants for arg in ("--tenant", t)]
        add = subprocess.run(
            [*CLI, "api", "token", "add", name, *args, "--tokens-file", str(self.tokens)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        self.issued.append(add.stdout.strip())
        return add.stdout.strip()

    def start(self) -> Api:
        self.proc = subprocess.Popen(
            [*CLI, "api", "--port", str(self.port), "--tokens-file", str(self.tokens)],
            env=self.env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if self.get("/health", None)[0] == 200:
                    return self
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the API did not start: {self.log.read_text()[-3000:]}")
            time.sleep(0.2)

    def get(self, path: str, token: str | None, raw: bool = False) -> tuple[int, Any, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                body = resp.read()
                return resp.status, body.decode() if raw else json.loads(body), resp.headers
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null"), exc.headers

    def usage(self, token: str, **params: Any) -> dict[str, Any]:
        """GET /v1/usage (a list value: the parameter repeated); must answer 200."""
        status, doc, _ = self.get(f"/v1/usage?{urllib.parse.urlencode(params, doseq=True)}", token)
        assert status == 200, (status, doc)
        return doc

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)


def report(stack: Stack, *args: str) -> list[dict]:
    return json.loads(stack.cli("report", *args, "--format", "json").stdout)


def rfc(t: str) -> dt.datetime:
    return dt.datetime.fromisoformat(t.replace("Z", "+00:00"))


def test_the_usage_api_is_the_report_of_the_tokens_tenant(kafka_service, clickhouse_service, tmp_path):
    stack = Stack(kafka_service.bootstrap, tmp_path, clickhouse_service.url, extra_env={"MS_ROLLUP_LABELS": "app,team"})
    api = None
    try:
        lines = [
            line
            for _, line in generate(1500, seed=83, now=NOW, duplicate_rate=0.05, bad=5, spread=dt.timedelta(hours=40))
        ]
        stack.produce(lines)
        exp = stack.expected(NOW + dt.timedelta(minutes=5))
        stack.start_worker()
        api = Api(stack.env, tmp_path)  # after the worker: the API reads through it (MS_WORKER_URL)
        t0, t1 = api.token("dash-0", "tenant-0"), api.token("dash-1", "tenant-1")
        both = api.token("both", "tenant-0", "tenant-1")
        api.start()
        stack.wait_until_exact(exp)

        # by model: cost, events and tokens, each exactly the report's
        by_model = report(stack, "--by", "model", "--tenant", "tenant-0")
        assert by_model and {r["tenant_id"] for r in by_model} == {"tenant-0"}
        want_cost = {(r["model"], r["currency"]): r["cost"] for r in by_model}
        got = api.usage(t0, meter="cost", group_by="model")
        assert got["tenant"] == "tenant-0" and got["windowSize"] is None and got["from"] is None
        assert all(isinstance(r["value"], str) for r in got["data"])  # decimal text, never a float
        assert {(r["groupBy"]["model"], r["currency"]): r["value"] for r in got["data"]} == want_cost
        assert {r["tenant"] for r in got["data"]} == {"tenant-0"} and all(r["subject"] is None for r in got["data"])
        events = api.usage(t0, meter="events", group_by="model")["data"]
        assert {(r["groupBy"]["model"], r["currency"]): r["value"] for r in events} == {
            (r["model"], r["currency"]): r["events"] for r in by_model
        }
        tokens = api.usage(t0, meter="tokens", group_by="model")["data"]
        assert {(r["groupBy"]["model"], r["currency"]): r["value"] for r in tokens} == {
            (r["model"], r["currency"]): sum(r[c] for c in TOKEN_COLUMNS) for r in by_model
        }
        assert all(isinstance(r["value"], int) and sum(r["tokens"].values()) == r["value"] for r in tokens)

        # the tenant's total per currency: the oracle's
        oracle: dict[str, Decimal] = defaultdict(Decimal)
        for (w, _start, tenant, _who, cur), (cost, _n) in exp.by_user.items():
            if w == "minute" and tenant == "tenant-0":
                oracle[cur] += cost
        total = api.usage(t0, meter="cost")["data"]
        assert {r["currency"]: Decimal(r["value"]) for r in total} == oracle
        assert all(r["groupBy"] == {} for r in total)

        # by a rolled-up label: the report's
        by_team = report(stack, "--by", "label:team", "--tenant", "tenant-0")
        got_team = api.usage(t0, meter="cost", group_by="label:team")["data"]
        assert {(r["groupBy"]["label:team"], r["currency"]): r["value"] for r in got_team} == {
            (r["label:team"], r["currency"]): r["cost"] for r in by_team
        }
        assert "" in {r["groupBy"]["label:team"] for r in got_team}  # events without a team

        # per day, and per day in Beijing, with bounds on the windows: the report's
        day = report(stack, "--by", "model", "--window", "day", "--tenant", "tenant-0")
        got_day = api.usage(t0, meter="cost", group_by="model", window_size="DAY")
        assert got_day["windowSize"] == "DAY" and len({r["windowStart"] for r in got_day["data"]}) >= 2
        assert {(rfc(r["windowStart"]), r["groupBy"]["model"], r["currency"]): r["value"] for r in got_day["data"]} == {
            (dt.datetime.fromisoformat(r["window_start"]), r["model"], r["currency"]): r["cost"] for r in day
        }
        for r in got_day["data"]:
            assert rfc(r["windowEnd"]) - rfc(r["windowStart"]) == dt.timedelta(days=1)
        zone_from = (NOW - dt.timedelta(days=3)).astimezone(dt.timezone(dt.timedelta(hours=8)))
        zone_from = zone_from.replace(hour=0, minute=0)
        zone_to = zone_from + dt.timedelta(days=5)
        beijing = report(
            stack,
            *("--by", "tenant", "--window", "day", "--tz", "Asia/Shanghai", "--tenant", "tenant-0"),
            *("--since", zone_from.isoformat(), "--until", zone_to.isoformat()),
        )
        got_bj = api.usage(
            t0,
            meter="cost",
            window_size="DAY",
            tz="Asia/Shanghai",
            **{"from": zone_from.isoformat(), "to": zone_to.isoformat()},
        )
        assert got_bj["from"] == zone_from.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
        assert {(rfc(r["windowStart"]), r["currency"]): r["value"] for r in got_bj["data"]} == {
            (dt.datetime.fromisoformat(r["window_start"]), r["currency"]): r["cost"] for r in beijing
        }
        assert all(rfc(r["windowStart"]).astimezone(zone_from.tzinfo).hour == 0 for r in got_bj["data"])
        assert sum(Decimal(r["value"]) for r in got_bj["data"] if r["currency"] == "USD") == oracle["USD"]

        # filters and label group-bys agree: a team's users sum to the team's rollup (the ledger
        # and the label rollup), a model's filter to its row, a user's filter to the user's row
        team1 = {r["currency"]: Decimal(r["value"]) for r in got_team if r["groupBy"]["label:team"] == "team-1"}
        users1 = api.usage(t0, meter="cost", group_by="user", **{"filter_label[team]": "team-1"})["data"]
        assert users1 and all(r["subject"] for r in users1)
        summed: dict[str, Decimal] = defaultdict(Decimal)
        for r in users1:
            summed[r["currency"]] += Decimal(r["value"])
        assert summed == team1
        model, cur, cost = next((r["groupBy"]["model"], r["currency"], r["value"]) for r in got["data"])
        filtered = api.usage(t0, meter="cost", filter_model=model)["data"]
        assert {r["currency"]: r["value"] for r in filtered}[cur] == cost
        by_user = api.usage(t0, meter="events", group_by="user")["data"]
        user = by_user[0]["subject"]
        one = api.usage(t0, meter="events", filter_user=user, group_by="label:app")["data"]
        assert sum(r["value"] for r in one if r["currency"] == by_user[0]["currency"]) == by_user[0]["value"]
        two = api.usage(t0, meter="cost", group_by=["model", "label:app"], **{"filter_label[team]": "team-2"})["data"]
        assert two and all(set(r["groupBy"]) == {"model", "label:app"} for r in two)
        everyone = api.usage(t0, meter="cost", group_by="user")["data"]
        top = api.usage(t0, meter="cost", group_by="user", top=2)["data"]
        assert {r["currency"] for r in top} == {r["currency"] for r in everyone}
        for c in {r["currency"] for r in top}:
            mine = [Decimal(r["value"]) for r in top if r["currency"] == c]
            assert mine == sorted((Decimal(r["value"]) for r in everyone if r["currency"] == c), reverse=True)[:2]

        # tenants: a token reads its own only
        status, doc, _ = api.get("/v1/usage?meter=cost&filter_tenant=tenant-1", t0)
        assert status == 403 and set(doc) == {"error"} and "tenant-1" not in doc["error"]
        status, doc, _ = api.get("/v1/usage?meter=cost", both)
        assert status == 400 and "filter_tenant" in doc["error"]
        other = api.usage(t1, meter="cost")["data"]
        assert {r["tenant"] for r in other} == {"tenant-1"}
        assert api.usage(both, meter="cost", filter_tenant="tenant-1")["data"] == other

        # tokens: missing and wrong are 401 with different messages; /metrics needs one
        missing, wrong = api.get("/v1/usage?meter=cost", None), api.get("/v1/usage?meter=cost", t0[:-2] + "xx")
        assert missing[0] == wrong[0] == 401 and missing[1]["error"] != wrong[1]["error"]
        assert 'error="invalid_token"' in wrong[2]["WWW-Authenticate"]
        assert "invalid_token" not in missing[2]["WWW-Authenticate"]
        assert api.get("/metrics", None)[0] == 401
        status, text, _ = api.get("/metrics", t0, raw=True)
        assert status == 200 and 'meterstream_api_queries_total{token="dash-0"}' in text
        status, doc, _ = api.get("/v1/usage?meter=cost&windowSize=DAY", t0)
        assert status == 400 and "windowSize" in doc["error"]

        # a revoked token stops working within a second (the file is read again)
        stack.cli("api", "token", "revoke", "dash-1", "--tokens-file", str(api.tokens))
        time.sleep(1.5)
        assert api.get("/v1/usage?meter=cost", t1)[0] == 401
        assert api.usage(t0, meter="events")["data"]
    finally:
        if api is not None and hasattr(api, "proc"):
            api.stop()
        stack.stop()
    log = api.log.read_text()
    assert "GET /v1/usage?meter=cost" in log and "dash-0" in log  # the access log names the token's name
    for token in api.issued:
        assert token not in log and token not in api.tokens.read_text()
