"""Kafka client security: the one place that turns the MS_KAFKA_SECURITY_PROTOCOL, MS_KAFKA_SASL_*
and MS_KAFKA_SSL_* settings into each client library's arguments.

Every Kafka client of meterstream (the Faust app, the sink, budgets, alert delivery, the producer,
topic creation, the test harness) is built with ``**security.aiokafka()``,
``**security.kafka_python()`` or ``**security.faust()``. The password stays a ``SecretStr`` (its
repr is masked) and is revealed only inside those calls, when the client is constructed."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

BOOTSTRAP_TIMEOUT_MS = 5000  # how long a kafka-python client waits for a first broker

if TYPE_CHECKING:
    from streams.settings import Settings


@dataclass(frozen=True)
class KafkaSecurity:
    protocol: str = "PLAINTEXT"  # PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL (checked by Settings)
    mechanism: str = "PLAIN"  # PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
    username: str | None = None
    password: SecretStr | None = None
    cafile: Path | None = None
    certfile: Path | None = None
    keyfile: Path | None = None

    @classmethod
    def from_settings(cls, s: Settings) -> KafkaSecurity:
        return cls(
            s.kafka_security_protocol,
            s.kafka_sasl_mechanism,
            s.kafka_sasl_username,
            s.kafka_sasl_password,
            s.kafka_ssl_cafile,
            s.kafka_ssl_certfile,
            s.kafka_ssl_keyfile,
        )

    @property
    def sasl(self) -> bool:
        return self.protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    def _password(self) -> str | None:
        return self.password.get_secret_value() if self.password is not None else None

    def ssl_context(self) -> ssl.SSLContext | None:
        """A client TLS context (server certificate and host name verified), or None without TLS."""
        if not self.tls:
            return None
        from aiokafka.helpers import create_ssl_context

        return create_ssl_context(cafile=_str(self.cafile), certfile=_str(self.certfile), keyfile=_str(self.keyfile))

    def aiokafka(self) -> dict[str, Any]:
        """Arguments for AIOKafkaProducer / AIOKafkaConsumer / AIOKafkaAdminClient."""
        kw: dict[str, Any] = {"security_protocol": self.protocol}
        if self.tls:
            kw["ssl_context"] = self.ssl_context()
        if self.sasl:
            kw.update(
                sasl_mechanism=self.mechanism, sasl_plain_username=self.username, sasl_plain_password=self._password()
            )
        return kw

    def kafka_python(self, bootstrap_timeout_ms: int = BOOTSTRAP_TIMEOUT_MS) -> dict[str, Any]:
        """Arguments for kafka-python's KafkaProducer / KafkaConsumer / KafkaAdminClient: a broker
        that cannot be reached is said within `bootstrap_timeout_ms` (kafka-python waits 30 s)."""
        kw: dict[str, Any] = {"security_protocol": self.protocol, "bootstrap_timeout_ms": bootstrap_timeout_ms}
        if self.tls:
            kw.update(
                ssl_check_hostname=True,
                ssl_cafile=_str(self.cafile),
                ssl_certfile=_str(self.certfile),
                ssl_keyfile=_str(self.keyfile),
            )
        if self.sasl:
            kw.update(
                sasl_mechanism=self.mechanism, sasl_plain_username=self.username, sasl_plain_password=self._password()
            )
        return kw

    def faust(self) -> dict[str, Any]:
        """Arguments for faust.App: ``broker_credentials`` (none for PLAINTEXT)."""
        import faust

        if self.sasl:
            return {
                "broker_credentials": faust.SASLCredentials(
                    username=self.username,
                    password=self._password(),
                    mechanism=self.mechanism,
                    ssl_context=self.ssl_context(),
                )
            }  # with a context: SASL_SSL, else SASL_PLAINTEXT
        if self.tls:
            return {"broker_credentials": faust.SSLCredentials(self.ssl_context())}
        return {}

    def env(self) -> dict[str, str]:
        """The same settings as MS_* environment variables, for a meterstream subprocess."""
        out = {"MS_KAFKA_SECURITY_PROTOCOL": self.protocol, "MS_KAFKA_SASL_MECHANISM": self.mechanism}
        for name, value in (
            ("SASL_USERNAME", self.username),
            ("SASL_PASSWORD", self._password()),
            ("SSL_CAFILE", _str(self.cafile)),
            ("SSL_CERTFILE", _str(self.certfile)),
            ("SSL_KEYFILE", _str(self.keyfile)),
        ):
            if value is not None:
                out[f"MS_KAFKA_{name}"] = value
        return out


PLAINTEXT = KafkaSecurity()


def kafka_security(settings: Settings) -> KafkaSecurity:
    return KafkaSecurity.from_settings(settings)


def _str(p: Path | None) -> str | None:
    return str(p) if p is not None else None
