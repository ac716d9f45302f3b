"""The usage API without a store: OpenMeter-style parameters as the usage read's (UsageParams),
every refusal a 400 with its reason, the tenant forced to the token's (403 for another's, nothing
read), the answer's shape (exact values, each row's currency, window ends in a time zone), the
read tokens file (`meterstream api token add/list/revoke`, only hashes, every token limited to
tenants), and the HTTP side through the guard (401 missing vs wrong, /metrics behind a token,
503 when the store is away, no token in the log)."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import stat
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner

from schemas.errors import Unavailable
from streams.analyst.usage import UsageParams
from streams.api import query
from streams.api.server import make_app
from streams.api.tokens import API, check_scoped
from streams.cli.main import main
from streams.http_guard import Refused
from streams.ingest import tokens
from streams.settings import Settings

ONE = frozenset({"acme"})
TWO = frozenset({"acme", "beta"})
LABELS = ("app", "team")
UTC = dt.UTC


def parse(qs: str, tenants: frozenset[str] = ONE) -> query.Query:
    from urllib.parse import parse_qsl

    return query.parse(parse_qsl(qs, keep_blank_values=True), tenants, LABELS)


def refused(qs: str, tenants: frozenset[str] = ONE) -> Refused:
    with pytest.raises(Refused) as err:
        parse(qs, tenants)
    return err.value


# ---------------------------------------------------------------------------- parameters


def test_openmeter_style_parameters_are_the_usage_read():
    q = parse(
        "meter=tokens&group_by=model&group_by=user&window_size=DAY&from=2026-01-01T00:00:00%2B08:00"
        "&to=2026-01-03T00:00:00%2B08:00&tz=Asia/Shanghai&filter_user=alice&filter_model=gpt-4o"
        "&filter_label[team]=search&filter_label[app]=chat&top=5"
    )
    assert q.params == UsageParams(
        group_by=("model", "user"),
        window="day",
        tz="Asia/Shanghai",
        since=dt.datetime(2025, 12, 31, 16, tzinfo=UTC),
        until=dt.datetime(2026, 1, 2, 16, tzinfo=UTC),
        tenant="acme",
        user="alice",
        model="gpt-4o",
        labels={"team": "search", "app": "chat"},
        top=5,
        order="tokens",
        rolled_up_labels=LABELS,
    )
    assert (q.meter, q.window_size, q.tz) == ("tokens", "DAY", "Asia/Shanghai")


def test_defaults_one_total_of_the_tenant_ordered_by_the_meter():
    q = parse("meter=events")
    assert q.params.group_by == ("tenant",) and q.params.window == "total" and q.params.order == "events"
    assert q.params.tenant == "acme" and q.params.since is None and q.params.tz is None
    assert parse("meter=cost&group_by=label:team&tz=UTC").params.group_by == ("label:team",)
    assert parse("meter=cost&window_size=HOUR&tz=UTC&from=2026-01-01T05:00:00Z").params.window == "hour"


@pytest.mark.parametrize(
    ("qs", "reason"),
    [
        ("", "meter: one of cost, tokens, events is required"),
        ("meter=money", "not 'money'"),
        ("meter=cost&windowSize=DAY", "unknown parameter 'windowSize'; the parameters are meter"),
        ("meter=cost&meter=tokens", "meter is given twice"),
        ("meter=cost&filter_user=", "'filter_user' is empty"),
        ("meter=cost&window_size=day", "window_size: one of MINUTE, HOUR, DAY, MONTH, not 'day'"),
        ("meter=cost&window_size=WEEK", "not 'WEEK'"),
        ("meter=cost&from=2026-01-01", "from: '2026-01-01' is not an RFC 3339 time"),
        ("meter=cost&from=2026-01-01T00:00:00", "not an RFC 3339 time with its offset"),
        ("meter=cost&to=2026-13-01T00:00:00Z", "to: '2026-13-01T00:00:00Z' is not a valid time"),
        ("meter=cost&from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", "from must be before to"),
        ("meter=cost&from=2026-01-01T00:00:00Z&to=2026-01-01T00:00:00Z", "from must be before to"),
        ("meter=cost&from=2026-01-01T00:00:30Z", "from must be the start of a minute"),
        ("meter=cost&window_size=HOUR&from=2026-01-01T00:30:00Z", "from must be the start of a HOUR window"),
        ("meter=cost&window_size=DAY&to=2026-01-01T01:00:00Z", "to must be the start of a DAY window"),
        (
            "meter=cost&window_size=DAY&tz=Asia/Kolkata&from=2026-01-01T00:00:00Z",
            "from must be the start of a DAY window in Asia/Kolkata",
        ),
        ("meter=cost&window_size=MONTH&from=2026-01-02T00:00:00Z", "from must be the start of a MONTH window"),
        ("meter=cost&tz=Asia/Shanghai", "tz applies to window_size=DAY and MONTH"),
        ("meter=cost&window_size=HOUR&tz=Asia/Shanghai", "tz applies to window_size=DAY and MONTH"),
        ("meter=cost&window_size=DAY&tz=Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
        ("meter=cost&window_size=DAY&tz=../../etc", "not a time zone name"),
        ("meter=cost&group_by=tenant", "group_by=tenant: a query reads one tenant"),
        ("meter=cost&group_by=region", "group_by: user, model or label:KEY"),
        ("meter=cost&group_by=label:a%20b", "group_by: user, model or label:KEY"),
        ("meter=cost&group_by=label:team%0a", "group_by: user, model or label:KEY"),
        ("meter=cost&group_by=user&group_by=user", "a dimension is given twice"),
        ("meter=cost&group_by=user&group_by=model&group_by=label:team", "at most 2 dimensions"),
        ("meter=cost&top=0", "top: a whole number from 1 to 10000"),
        ("meter=cost&top=10001", "top: a whole number"),
        ("meter=cost&top=%C2%B2", "top: a whole number"),  # a superscript two is a digit to str.isdigit
        ("meter=cost&filter_label[te am]=x", "filter_label[KEY]: a label key"),
        ("meter=cost&filter_label[team]=a&filter_label[team]=b", "filter_label[team] is given twice"),
        (
            "meter=cost&filter_label[a]=1&filter_label[b]=1&filter_label[c]=1&filter_label[d]=1&filter_label[e]=1",
            "at most 4",
        ),
        ("meter=cost&filter_user=" + "u" * 257, "filter_user: String should have at most 256 characters"),
    ],
)
def test_a_bad_request_is_a_400_with_its_reason(qs, reason):
    err = refused(qs)
    assert err.status == 400 and reason in str(err), str(err)


# ---------------------------------------------------------------------------- tenants


def test_the_tenant_is_the_tokens():
    assert parse("meter=cost").params.tenant == "acme"  # one tenant: forced
    assert parse("meter=cost&filter_tenant=acme").params.tenant == "acme"
    assert parse("meter=cost&filter_tenant=beta", TWO).params.tenant == "beta"
    other = refused("meter=cost&filter_tenant=beta")
    assert other.status == 403 and "reads the usage of acme only; nothing was read" in str(other)
    several = refused("meter=cost", TWO)
    assert several.status == 400 and "give filter_tenant, one of them" in str(several)
    assert refused("meter=cost&filter_tenant=acme&filter_tenant=beta", TWO).status == 400  # twice
    # another tenant is refused whatever else the request says
    assert refused("meter=cost&filter_tenant=initech&group_by=user&top=3", TWO).status == 403
    assert refused("meter=cost&filter_tenant=acme", frozenset()).status == 403  # a token of no tenant reads none


# ---------------------------------------------------------------------------- the answer


def row(**kw: Any) -> dict[str, Any]:
    base = {
        "tenant_id": "acme",
        "currency": "USD",
        "cost": Decimal("1.250000000000"),
        "events": 3,
        "input_tokens": 100,
        "output_tokens": 20,
        "cached_input_tokens": 5,
        "cache_write_tokens": 0,
    }
    return {**base, **kw}


def test_the_answer_is_openmeters_with_currency_and_exact_values():
    q = parse("meter=cost&group_by=user&group_by=label:team&from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z")
    doc = query.answer(
        q, [row(user_id="alice", **{"label:team": "search"}), row(user_id="bob", currency="EUR", **{"label:team": ""})]
    )
    assert doc == {
        "meter": "cost",
        "tenant": "acme",
        "from": "2026-01-01T00:00:00Z",
        "to": "2026-02-01T00:00:00Z",
        "windowSize": None,
        "windowTimeZone": "UTC",
        "data": [
            {
                "value": "1.25",
                "currency": "USD",
                "windowStart": "2026-01-01T00:00:00Z",
                "windowEnd": "2026-02-01T00:00:00Z",
                "subject": "alice",
                "tenant": "acme",
                "groupBy": {"label:team": "search"},
            },
            {
                "value": "1.25",
                "currency": "EUR",
                "windowStart": "2026-01-01T00:00:00Z",
                "windowEnd": "2026-02-01T00:00:00Z",
                "subject": "bob",
                "tenant": "acme",
                "groupBy": {"label:team": ""},
            },
        ],
    }
    tokens_doc = query.answer(parse("meter=tokens&group_by=model"), [row(model="gpt-4o", input_tokens=2**70)])
    (r,) = tokens_doc["data"]
    assert r["value"] == 2**70 + 25 and r["subject"] is None and r["groupBy"] == {"model": "gpt-4o"}
    assert r["tokens"] == {"input": 2**70, "output": 20, "cached_input": 5, "cache_write": 0}
    assert r["windowStart"] is None and r["windowEnd"] is None  # no bounds asked
    assert query.answer(parse("meter=events"), [row()])["data"][0]["value"] == 3
    assert query.answer(parse("meter=cost"), [row(cost=Decimal("0E-12"))])["data"][0]["value"] == "0"


def test_window_ends_in_the_time_zone():
    start = dt.datetime(2026, 3, 7, 5, tzinfo=UTC)  # midnight in New York; DST starts on 8 March
    day = query.window_end(start, "DAY", "America/New_York")
    assert day == dt.datetime(2026, 3, 8, 5, tzinfo=UTC)
    assert query.window_end(day, "DAY", "America/New_York") == dt.datetime(2026, 3, 9, 4, tzinfo=UTC)  # 23 hours
    assert query.window_end(dt.datetime(2026, 12, 1, tzinfo=UTC), "MONTH", None) == dt.datetime(2027, 1, 1, tzinfo=UTC)
    shanghai_dec = dt.datetime(2026, 11, 30, 16, tzinfo=UTC)
    assert query.window_end(shanghai_dec, "MONTH", "Asia/Shanghai") == dt.datetime(2026, 12, 31, 16, tzinfo=UTC)
    assert query.window_end(start, "HOUR", None) == start + dt.timedelta(hours=1)
    assert query.window_end(start, "MINUTE", None) == start + dt.timedelta(minutes=1)
    q = parse("meter=cost&window_size=DAY&tz=Asia/Kolkata&from=2026-01-01T00:00:00%2B05:30")
    (r,) = query.answer(q, [row(window_start=dt.datetime(2025, 12, 31, 18, 30, tzinfo=UTC))])["data"]
    assert (r["windowStart"], r["windowEnd"]) == ("2025-12-31T18:30:00Z", "2026-01-01T18:30:00Z")
    assert query.answer(q, [])["from"] == "2025-12-31T18:30:00Z"


# ---------------------------------------------------------------------------- read tokens


def cli(tmp_path: Path, *args: str) -> Any:
    return CliRunner().invoke(main, list(args), env={"MS_DATA_DIR": str(tmp_path / "data")})


def test_api_token_add_list_revoke(tmp_path):
    path = tmp_path / "data" / "api-tokens"
    run = cli(tmp_path, "api", "token", "add", "dashboard", "--tenant", "acme", "--tenant", "beta")
    assert run.exit_code == 0, run.output
    token = run.stdout.strip()
    assert run.stdout == token + "\n" and token not in run.stderr and str(path) in run.stderr
    assert path.read_text() == f"dashboard {hashlib.sha256(token.encode()).hexdigest()} tenants=acme,beta\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert tokens.load(path, API).producer(token) == tokens.Producer("dashboard", TWO)
    second = cli(tmp_path, "api", "token", "add", "dashboard", "--tenant", "acme").stdout.strip()
    listed = cli(tmp_path, "api", "token", "list")
    assert listed.exit_code == 0 and token not in listed.output and second not in listed.output
    assert listed.stdout.splitlines() == [
        f"dashboard\tacme,beta\t{hashlib.sha256(token.encode()).hexdigest()[:8]}",
        f"dashboard\tacme\t{hashlib.sha256(second.encode()).hexdigest()[:8]}",
    ]
    revoked = cli(tmp_path, "api", "token", "revoke", "dashboard")
    assert revoked.exit_code == 0 and "revoked 2 tokens of dashboard" in revoked.stderr
    again = cli(tmp_path, "api", "token", "revoke", "dashboard")
    assert (
        again.exit_code == 2 and "no tokens in" in again.output and "`meterstream api token add NAME`" in again.output
    )
    cli(tmp_path, "api", "token", "add", "wall", "--tenant", "acme")
    again = cli(tmp_path, "api", "token", "revoke", "dashboard")
    assert again.exit_code == 2 and "(meterstream api token list)" in again.output
    assert not (tmp_path / "data" / "ingest-tokens").exists()  # the ingest's file is another


def test_api_token_add_needs_a_tenant_and_a_good_name(tmp_path):
    run = cli(tmp_path, "api", "token", "add", "dashboard")
    assert run.exit_code == 2 and "--tenant" in run.output
    run = cli(tmp_path, "api", "token", "add", "-bad", "--tenant", "acme")
    assert run.exit_code != 0
    with pytest.raises(tokens.TokenFileError, match="a token name is 1-64"):
        tokens.add(tmp_path / "t", "a b", ["acme"], API)
    with pytest.raises(tokens.TokenFileError, match="tenant"):
        tokens.add(tmp_path / "t", "dash", ["a,b"], API)


def test_the_api_refuses_to_start_without_tokens_or_with_a_token_of_no_tenant(tmp_path):
    run = cli(tmp_path, "api", "--tokens-file", str(tmp_path / "none"))
    assert run.exit_code == 2 and "meterstream api token add NAME" in run.output and "Traceback" not in run.output
    path = tmp_path / "tokens"
    tokens.add(path, "dash", ["acme"], API)
    tokens.add(path, "everyone", None, API)  # as a hand-made line without tenants= would be
    with pytest.raises(tokens.TokenFileError, match="tokens of everyone name no tenants"):
        check_scoped(path)
    run = cli(tmp_path, "api", "--tokens-file", str(path))
    assert run.exit_code == 2 and "name no tenants" in run.output
    path.chmod(0o640)
    run = cli(tmp_path, "api", "--tokens-file", str(path))
    assert run.exit_code == 2 and "chmod 600" in run.output


def test_the_ingests_messages_are_unchanged(tmp_path):
    with pytest.raises(tokens.TokenFileError, match="`meterstream ingest token add NAME`"):
        tokens.load(tmp_path / "none")
    with pytest.raises(tokens.TokenFileError, match="a producer name"):
        tokens.add(tmp_path / "t", "a b")


# ---------------------------------------------------------------------------- HTTP


class FakeReads:
    def __init__(self, rows: list[dict[str, Any]] | None = None, fail: Exception | None = None) -> None:
        self.asked: list[UsageParams] = []
        self.rows, self.fail = rows or [], fail

    def __call__(self, params: UsageParams) -> list[dict[str, Any]]:
        self.asked.append(params)
        if self.fail is not None:
            raise self.fail
        return self.rows


def serve(tmp_path: Path, reads: FakeReads, check: Any) -> None:
    path = tmp_path / "api-tokens"
    acme = tokens.add(path, "acme-dash", ["acme"], API)
    both = tokens.add(path, "both", ["acme", "beta"], API)
    anyone = tokens.add(path, "anyone", None, API)
    settings = Settings(data_dir=tmp_path, rollup_labels="team")
    app = make_app(settings, tokens.TokensFile(path, tokens.load(path, API), API), reads)

    async def run() -> None:
        async with TestClient(TestServer(app)) as client:
            await check(client, {"acme": acme, "both": both, "anyone": anyone})

    asyncio.run(run())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_http_tokens_tenants_and_errors(tmp_path, caplog):
    reads = FakeReads([row(model="gpt-4o")])

    async def check(client: TestClient, tok: dict[str, str]) -> None:
        r = await client.get("/health")
        assert r.status == 200 and await r.json() == {"ok": True}

        missing = await client.get("/v1/usage?meter=cost")
        wrong = await client.get("/v1/usage?meter=cost", headers=bearer(tok["acme"] + "x"))
        assert missing.status == wrong.status == 401
        m, w = (await missing.json())["error"], (await wrong.json())["error"]
        assert m != w and "required" in m and "not a read token" in w
        assert missing.headers["WWW-Authenticate"] == 'Bearer realm="meterstream-api"'
        assert wrong.headers["WWW-Authenticate"] == 'Bearer realm="meterstream-api", error="invalid_token"'
        assert (await client.get("/v1/usage?meter=cost", headers=bearer(tok["anyone"]))).status == 401
        assert not reads.asked

        ok = await client.get("/v1/usage?meter=cost&group_by=model", headers=bearer(tok["acme"]))
        assert ok.status == 200, await ok.text()
        assert ok.headers["Cache-Control"] == "no-store"
        body = await ok.json()
        assert body["data"] == [
            {
                "value": "1.25",
                "currency": "USD",
                "windowStart": None,
                "windowEnd": None,
                "subject": None,
                "tenant": "acme",
                "groupBy": {"model": "gpt-4o"},
            }
        ]
        (asked,) = reads.asked
        assert asked.tenant == "acme" and asked.group_by == ("model",) and asked.rolled_up_labels == ("team",)

        forbidden = await client.get("/v1/usage?meter=cost&filter_tenant=beta", headers=bearer(tok["acme"]))
        assert forbidden.status == 403 and set(await forbidden.json()) == {"error"}
        several = await client.get("/v1/usage?meter=cost", headers=bearer(tok["both"]))
        assert several.status == 400 and "filter_tenant" in (await several.json())["error"]
        bad = await client.get("/v1/usage?meter=cost&windowSize=DAY", headers=bearer(tok["both"]))
        assert bad.status == 400 and "unknown parameter 'windowSize'" in (await bad.json())["error"]
        assert len(reads.asked) == 1  # nothing read for the refused ones
        beta = await client.get("/v1/usage?meter=events&filter_tenant=beta", headers=bearer(tok["both"]))
        assert beta.status == 200 and reads.asked[-1].tenant == "beta"

        assert (await client.get("/metrics")).status == 401
        page = await client.get("/metrics", headers=bearer(tok["acme"]))
        text = await page.text()
        assert page.status == 200 and 'meterstream_api_queries_total{token="acme-dash"} 1.0' in text
        assert 'meterstream_api_requests_total{code="4xx"}' in text

        nowhere = await client.get("/v1/other", headers=bearer(tok["acme"]))
        assert nowhere.status == 404 and (await nowhere.json()) == {"error": "no such endpoint"}
        assert (await client.get("/nowhere")).status == 404  # before any token is looked at
        post = await client.post("/v1/usage?meter=cost", headers=bearer(tok["acme"]), json={})
        assert post.status in (405, 415)
        rebinding = await client.get("/health", headers={"Host": "evil.example"})
        assert rebinding.status == 421

    with caplog.at_level(logging.DEBUG):
        serve(tmp_path, reads, check)
    assert "acme-dash" in (tmp_path / "api-tokens").read_text()
    for line in (tmp_path / "api-tokens").read_text().splitlines():
        assert len(line.split()[1]) == 64  # only hashes


def test_no_token_is_logged_and_a_store_away_is_a_503(tmp_path, caplog):
    reads = FakeReads(fail=Unavailable("no worker answers"))
    seen: dict[str, str] = {}

    async def check(client: TestClient, tok: dict[str, str]) -> None:
        seen.update(tok)
        away = await client.get("/v1/usage?meter=cost", headers=bearer(tok["acme"]))
        assert away.status == 503 and away.headers["Retry-After"] == "5"
        assert "cannot be read right now" in (await away.json())["error"]
        await client.get("/v1/usage?meter=cost", headers=bearer(tok["anyone"]))
        await client.get("/v1/usage?meter=cost", headers=bearer(tok["acme"] + "x"))

    with caplog.at_level(logging.DEBUG):
        serve(tmp_path, reads, check)
    assert "no worker answers" in caplog.text and "has no tenants=" in caplog.text
    for token in seen.values():
        assert token not in caplog.text and token[:-1] not in caplog.text
