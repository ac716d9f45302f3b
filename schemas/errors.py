"""meterstream's errors: one tree, so that a caller can tell an expected failure (bad input, a
wrong setting, a dependency away) from a bug with one ``except MeterstreamError``, and catch
one kind of failure by its branch. The command line (streams/cli/main.py) ends a command that
raises any of them with its message on one line (``--debug``: the traceback).

Every class keeps its own name in the module that raises it; their bases are these::

    MeterstreamError
    ├── InputRejected: bad input, refused; the message is the reason
    │   ├── InvalidEvent          not a valid billing_event v1 (schemas/validate.py)
    │   ├── BatchTooLarge         a batch record over the limits (schemas/batch.py)
    │   ├── ConversionError       a provider payload not converted exactly (adapters/base.py)
    │   ├── PricingError          an event that cannot be priced (pricing/errors.py)
    │   ├── CatalogRefused        a catalog record a rater refuses (streams/rating/catalogs.py)
    │   ├── RefusedSQL            an analyst's query not run (streams/analyst/sql_guard.py)
    │   ├── ReadError             an unknown read or bad parameters (streams/analyst/reads.py)
    │   ├── RerateError           a re-rate not done (streams/fixes/rerate.py)
    │   ├── BudgetError           a budget refused (streams/alerts/budgets.py)
    │   ├── AnalystRefused        an analyst's read refused for what it asked (streams/analyst/reader.py)
    │   ├── BadIds                ids of an ingest request (streams/ingest/ids.py)
    │   ├── BadBody               an ingest request's body (streams/ingest/body.py)
    │   │   └── TooMany           more items than one request takes
    │   └── Refused               an HTTP request answered with a status and a reason (streams/http_guard.py)
    ├── ConfigurationError: a setting or a file is wrong; the message names it (never its secret)
    │   ├── WebhookConfigError    MS_ALERT_WEBHOOKS / _SECRET (streams/webhook_targets.py)
    │   ├── TokenMissing          no web token or catalog key (streams/web_token.py)
    │   ├── TokenFileError        the ingest's tokens file (streams/ingest/tokens.py)
    │   ├── CatalogError          a catalog directory that does not load (pricing/errors.py)
    │   └── VocabularyError       a tokenizer vocabulary missing or altered (pricing/tokenizer.py)
    └── Unavailable: a dependency is away or failed (Kafka, ClickHouse, a worker, a port)
        ├── StoreError            a ClickHouse statement failed (streams/storage/base.py)
        │   └── StoreClosed       the store was handed over while a statement waited
        ├── ServiceError          the local broker did not start or stop (streams/services.py)
        ├── ProduceError          events Kafka did not acknowledge (streams/producer.py)
        ├── Unavailable           the ingest's: Kafka did not acknowledge a request (streams/ingest/writer.py)
        └── AnalystError          no worker answers an analyst's read (streams/analyst/reader.py)

A class that callers also catch as ``ValueError`` or ``RuntimeError`` keeps that as its second
base (none is caught so today: each by its own name or a branch of this tree). ``WebhookConfigError`` is never a
``ValueError``: pydantic would wrap one raised in a validator and print the input (the secret URLs)
beside it. This module imports nothing: every layer may raise these."""

from __future__ import annotations

__all__ = ["ConfigurationError", "InputRejected", "MeterstreamError", "Unavailable"]


class MeterstreamError(Exception):
    """Every failure meterstream expects and can say in one line (its message)."""


class InputRejected(MeterstreamError):
    """Input refused: an event, a payload, a request, a query, a budget. The message is the reason."""


class ConfigurationError(MeterstreamError):
    """A setting (MS_*) or a file it names is wrong or missing; the message says which."""


class Unavailable(MeterstreamError):
    """A dependency is away or failed: Kafka, ClickHouse, a worker, a port."""
