"""Budgets: spend limits per scope and period, kept in a compacted Kafka topic so every worker
sees changes live (`meterstream budgets set|list|delete`, or a YAML file of them)."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from schemas.errors import InputRejected
from streams.kafka_security import PLAINTEXT, KafkaSecurity

# ISO 4217 codes meterstream accepts for budgets (the catalogs' currencies and the common ones)
CURRENCIES = frozenset(
    "USD EUR CNY JPY GBP CHF CAD AUD HKD SGD KRW INR BRL MXN SEK NOK DKK PLN CZK "
    "HUF TRY ZAR NZD TWD THB VND IDR MYR PHP ILS AED SAR RUB UAH".split()
)
DEFAULT_THRESHOLDS = (Decimal("0.5"), Decimal("0.8"), Decimal("1"))


class BudgetError(InputRejected):
    pass


class Budget(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")
    tenant_id: str = Field(min_length=1, max_length=256)
    user_id: str | None = None
    model: str | None = None
    # label values the budget is limited to (chargeback: {"team": "search"}); every one must match
    labels: dict[Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:/-]{1,64}$")], str] = Field(
        default_factory=dict, max_length=4
    )
    period: Literal["day", "month"]
    timezone: str = "UTC"
    currency: str
    amount: Decimal
    thresholds: tuple[Decimal, ...] = DEFAULT_THRESHOLDS

    @field_validator("amount", mode="before")
    @classmethod
    def _amount(cls, v: object) -> Decimal:
        if isinstance(v, float):
            raise ValueError("amount must be a decimal string or an integer, not a float")
        d = Decimal(str(v))
        if not d.is_finite() or d <= 0:
            raise ValueError("amount must be a positive decimal")
        return d

    @field_validator("currency")
    @classmethod
    def _currency(cls, v: str) -> str:
        if v not in CURRENCIES:
            raise ValueError(f"unknown currency {v!r} (ISO 4217 code expected)")
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}") from None
        return v

    @field_validator("thresholds", mode="before")
    @classmethod
    def _thresholds(cls, v: object) -> tuple[Decimal, ...]:
        if not isinstance(v, (list, tuple)) or not v:
            raise ValueError("thresholds must be a non-empty list")
        out = []
        for t in v:
            if isinstance(t, float):
                t = repr(t)
            d = Decimal(str(t))
            if not d.is_finite() or not (0 < d <= 10):
                raise ValueError(f"threshold {t} is outside (0, 10]")
            out.append(d)
        return tuple(sorted(set(out)))

    @model_validator(mode="after")
    def _scope(self) -> Budget:
        if re.search(r"\s", self.tenant_id):
            raise ValueError("tenant_id must not contain spaces")
        return self

    def matches(
        self, tenant_id: str, user_id: str, model: str, currency: str, labels: dict[str, str] | None = None
    ) -> bool:
        return (
            tenant_id == self.tenant_id
            and currency == self.currency
            and (self.user_id is None or self.user_id == user_id)
            and (self.model is None or self.model == model)
            and all((labels or {}).get(k) == v for k, v in self.labels.items())
        )

    def period_of(self, ts: dt.datetime) -> str:
        local = ts.astimezone(ZoneInfo(self.timezone))
        return f"{local:%Y-%m-%d}" if self.period == "day" else f"{local:%Y-%m}"

    def period_range(self, period: str) -> tuple[dt.datetime, dt.datetime]:
        """[start, end) of a period, in UTC."""
        tz = ZoneInfo(self.timezone)
        if self.period == "day":
            start = dt.datetime.strptime(period, "%Y-%m-%d").replace(tzinfo=tz)
            end = (start + dt.timedelta(days=1)).replace(tzinfo=tz)
            end = dt.datetime(end.year, end.month, end.day, tzinfo=tz)
        else:
            start = dt.datetime.strptime(period, "%Y-%m").replace(tzinfo=tz)
            end = dt.datetime(start.year + (start.month == 12), start.month % 12 + 1, 1, tzinfo=tz)
        return start.astimezone(dt.UTC), end.astimezone(dt.UTC)

    def scope_text(self) -> str:
        parts = [f"tenant {self.tenant_id}"]
        if self.user_id:
            parts.append(f"user {self.user_id}")
        if self.model:
            parts.append(f"model {self.model}")
        parts.extend(f"label {k}={v}" for k, v in sorted(self.labels.items()))
        return ", ".join(parts)


def parse_budget(doc: dict) -> Budget:
    from pydantic import ValidationError

    try:
        return Budget.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise BudgetError(
            f"budget {doc.get('id')!r}: {loc + ': ' if loc else ''}{err['msg'].removeprefix('Value error, ')}"
        ) from None


class BudgetTopic:
    """The compacted topic of budgets: key = budget id, value = JSON, tombstone = deleted."""

    def __init__(self, bootstrap: str, topic: str, security: KafkaSecurity = PLAINTEXT) -> None:
        self.bootstrap = bootstrap
        self.security = security
        self.topic = topic

    def ensure(self) -> None:
        from kafka.admin import KafkaAdminClient, NewTopic
        from kafka.errors import TopicAlreadyExistsError

        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, **self.security.kafka_python())
        try:
            if self.topic not in admin.list_topics():
                admin.create_topics([NewTopic(self.topic, 1, 1, topic_configs={"cleanup.policy": "compact"})])
        except TopicAlreadyExistsError:
            pass
        finally:
            admin.close()

    def put(self, budgets: list[Budget]) -> None:
        from kafka import KafkaProducer

        self.ensure()
        p = KafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True, **self.security.kafka_python()
        )
        for b in budgets:
            p.send(self.topic, key=b.id.encode(), value=b.model_dump_json().encode())
        p.flush()
        p.close()

    def delete(self, budget_id: str) -> None:
        from kafka import KafkaProducer

        self.ensure()
        p = KafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True, **self.security.kafka_python()
        )
        p.send(self.topic, key=budget_id.encode(), value=None)
        p.flush()
        p.close()

    def read_all(self) -> dict[str, Budget]:
        from kafka import KafkaConsumer, TopicPartition

        self.ensure()
        c = KafkaConsumer(
            bootstrap_servers=self.bootstrap, enable_auto_commit=False, group_id=None, **self.security.kafka_python()
        )
        tp = TopicPartition(self.topic, 0)
        c.assign([tp])
        c.seek_to_beginning(tp)
        end = c.end_offsets([tp])[tp]
        out: dict[str, Budget] = {}
        while c.position(tp) < end:
            for msgs in c.poll(timeout_ms=1000).values():
                for m in msgs:
                    key = m.key.decode()
                    if m.value is None:
                        out.pop(key, None)
                    else:
                        out[key] = Budget.model_validate_json(m.value)
        c.close()
        return out
