"""Dead letters as an operator sees them (credentials masked) and redriving them through the pipeline.

Redriving runs a kept request through the pipeline again with its source as configured *now*, so a fixed
configuration or a newer release can process it (provider dedupe skipped, as for an operator replay). Its
signature is not checked again: the entry's signature values are masked, and it was authenticated when
it arrived (its nonces were spent then). So redrive runs only what was authenticated: an entry whose
authentication was recorded as checked, or one received while its source did not verify and whose
source still does not; never an entry kept without that record (an older release) or a truncated one.
On success the entry is removed; when it fails again the
pipeline keeps it anew with the new reason and the old entry is removed, so each request is in the
stream once. Used by ``callstream deadletter`` and by the console.
"""

from __future__ import annotations

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
from receiver.signatures.common import Verified, secrets_of
from statemachine.keys import Keys

PAGE = 500

#: What a redrive can report for one entry, in the order summaries list them.
STATUSES = ("redriven", "failed", "kept", "missing")


def secret_values(source: Source | None, settings: Settings) -> list[str]:
    """Values no output may show: the source's secrets and the operator token."""
    values = secrets_of(source.secrets) if source is not None else []
    if settings.operator_token is not None:
        values.append(settings.operator_token.reveal())
    return values


def masked(letter: DeadLetter, settings: Settings) -> dict[str, Any]:
    """One dead letter as a document safe to show an operator: every credential in it masked (entries are
    stored masked; this also covers entries kept by older releases and secrets configured since)."""
    secrets = secret_values(settings.sources.get(letter.source), settings)
    document = {**letter.as_dict(), "dead_lettered_at_ms": letter.dead_lettered_at_ms}
    document["headers"] = deadletter.masked_headers(letter.headers, secrets)
    document["url"] = deadletter.masked_url(letter.url)
    return document


async def find(redis: Redis, keys: Keys, entry_id: str) -> DeadLetter | None:
    """The dead letter ``entry_id`` names; None when there is none, or when the text is no entry id at all
    (an operator's typo, which Redis would refuse with an error)."""
    return await deadletter.entry(redis, keys, entry_id) if is_entry_id(entry_id) else None


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
    refusal = letter.not_redrivable()
    if source is None:
        refusal = f"source {letter.source!r} is not configured"
    elif source.verify and not letter.verified:
        refusal = f"received while source {letter.source!r} did not verify signatures, which it now does"
    if refusal is not None:
        return {**report, "status": "kept", "reason": refusal}
    assert source is not None and letter.scheme is not None
    delivery = Delivery(source, letter.body, letter.headers, letter.url, letter.received_at, letter.method)
    recorded = Verified(scheme=letter.scheme, covered=letter.authenticated, checked=letter.verified)
    try:
        results = await pipeline.process(
            delivery, time.time(), replay=True, verified=recorded, replaces=letter.entry_id
        )
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
            letter = await find(redis, keys, entry_id)
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
