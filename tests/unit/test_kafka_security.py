"""The Kafka security settings and what each client library is given (the real connections are
in tests/integration/test_kafka_security.py)."""

from __future__ import annotations

import ssl
import subprocess
import sys

import faust
import pytest
from pydantic import ValidationError

from streams.kafka_security import PLAINTEXT, kafka_security
from streams.settings import Settings

SECRET = "hunter2-not-in-any-repr"


@pytest.fixture
def cafile(tmp_path):
    """A real CA certificate (PEM) for ssl contexts to load: the system's first one is not
    guaranteed, so make one with keytool (Java 17, as the broker needs)."""
    subprocess.run(
        [
            "keytool",
            "-genkeypair",
            "-alias",
            "ca",
            "-keyalg",
            "EC",
            "-groupname",
            "secp256r1",
            "-dname",
            "CN=unit-ca",
            "-ext",
            "bc:c",
            "-validity",
            "1",
            "-keystore",
            str(tmp_path / "ca.p12"),
            "-storetype",
            "PKCS12",
            "-storepass",
            "changeit",
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            "keytool",
            "-exportcert",
            "-rfc",
            "-alias",
            "ca",
            "-keystore",
            str(tmp_path / "ca.p12"),
            "-storepass",
            "changeit",
            "-file",
            str(tmp_path / "ca.pem"),
        ],
        check=True,
        capture_output=True,
    )
    return tmp_path / "ca.pem"


def sasl_ssl(cafile, mechanism: str = "SCRAM-SHA-512") -> Settings:
    return Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism=mechanism,
        kafka_sasl_username="meter",
        kafka_sasl_password=SECRET,
        kafka_ssl_cafile=cafile,
    )


def test_default_is_plaintext_and_changes_nothing():
    s = Settings()
    assert s.kafka_security_protocol == "PLAINTEXT"
    sec = kafka_security(s)
    assert sec == PLAINTEXT
    assert sec.aiokafka() == {"security_protocol": "PLAINTEXT"}
    assert sec.kafka_python() == {"security_protocol": "PLAINTEXT", "bootstrap_timeout_ms": 5000}
    assert sec.faust() == {}


@pytest.mark.parametrize("value", ["TLS", "SASL", "ssl/plain", ""])
def test_unknown_protocol_is_a_clear_error(value):
    with pytest.raises(ValidationError, match="Input should be 'PLAINTEXT', 'SSL', 'SASL_PLAINTEXT' or 'SASL_SSL'"):
        Settings(kafka_security_protocol=value)


def test_unknown_mechanism_is_a_clear_error():
    with pytest.raises(ValidationError, match="'PLAIN', 'SCRAM-SHA-256' or 'SCRAM-SHA-512'"):
        Settings(
            kafka_security_protocol="SASL_SSL",
            kafka_sasl_mechanism="GSSAPI",
            kafka_sasl_username="u",
            kafka_sasl_password="p",
        )


def test_protocol_and_mechanism_are_case_insensitive(monkeypatch):
    monkeypatch.setenv("MS_KAFKA_SECURITY_PROTOCOL", "sasl_plaintext")
    monkeypatch.setenv("MS_KAFKA_SASL_MECHANISM", "scram-sha-256")
    monkeypatch.setenv("MS_KAFKA_SASL_USERNAME", "meter")
    monkeypatch.setenv("MS_KAFKA_SASL_PASSWORD", SECRET)
    s = Settings()
    assert (s.kafka_security_protocol, s.kafka_sasl_mechanism) == ("SASL_PLAINTEXT", "SCRAM-SHA-256")


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"kafka_security_protocol": "SASL_SSL"}, "needs MS_KAFKA_SASL_USERNAME and MS_KAFKA_SASL_PASSWORD"),
        ({"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_username": "u"}, "needs MS_KAFKA_SASL_USERNAME"),
        ({"kafka_sasl_password": SECRET}, "sends no credentials"),
        (
            {"kafka_security_protocol": "SSL", "kafka_sasl_username": "u", "kafka_sasl_password": SECRET},
            "sends no credentials",
        ),
    ],
)
def test_inconsistent_settings_are_refused_without_echoing_secrets(kw, message):
    with pytest.raises(ValidationError, match=message) as info:
        Settings(**kw)
    assert SECRET not in str(info.value) and SECRET not in repr(info.value)


def test_tls_files_need_a_tls_protocol_and_must_exist(cafile, tmp_path):
    with pytest.raises(ValidationError, match="does not use TLS"):
        Settings(kafka_ssl_cafile=cafile)
    with pytest.raises(ValidationError, match="kafka_ssl_cafile"):
        Settings(kafka_security_protocol="SSL", kafka_ssl_cafile=tmp_path / "missing.pem")
    with pytest.raises(ValidationError, match="KEYFILE needs MS_KAFKA_SSL_CERTFILE"):
        Settings(kafka_security_protocol="SSL", kafka_ssl_keyfile=cafile)


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_ssl_arguments_for_each_library(cafile, mechanism):
    sec = kafka_security(sasl_ssl(cafile, mechanism))
    aio = sec.aiokafka()
    assert aio["security_protocol"] == "SASL_SSL" and aio["sasl_mechanism"] == mechanism
    assert (aio["sasl_plain_username"], aio["sasl_plain_password"]) == ("meter", SECRET)
    ctx = aio["ssl_context"]
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname  # the broker is verified
    assert any(c["subject"] == ((("commonName", "unit-ca"),),) for c in ctx.get_ca_certs())

    kp = sec.kafka_python()
    assert kp == {
        "security_protocol": "SASL_SSL",
        "bootstrap_timeout_ms": 5000,
        "ssl_check_hostname": True,
        "ssl_cafile": str(cafile),
        "ssl_certfile": None,
        "ssl_keyfile": None,
        "sasl_mechanism": mechanism,
        "sasl_plain_username": "meter",
        "sasl_plain_password": SECRET,
    }

    creds = sec.faust()["broker_credentials"]
    assert isinstance(creds, faust.SASLCredentials)
    assert creds.protocol.value == "SASL_SSL" and creds.mechanism.value == mechanism
    assert (creds.username, creds.password) == ("meter", SECRET)
    assert isinstance(creds.ssl_context, ssl.SSLContext)


def test_faust_app_gets_the_credentials(cafile, tmp_path):
    """create_app hands them to Faust, whose aiokafka driver turns them into client arguments."""
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    from streams.app import create_app

    s = sasl_ssl(cafile).model_copy(update={"data_dir": tmp_path})
    app = create_app(s)
    auth = credentials_to_aiokafka_auth(app.conf.broker_credentials, app.conf.ssl_context)
    assert auth["security_protocol"] == "SASL_SSL" and auth["sasl_mechanism"] == "SCRAM-SHA-512"
    assert auth["sasl_plain_password"] == SECRET and isinstance(auth["ssl_context"], ssl.SSLContext)
    assert app.meterstream_sink.security == kafka_security(s)  # the sink and its alert clients too


def test_ssl_only_and_sasl_plaintext(cafile):
    ssl_only = kafka_security(Settings(kafka_security_protocol="SSL", kafka_ssl_cafile=cafile))
    assert set(ssl_only.aiokafka()) == {"security_protocol", "ssl_context"}
    assert isinstance(ssl_only.faust()["broker_credentials"], faust.SSLCredentials)
    assert "sasl_mechanism" not in ssl_only.kafka_python()
    plain = kafka_security(
        Settings(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_username="u", kafka_sasl_password=SECRET)
    )
    assert "ssl_context" not in plain.aiokafka() and "ssl_cafile" not in plain.kafka_python()
    creds = plain.faust()["broker_credentials"]
    assert creds.protocol.value == "SASL_PLAINTEXT" and creds.ssl_context is None


def test_secrets_never_in_reprs_or_dumps(cafile):
    s = sasl_ssl(cafile)
    sec = kafka_security(s)
    for text in (repr(s), str(s), repr(sec), str(sec), s.model_dump_json(), repr(sec.faust()["broker_credentials"])):
        assert SECRET not in text
    assert s.kafka_sasl_password.get_secret_value() == SECRET


def test_env_round_trips_for_subprocesses(cafile, monkeypatch):
    sec = kafka_security(sasl_ssl(cafile))
    for k, v in sec.env().items():
        monkeypatch.setenv(k, v)
    assert kafka_security(Settings()) == sec


def test_local_broker_bootstrap_follows_the_sasl_ssl_listener(cafile):
    s = sasl_ssl(cafile).model_copy(update={"kafka_port": 19092, "kafka_sasl_ssl_port": 19094})
    assert s.bootstrap == "127.0.0.1:19094"
    assert s.service_env()["MS_KAFKA_SASL_SSL_PORT"] == "19094"
    assert Settings(kafka_port=19092, kafka_sasl_ssl_port=19094).bootstrap == "127.0.0.1:19092"  # PLAINTEXT
    assert s.model_copy(update={"kafka_bootstrap": "kafka:9094"}).bootstrap == "kafka:9094"


def test_cli_reports_bad_settings_by_name_without_values(monkeypatch):
    env = {"MS_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT", "MS_KAFKA_SASL_USERNAME": "u", "MS_KAFKA_SASL_PASSWORD": SECRET}
    import os

    proc = subprocess.run(
        [sys.executable, "-m", "streams.cli", "status"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "invalid settings" in proc.stderr and "sends no credentials" in proc.stderr
    assert SECRET not in proc.stderr + proc.stdout
    proc = subprocess.run(
        [sys.executable, "-m", "streams.cli", "status"],
        env={**os.environ, "MS_KAFKA_SECURITY_PROTOCOL": "TLS"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "MS_KAFKA_SECURITY_PROTOCOL: Input should be" in proc.stderr
