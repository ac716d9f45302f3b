"""Anthropic Messages (``type: "message"``). Shapes: anthropic-sdk-python
``src/anthropic/types/usage.py``, ``types/beta/beta_usage.py`` and the iteration types it names
(``beta_message_iteration_usage.py``, ``beta_compaction_iteration_usage.py``,
``beta_advisor_message_iteration_usage.py``, ``beta_fallback_message_iteration_usage.py``,
``beta_fallback_credit_usage.py``); docs/events-and-adapters.md has the table with the pages.

``usage``:
  input_tokens                   input AFTER the last cache breakpoint: EXCLUDES cache -> input_tokens
  cache_read_input_tokens        cache reads                                           -> cached_input_tokens
  cache_creation_input_tokens    cache writes (all TTLs)
  cache_creation.ephemeral_5m_input_tokens / ephemeral_1h_input_tokens: the split of the writes
                                 by TTL (must add up): 5-minute -> cache_write_tokens, 1-hour ->
                                 cache_write_1h_tokens (billing_event 1.1). No split: every write
                                 is a 5-minute one (the API added the split and the 1-hour TTL
                                 together, SDK commit 2411906a)
  output_tokens                  output (thinking included)                            -> output_tokens
  output_tokens_details.thinking_tokens  of output_tokens, approximate: checked, not kept
  service_tier                   standard -> realtime; batch -> mode batch (the catalog's batch
                                 factor); priority -> refused (priced by commitment, not the list)
  speed                          standard; fast -> refused (priced at a multiple the catalog lacks)
  inference_geo                  global (or absent): the list price; us -> inference_geo us (1.1:
                                 US-only inference, x1.1 where the catalog prices it); another
                                 (such as not_available, which the page does not document) -> refused
  server_tool_use                web_search_requests -> server_tool_requests.web_search (1.1: per
                                 search; with iterations, on the first event); web_fetch_requests:
                                 tokens only, checked
  iterations                     (beta: compaction, advisor, server-side fallback) the per-sampling
                                 record of what is billed; the top level leaves compaction out.
                                 Each ``message`` or ``compaction`` iteration is its own event
                                 (long-context tiers are judged per iteration), event_id
                                 ``<id>:<index>``; an iteration naming another model, an
                                 ``advisor_message`` (the advisor's tier is not stated) or a
                                 ``fallback_message`` (a declined attempt without output is free)
                                 -> refused
  fallback_credit                status redeemed or not_applied: the reprice is in the counts
                                 themselves (fewer writes, as many more reads); another -> refused
``container`` (the code execution tool ran: billed per container-hour) -> refused.
Any other value of these, or another field in ``usage``, is refused too: a price the catalog does
not state is never assumed. event_id = ``id``, model = ``model``; a Message carries no time:
``ts`` is an option."""

from __future__ import annotations

import dataclasses
from typing import Any

from adapters.base import ConversionError, Ids, allowed, count, derived_id, event, known, obj
from schemas.validate import quoted

TIERS = {None: "realtime", "standard": "realtime", "batch": "batch"}
GEOS = {None: None, "global": None, "us": "us"}  # usage.inference_geo -> the event's inference_geo
USAGE = {
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "cache_creation",
    "output_tokens_details",
    "service_tier",
    "speed",
    "inference_geo",
    "server_tool_use",
    "iterations",
    "fallback_credit",
}
ITERATION = {
    "type",
    "model",
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "cache_creation",
}
SPLIT = {"ephemeral_5m_input_tokens", "ephemeral_1h_input_tokens"}
SERVER_TOOLS = {"web_search_requests", "web_fetch_requests"}
FALLBACK_CREDIT = {"redeemed", "not_applied"}


def _priced_as_listed(u: dict[str, Any], ids: Ids) -> tuple[Ids, str | None, int]:
    """The ids with the mode the usage's service tier names, the event's inference_geo and the
    web searches; ConversionError for a tier, speed or inference region not on the allow-list."""
    tier = u.get("service_tier")
    allowed(
        tier,
        TIERS,
        "service_tier",
        "only standard and batch are priced by the catalog (Priority Tier is priced by commitment)",
    )
    mode = TIERS[tier]
    if tier is not None and ids.mode != "realtime" and ids.mode != mode:
        raise ConversionError(f"mode {ids.mode} was given, but the message's service_tier is {tier}")
    allowed(
        u.get("speed"),
        (None, "standard"),
        "speed",
        "fast mode is priced at a multiple the catalog does not state",
    )
    allowed(
        u.get("inference_geo"),
        GEOS,
        "inference_geo",
        "only global and US-only (us) inference are documented with a price "
        "(https://platform.claude.com/docs/en/build-with-claude/data-residency)",
    )
    tools = obj(u, "server_tool_use", "usage")
    known(tools, SERVER_TOOLS, "usage.server_tool_use")
    searches = count(tools, "web_search_requests", "usage.server_tool_use")
    count(tools, "web_fetch_requests", "usage.server_tool_use")  # checked; web fetch costs its tokens only
    credit = obj(u, "fallback_credit", "usage")
    if u.get("fallback_credit") is not None:  # present: its status is required (BetaFallbackCreditUsage)
        known(credit, {"status"}, "usage.fallback_credit")
        status = obj(credit, "status", "usage.fallback_credit")
        allowed(
            status.get("type"),
            FALLBACK_CREDIT,
            "usage.fallback_credit.status.type",
            "a fallback-credit outcome whose effect on the counts is not documented",
        )
    ids = dataclasses.replace(ids, mode=mode) if tier is not None and ids.mode == "realtime" else ids
    return ids, GEOS[u.get("inference_geo")], searches


def _buckets(u: dict[str, Any], where: str) -> dict[str, int]:
    """One sampling's counts (the top level, or one iteration) as billing_event v1 buckets."""
    writes = count(u, "cache_creation_input_tokens", where)
    split = obj(u, "cache_creation", where)
    if split:
        known(split, SPLIT, f"{where}.cache_creation")
        five, hour = (
            count(split, "ephemeral_5m_input_tokens", f"{where}.cache_creation"),
            count(split, "ephemeral_1h_input_tokens", f"{where}.cache_creation"),
        )
        if five + hour != writes:
            raise ConversionError(
                f"{where}.cache_creation splits into {five} + {hour} tokens, not the "
                f"cache_creation_input_tokens {writes}"
            )
    else:
        five, hour = writes, 0
    return {
        "input_tokens": count(u, "input_tokens", where, default=None),
        "cached_input_tokens": count(u, "cache_read_input_tokens", where),
        "cache_write_tokens": five,
        "cache_write_1h_tokens": hour,
        "output_tokens": count(u, "output_tokens", where, default=None),
    }


def _iterations(its: list[Any], model: Any, top_output: int) -> list[tuple[int, dict[str, int]]]:
    """The billable iterations (index, buckets): each a sampling billed on its own at the
    message's model. The top-level output is the sum of the ``message`` iterations' (the
    compaction and advisor pages agree on it): a payload where it is not is refused."""
    out, message_output = [], 0
    for i, it in enumerate(its):
        where = f"usage.iterations[{i}]"
        if not isinstance(it, dict):
            raise ConversionError(f"{where} is not an object")
        kind = it.get("type")
        if kind == "advisor_message":
            raise ConversionError(
                f"{where} is an advisor_message (model {quoted(it.get('model'))}): billed at the advisor "
                "model's rates under a service tier the message does not state (Priority Tier applies to "
                "each model apart); billing_event v1 gives one tier to a payload"
            )
        if kind == "fallback_message":
            raise ConversionError(
                f"{where} is a fallback_message (model {quoted(it.get('model'))}): a server-side fallback "
                "bills each attempt at its own model's rates, and a declined attempt without output costs "
                "nothing, which its counts do not say"
            )
        allowed(kind, ("message", "compaction"), f"{where}.type", "an iteration whose billing is not documented")
        known(it, ITERATION, where)
        if it.get("model") is not None and it.get("model") != model:
            raise ConversionError(
                f"{where} names the model {quoted(it.get('model'))}, not the message's {quoted(model)}: "
                "each model bills at its own rates"
            )
        buckets = _buckets(it, where)
        if kind == "message":
            message_output += buckets["output_tokens"]
        if any(buckets.values()):
            out.append((i, buckets))
    if message_output != top_output:
        raise ConversionError(
            f"usage.output_tokens ({top_output}) is not the sum of the message iterations' "
            f"output_tokens ({message_output}): the counts do not add up"
        )
    return out


def convert(payload: dict[str, Any], ids: Ids) -> list[dict[str, Any]]:
    if payload.get("type") != "message":
        raise ConversionError(f"not an Anthropic message (type: {quoted(payload.get('type'))})")
    u = obj(payload, "usage", "message")
    if not u:
        raise ConversionError("the message has no usage")
    known(u, USAGE, "usage")
    if payload.get("container") is not None:
        raise ConversionError(
            "the message ran in a code execution container: billed per container-hour, "
            "which billing_event v1 has no dimension for"
        )
    ids, geo, searches = _priced_as_listed(u, ids)
    usage = _buckets(u, "usage")
    details = obj(u, "output_tokens_details", "usage")
    known(details, {"thinking_tokens"}, "usage.output_tokens_details")
    if count(details, "thinking_tokens", "usage.output_tokens_details") > usage["output_tokens"]:
        raise ConversionError("usage.output_tokens_details.thinking_tokens exceed output_tokens, which include them")
    model, event_id = payload.get("model"), payload.get("id")
    tools = {"server_tool_requests": {"web_search": searches}} if searches else {}
    its = u.get("iterations")
    if its is None or its == []:  # no breakdown: the top level is the whole bill
        return [event("anthropic", model, usage | tools, ids, event_id=event_id, ts=None, inference_geo=geo)]
    if not isinstance(its, list):
        raise ConversionError("usage.iterations is not an array")
    billed = _iterations(its, model or ids.model, usage["output_tokens"])
    if len(its) == 1 and billed:
        return [event("anthropic", model, billed[0][1] | tools, ids, event_id=event_id, ts=None, inference_geo=geo)]
    if not billed:
        raise ConversionError("the payload reports no tokens")
    # the message's web searches are counted once, on its first event (the top level states them)
    return [
        event(
            "anthropic",
            model,
            buckets | (tools if n == 0 else {}),
            derived_id(ids, event_id, f":{i}"),
            event_id=None,
            ts=None,
            inference_geo=geo,
        )
        for n, (i, buckets) in enumerate(billed)
    ]
