"""Kafka over TLS and SASL on the real broker: the project's own broker (ops/kafka/kafka.sh) with
its SASL_SSL listener, a CA and broker keystore made here with keytool, and the whole pipeline
(`meterstream up`, `budgets set`, `produce`, a worker, alerts) over that listener only; clients
without credentials, with a wrong password or without TLS are refused."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import SecretStr

from streams.harness.generate import generate
from streams.harness.stack import KAFKA_SH, Broker, Stack, alerts_in_topic, free_port
from streams.kafka_security import KafkaSecurity

pytestmark = pytest.mark.integration
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
USER = "meter"
PRODUCER = "gateway"  # a producer's account: only what an ACL gives it
PASSWORD = "pw " + secrets.token_hex(12)  # with a space: passed through as is
STOREPASS = secrets.token_hex(12)


def keytool(*args: str) -> None:
    subprocess.run(["keytool", *args], check=True, capture_output=True, timeout=120)


def make_tls(d: Path) -> Path:
    """A CA, and a broker keystore (PKCS12) holding a key and a certificate the CA signed for
    127.0.0.1 and localhost; for mTLS a truststore with the CA, and a client certificate and key
    (PEM). Returns the CA certificate (PEM): what clients trust."""
    ec = ["-keyalg", "EC", "-groupname", "secp256r1", "-validity", "2", "-storetype", "PKCS12"]
    ca, broker = str(d / "ca.p12"), str(d / "broker.p12")
    keytool(
        "-genkeypair",
        "-alias",
        "ca",
        "-dname",
        "CN=meterstream-test-ca",
        "-ext",
        "bc:c",
        *ec,
        "-keystore",
        ca,
        "-storepass",
        STOREPASS,
    )
    keytool("-exportcert", "-rfc", "-alias", "ca", "-keystore", ca, "-storepass", STOREPASS, "-file", str(d / "ca.pem"))
    keytool(
        "-genkeypair", "-alias", "broker", "-dname", "CN=127.0.0.1", *ec, "-keystore", broker, "-storepass", STOREPASS
    )
    keytool(
        "-certreq", "-alias", "broker", "-keystore", broker, "-storepass", STOREPASS, "-file", str(d / "broker.csr")
    )
    keytool(
        "-gencert",
        "-alias",
        "ca",
        "-keystore",
        ca,
        "-storepass",
        STOREPASS,
        "-rfc",
        "-validity",
        "2",
        "-infile",
        str(d / "broker.csr"),
        "-outfile",
        str(d / "broker.pem"),
        "-ext",
        "SAN=ip:127.0.0.1,dns:localhost",
        "-ext",
        "EKU=serverAuth",
    )
    keytool(
        "-importcert",
        "-noprompt",
        "-alias",
        "ca",
        "-keystore",
        broker,
        "-storepass",
        STOREPASS,
        "-file",
        str(d / "ca.pem"),
    )
    keytool(
        "-importcert", "-alias", "broker", "-keystore", broker, "-storepass", STOREPASS, "-file", str(d / "broker.pem")
    )
    keytool(
        "-importcert",
        "-noprompt",
        "-alias",
        "ca",
        "-keystore",
        str(d / "truststore.p12"),
        "-storetype",
        "PKCS12",
        "-storepass",
        STOREPASS,
        "-file",
        str(d / "ca.pem"),
    )
    client = str(d / "client.p12")
    keytool(
        "-genkeypair", "-alias", "client", "-dname", f"CN={USER}", *ec, "-keystore", client, "-storepass", STOREPASS
    )
    keytool(
        "-certreq", "-alias", "client", "-keystore", client, "-storepass", STOREPASS, "-file", str(d / "client.csr")
    )
    keytool(
        "-gencert",
        "-alias",
        "ca",
        "-keystore",
        ca,
        "-storepass",
        STOREPASS,
        "-rfc",
        "-validity",
        "2",
        "-infile",
        str(d / "client.csr"),
        "-outfile",
        str(d / "client.pem"),
        "-ext",
        "EKU=clientAuth",
    )
    keytool(
        "-importcert",
        "-noprompt",
        "-alias",
        "ca",
        "-keystore",
        client,
        "-storepass",
        STOREPASS,
        "-file",
        str(d / "ca.pem"),
    )
    keytool(
        "-importcert", "-alias", "client", "-keystore", client, "-storepass", STOREPASS, "-file", str(d / "client.pem")
    )
    subprocess.run(
        [
            "openssl",
            "pkcs12",
            "-in",
            client,
            "-nocerts",
            "-nodes",
            "-passin",
            f"pass:{STOREPASS}",
            "-out",
            str(d / "client.key"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return d / "ca.pem"


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory) -> Iterator[tuple[Broker, Path]]:
    d = tmp_path_factory.mktemp("kafka-tls")
    cafile = make_tls(d)
    broker = Broker(
        d / "kafka",
        extra_env={
            "MS_KAFKA_SASL_SSL_PORT": str(free_port()),
            "MS_KAFKA_SSL_KEYSTORE": str(d / "broker.p12"),
            "MS_KAFKA_SSL_KEYSTORE_PASSWORD": STOREPASS,
            "MS_KAFKA_SASL_USERS": f"{USER}:{PASSWORD},{PRODUCER}:{PASSWORD}",
            "MS_KAFKA_SUPER_USERS": USER,  # ACLs enforced: meterstream's account may do anything, a producer not
        },
    )
    broker.start()
    try:
        yield broker, cafile
    finally:
        broker.remove()


def security(
    cafile: Path, mechanism: str = "SCRAM-SHA-512", password: str = PASSWORD, user: str = USER
) -> KafkaSecurity:
    return KafkaSecurity("SASL_SSL", mechanism, user, SecretStr(password), cafile=cafile)


def kafka_python_topics(bootstrap: str, sec: KafkaSecurity, timeout_ms: int = 8000) -> set[str]:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=8000, **sec.kafka_python(bootstrap_timeout_ms=timeout_ms)
    )
    try:
        return set(admin.list_topics())
    finally:
        admin.close()


async def aiokafka_topics(bootstrap: str, sec: KafkaSecurity) -> set[str]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=8000, **sec.aiokafka())
    await consumer.start()
    try:
        return await consumer.topics()
    finally:
        await consumer.stop()


def test_pipeline_budgets_and_alerts_over_sasl_ssl(tls_broker, clickhouse_service, tmp_path):
    broker, cafile = tls_broker
    sec = security(cafile)
    # `meterstream up` (in Stack) creates the topics over the SASL_SSL listener
    stack = Stack(broker.sasl_ssl_bootstrap, tmp_path, clickhouse_service.url, partitions=2, security=sec)
    outputs: list[str] = []
    try:
        topics = kafka_python_topics(stack.bootstrap, sec)
        assert {stack.events_topic, stack.env["MS_SINK_TOPIC"], stack.env["MS_BUDGETS_TOPIC"]} <= topics

        lines = [line for _, line in generate(1500, seed=31, now=NOW, tenants=2, users=12, duplicate_rate=0.1, bad=6)]
        stack.produced.extend(lines)  # what `meterstream produce` below publishes
        exp = stack.expected(NOW + dt.timedelta(minutes=5))
        assert exp.counted > 1000 and exp.duplicates > 50 and exp.rejected >= 6
        # a daily USD budget for one tenant, sized so that its busiest day crosses every threshold
        spend: dict[int, Decimal] = {}
        for (window, start, tenant, _user, currency), (cost, _n) in exp.by_user.items():
            if window == "day" and currency == "USD" and tenant == "tenant-0":
                spend[start] = spend.get(start, Decimal(0)) + cost
        assert spend
        amount = (max(spend.values()) / Decimal("1.2")).quantize(Decimal("0.01"))
        want_alerts = sorted(
            f"t0-day|{dt.datetime.fromtimestamp(start / 1000, dt.UTC):%Y-%m-%d}|{t}"
            for start, v in spend.items()
            for t in ("0.5", "0.8", "1")
            if v >= amount * Decimal(t)
        )
        assert len(want_alerts) >= 3
        outputs.append(
            stack.cli(
                "budgets",
                "set",
                "--id",
                "t0-day",
                "--tenant",
                "tenant-0",
                "--period",
                "day",
                "--currency",
                "USD",
                "--amount",
                str(amount),
            ).stdout.decode()
        )
        listed = json.loads(stack.cli("budgets", "list", "--format", "json").stdout)
        assert [b["id"] for b in listed] == ["t0-day"]

        events = tmp_path / "events.jsonl"
        events.write_bytes(b"\n".join(lines) + b"\n")
        proc = stack.cli("produce", "--no-check", str(events))  # bad lines on purpose (bad=6)
        outputs.append(proc.stderr.decode())
        assert f"produced {len(lines)} events" in proc.stderr.decode()

        stack.start_worker()
        stack.wait_until_exact(exp, timeout=180)
        stack.wait_until_exact(exp, timeout=60, by="model")
        deadline = time.monotonic() + 90
        while sorted(alerts_in_topic(stack)) != want_alerts and time.monotonic() < deadline:
            time.sleep(1)
        assert sorted(alerts_in_topic(stack)) == want_alerts  # delivered by the worker over SASL_SSL
        deadline = time.monotonic() + 30  # the outbox row is marked delivered just after the send
        while True:
            table = json.loads(stack.cli("alerts", "--format", "json").stdout)
            if all(r["kafka_delivered"] for r in table) or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert sorted(r["alert_key"] for r in table) == want_alerts
        assert all(r["kafka_delivered"] for r in table)
    finally:
        stack.stop()
    # the password was in the environment only: not in any output or log
    logs = [p.read_text(errors="replace") for p in tmp_path.glob("worker-*.log")]
    assert logs
    logs += [p.read_text(errors="replace") for p in (broker.data_dir / "kafka" / "logs").glob("*.log")]
    assert all(PASSWORD not in text for text in logs + outputs)


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_every_mechanism_authenticates_with_the_right_password(tls_broker, mechanism):
    broker, cafile = tls_broker
    sec = security(cafile, mechanism)
    # both libraries authenticate and are answered metadata (the same topics; aiokafka hides internal ones)
    assert {t for t in kafka_python_topics(broker.sasl_ssl_bootstrap, sec) if not t.startswith("__")} == asyncio.run(
        aiokafka_topics(broker.sasl_ssl_bootstrap, sec)
    )


def refused_cases(cafile: Path) -> dict[str, KafkaSecurity]:
    return {
        "wrong password (SCRAM)": security(cafile, "SCRAM-SHA-512", password="not-" + PASSWORD),
        "wrong password (PLAIN)": security(cafile, "PLAIN", password="not-" + PASSWORD),
        "no credentials (TLS only)": KafkaSecurity("SSL", cafile=cafile),
        "no TLS, no credentials": KafkaSecurity(),
    }


@pytest.mark.parametrize(
    "case", ["wrong password (SCRAM)", "wrong password (PLAIN)", "no credentials (TLS only)", "no TLS, no credentials"]
)
def test_clients_without_the_right_credentials_are_refused(tls_broker, case):
    import aiokafka.errors
    import kafka.errors

    broker, cafile = tls_broker
    sec = refused_cases(cafile)[case]
    log = broker.data_dir / "kafka" / "logs" / "server.log"
    failed_before = log.read_text().count("Failed authentication")

    t0 = time.monotonic()
    with pytest.raises(kafka.errors.KafkaError):  # KafkaTimeoutError: "Unable to bootstrap"
        kafka_python_topics(broker.sasl_ssl_bootstrap, sec, timeout_ms=4000)
    with pytest.raises(aiokafka.errors.KafkaError):  # aiokafka: KafkaConnectionError, "Unable to bootstrap"
        asyncio.run(aiokafka_topics(broker.sasl_ssl_bootstrap, sec))
    assert time.monotonic() - t0 < 30
    if case.startswith("wrong password"):  # the broker itself refused them: authentication failed
        assert log.read_text().count("Failed authentication") > failed_before


def test_mutual_tls_needs_a_client_certificate(tls_broker, tmp_path):
    """A broker that also requires client certificates (MS_KAFKA_SSL_TRUSTSTORE): meterstream's
    clients present MS_KAFKA_SSL_CERTFILE/KEYFILE; without them they are refused."""
    _, cafile = tls_broker
    d = cafile.parent
    broker = Broker(
        tmp_path / "kafka",
        extra_env={
            "MS_KAFKA_SASL_SSL_PORT": str(free_port()),
            "MS_KAFKA_SSL_KEYSTORE": str(d / "broker.p12"),
            "MS_KAFKA_SSL_KEYSTORE_PASSWORD": STOREPASS,
            "MS_KAFKA_SASL_USERS": f"{USER}:{PASSWORD}",
            "MS_KAFKA_SSL_TRUSTSTORE": str(d / "truststore.p12"),
            "MS_KAFKA_SSL_TRUSTSTORE_PASSWORD": STOREPASS,
        },
    )
    broker.start()
    try:
        bootstrap = broker.sasl_ssl_bootstrap
        mtls = KafkaSecurity(
            "SASL_SSL",
            "SCRAM-SHA-256",
            USER,
            SecretStr(PASSWORD),
            cafile=cafile,
            certfile=d / "client.pem",
            keyfile=d / "client.key",
        )
        assert {t for t in kafka_python_topics(bootstrap, mtls) if not t.startswith("__")} == asyncio.run(
            aiokafka_topics(bootstrap, mtls)
        )
        # the CLI, configured from the environment only: budgets (kafka-python) over mTLS + SASL
        env = {k: v for k, v in os.environ.items() if not k.startswith("MS_")}
        env.update(
            mtls.env(),
            MS_KAFKA_BOOTSTRAP=bootstrap,
            MS_BUDGETS_TOPIC="budgets-mtls",
            MS_DATA_DIR=str(tmp_path / "data"),
        )
        cli = [sys.executable, "-m", "streams.cli", "budgets"]
        subprocess.run(
            cli + ["set", "--id", "b1", "--tenant", "acme", "--period", "month", "--currency", "USD", "--amount", "5"],
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        listed = subprocess.run(
            cli + ["list", "--format", "json"], env=env, check=True, capture_output=True, timeout=120
        )
        assert [b["id"] for b in json.loads(listed.stdout)] == ["b1"]

        import aiokafka.errors
        import kafka.errors

        no_cert = KafkaSecurity("SASL_SSL", "SCRAM-SHA-256", USER, SecretStr(PASSWORD), cafile=cafile)
        with pytest.raises(kafka.errors.KafkaError):
            kafka_python_topics(bootstrap, no_cert, timeout_ms=4000)
        with pytest.raises(aiokafka.errors.KafkaError):
            asyncio.run(aiokafka_topics(bootstrap, no_cert))
        log = (broker.data_dir / "kafka" / "logs" / "server.log").read_text()
        assert "SSL handshake failed" in log  # refused by the broker at the TLS handshake
    finally:
        broker.remove()


def test_with_sasl_on_no_listener_is_left_unauthenticated(tls_broker):
    """The local port and the controller's take only the broker's own account: a client without
    credentials gets nothing there, with them it does; the account's secret is this user's only."""
    import kafka.errors

    broker, _ = tls_broker
    plain = KafkaSecurity("PLAINTEXT")
    for port in (broker.env["MS_KAFKA_PORT"], broker.env["MS_KAFKA_CONTROLLER_PORT"]):
        with pytest.raises(kafka.errors.KafkaError):
            kafka_python_topics(f"127.0.0.1:{port}", plain, timeout_ms=4000)
    secret = broker.data_dir / "kafka" / "admin.secret"
    assert secret.stat().st_mode & 0o777 == 0o600 and (broker.data_dir / "kafka").stat().st_mode & 0o777 == 0o700
    admin = KafkaSecurity("SASL_PLAINTEXT", "PLAIN", "meterstream-admin", SecretStr(secret.read_text().strip()))
    assert isinstance(kafka_python_topics(broker.bootstrap, admin), set)  # the broker's own account is let in


def test_a_producer_given_the_readme_acls_may_write_events_and_nothing_else(tls_broker):
    """The ACLs the Security section gives a producer, applied with the command it shows (on
    the local broker, `kafka.sh acls` takes kafka-acls.sh's arguments): the producer's account
    writes to the events topic, and is refused every other topic and reading the events."""
    import kafka.errors
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic

    broker, cafile = tls_broker
    events, other = "acl-events", "acl-sink"
    admin = KafkaAdminClient(bootstrap_servers=broker.sasl_ssl_bootstrap, **security(cafile).kafka_python())
    admin.create_topics([NewTopic(events, 1, 1), NewTopic(other, 1, 1)])
    admin.close()
    acls = subprocess.run(
        [
            "bash",
            str(KAFKA_SH),
            "acls",
            "--add",
            "--allow-principal",
            f"User:{PRODUCER}",
            "--operation",
            "Write",
            "--operation",
            "Describe",
            "--topic",
            events,
        ],
        env=broker.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert acls.returncode == 0, acls.stderr[-2000:]

    producer = KafkaProducer(
        bootstrap_servers=broker.sasl_ssl_bootstrap,
        acks="all",
        max_block_ms=10_000,
        **security(cafile, user=PRODUCER).kafka_python(),
    )
    try:
        assert producer.send(events, b'{"event_id": "x"}').get(timeout=30).offset == 0
        with pytest.raises(kafka.errors.KafkaError):  # TopicAuthorizationFailedError (or no metadata)
            producer.send(other, b"forged ledger row").get(timeout=30)
    finally:
        producer.close(timeout=10)
    consumer = KafkaConsumer(
        events,
        bootstrap_servers=broker.sasl_ssl_bootstrap,
        group_id="acl-reader",
        auto_offset_reset="earliest",
        consumer_timeout_ms=8000,
        **security(cafile, user=PRODUCER).kafka_python(),
    )
    try:
        with pytest.raises(kafka.errors.KafkaError):  # no Read on the topic, no group
            list(consumer)
    finally:
        consumer.close()
    # meterstream's own account still reads it all
    reader = KafkaConsumer(
        events,
        bootstrap_servers=broker.sasl_ssl_bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=8000,
        **security(cafile).kafka_python(),
    )
    try:
        assert [m.value for m in reader] == [b'{"event_id": "x"}']
    finally:
        reader.close()
