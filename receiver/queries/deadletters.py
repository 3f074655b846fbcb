"""Dead letters as an operator sees them (credentials masked) and redriving them through the pipeline.

Redriving runs a kept request through the pipeline again (no signature check: it was verified when it
arrived; provider dedupe skipped, as for an operator replay) with its source as configured *now*, so a
fixed configuration or a newer release can process it. On success the entry is removed; when it fails
again the pipeline keeps it anew with the new reason and the old entry is removed, so each request is
in the stream once. Used by ``callstream deadletter`` and by the console.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Mapping, Sequence
from typing import Any

from redis.asyncio import Redis

from receiver import deadletter
from receiver.deadletter import DeadLetter
from receiver.delivery import Delivery
from receiver.errors import ReceiverError, RedisUnavailable, http_error
from receiver.pipeline import Pipeline
from receiver.queries import is_entry_id
from receiver.settings import Settings, Source
from statemachine.keys import Keys

#: Header names (lower-case) whose values are credentials, and fragments that mark such names.
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
SECRET_NAME_PARTS = ("secret", "token", "password", "api-key", "apikey")
MASK = "***"
PAGE = 500

#: What a redrive can report for one entry, in the order summaries list them.
STATUSES = ("redriven", "failed", "kept", "missing")


def secret_values(source: Source | None) -> list[str]:
    return [secret.reveal() for secret in source.secrets] if source is not None else []


def masked_headers(headers: Mapping[str, str], secrets: Sequence[str]) -> dict[str, str]:
    """Headers with credential values replaced by ``***``: by name, or because the value holds a secret."""

    def sensitive(name: str, value: str) -> bool:
        lowered = name.lower()
        if lowered in SECRET_HEADERS or any(part in lowered for part in SECRET_NAME_PARTS):
            return True
        words = value.split()
        return any(hmac.compare_digest(word.encode(), secret.encode()) for word in words for secret in secrets)

    return {name: MASK if sensitive(name, value) else value for name, value in headers.items()}


def masked(letter: DeadLetter, settings: Settings) -> dict[str, Any]:
    """One dead letter as a document safe to show an operator: every credential in it masked."""
    source = settings.sources.get(letter.source)
    document = {**letter.as_dict(), "dead_lettered_at_ms": letter.dead_lettered_at_ms}
    document["headers"] = masked_headers(letter.headers, secret_values(source))
    return document


async def everything(redis: Redis, keys: Keys) -> list[DeadLetter]:
    """Every dead letter now in the stream (later arrivals wait for the next redrive)."""
    found: list[DeadLetter] = []
    start = "-"
    while True:
        page = await deadletter.entries(redis, keys, start, PAGE)
        found += page
        if len(page) < PAGE:
            return found
        start = "(" + page[-1].entry_id


async def redrive_one(pipeline: Pipeline, settings: Settings, letter: DeadLetter) -> dict[str, Any]:
    """Process one dead letter again; returns what happened (``status``: redriven, failed or kept).

    Raises `RedisUnavailable` (or the store's unavailability errors) when Redis cannot be reached.
    """
    report: dict[str, Any] = {"id": letter.entry_id, "source": letter.source}
    source = settings.sources.get(letter.source)
    if source is None:
        return {**report, "status": "kept", "reason": f"source {letter.source!r} is not configured"}
    delivery = Delivery(source, letter.body, letter.headers, letter.url, letter.received_at, letter.method)
    try:
        results = await pipeline.process(delivery, time.time(), replay=True, verified=True)
    except RedisUnavailable:
        raise
    except ReceiverError as err:
        _status, code = http_error(err)
        kept_as = err.details.get("deadletter_id")
        if kept_as is None:  # failed before the pipeline could keep it: keep the original
            return {**report, "status": "kept", "code": code, "reason": err.message}
        await deadletter.remove(pipeline.redis, pipeline.store.keys, letter.entry_id)
        return {**report, "status": "failed", "code": code, "reason": err.message, "kept_as": kept_as}
    await deadletter.remove(pipeline.redis, pipeline.store.keys, letter.entry_id)
    return {**report, "status": "redriven", "results": results}


async def redrive(
    pipeline: Pipeline, settings: Settings, entry_ids: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """Redrive the named dead letters (``None``: every one); one report per entry, missing ids included."""
    redis, keys = pipeline.redis, pipeline.store.keys
    reports: list[dict[str, Any]] = []  # missing ids first, then each redriven entry in order
    letters: list[DeadLetter] = []
    if entry_ids is None:
        letters = await everything(redis, keys)
    else:
        for entry_id in entry_ids:
            letter = await deadletter.entry(redis, keys, entry_id) if is_entry_id(entry_id) else None
            if letter is None:
                reports.append({"id": entry_id, "status": "missing"})
            else:
                letters.append(letter)
    for letter in letters:
        reports.append(await redrive_one(pipeline, settings, letter))
    return reports


def counts(reports: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """How many reports have each status, every status listed."""
    return {status: sum(report["status"] == status for report in reports) for status in STATUSES}
