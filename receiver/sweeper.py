"""Stuck calls: find calls whose callbacks stopped coming, settle them with the provider or flag them.

A provider gives up on a callback after its retries (CallingBox after about two days, Plivo after one
retry), so a call can sit in a non-terminal state forever and consumers wait for an ending that never
comes. A sweep SCANs the call hashes and takes every call that has not changed for longer than its
source's ``stale_after_seconds`` (default two hours) while not in a terminal state. For each one:

1. When the source has a ``reconcile`` table and its provider a get-call client, the provider is asked
   for the call's state, and the answer is applied as a normal event (``provider_event``
   ``reconciliation``, ``extras.via = "reconciliation"``, dedupe key ``reconcile:<attempt>:<status>``).
   A terminal answer settles the call. A non-terminal answer means the provider still has the call
   up: nothing more is done, and the next sweep asks again.
2. Otherwise (no client, not configured, 404, 5xx, network error, unreadable answer) one ``stale``
   annotation is published through the same atomic step. Its dedupe key is
   ``stale:<attempt>:<state>``: one annotation per call per state it got stuck in, however often the
   sweeper runs (an annotation itself refreshes the call's ``updated_at``, so a key per version would
   repeat it every ``stale_after_seconds``).

Sweeps are idempotent (everything goes through dedupe keys), so two sweepers overlapping only waste
work; `run_periodically` still takes a Redis lease per round so that N server workers sweep once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
from redis.asyncio import Redis

from receiver.reconcile import CLIENTS, ApiConfig, Finding, GetCallClient, ReconcileError, ask
from receiver.settings import ConfigError, Settings, Source
from receiver.timefmt import iso_ms
from statemachine.errors import StoreUnavailable
from statemachine.events import CallEvent
from statemachine.keys import Keys
from statemachine.machine import Outcome
from statemachine.states import Trigger, is_terminal
from statemachine.store import UNAVAILABLE_ERRORS, CallStore, as_text

log = logging.getLogger("callstream.sweeper")

DEFAULT_STALE_AFTER_S = 2 * 3600
STALE = "stale"
RECONCILIATION = "reconciliation"
REDIS_DOWN: tuple[type[Exception], ...] = (StoreUnavailable, *UNAVAILABLE_ERRORS)


@dataclass(frozen=True, slots=True)
class SourcePolicy:
    """How one source's stuck calls are handled."""

    stale_after_ms: int = DEFAULT_STALE_AFTER_S * 1000
    client: GetCallClient | None = None
    api: ApiConfig | None = None


def source_policy(source: Source, environ: Mapping[str, str]) -> SourcePolicy:
    """A source's policy from its options; raises `ConfigError` naming the key at fault."""
    stale_after = source.options.get("stale_after_seconds", DEFAULT_STALE_AFTER_S)
    if isinstance(stale_after, bool) or not isinstance(stale_after, int) or stale_after <= 0:
        raise ConfigError(f"sources.{source.name}.stale_after_seconds must be a positive integer")
    client = CLIENTS.get(source.provider)
    api = client.configure(source, environ) if client is not None else None
    if api is None and "reconcile" in source.options and client is None:
        raise ConfigError(
            f"sources.{source.name}.reconcile: provider {source.provider!r} has no get-call client "
            f"(available: {', '.join(sorted(CLIENTS))})"
        )
    return SourcePolicy(stale_after_ms=stale_after * 1000, client=client if api else None, api=api)


@dataclass(frozen=True, slots=True)
class StuckCall:
    """A call that has not changed for too long while not in a terminal state."""

    source: str
    call_id: str
    provider: str
    state: str
    attempt: int
    version: int
    updated_at_ms: int


@dataclass(slots=True)
class SweepReport:
    """What one sweep did."""

    scanned: int = 0
    stuck: int = 0
    reconciled: int = 0
    live: int = 0
    annotated: int = 0
    already_annotated: int = 0
    lookup_failures: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Sweeper:
    """Finds stuck calls under one key prefix and settles or flags them."""

    def __init__(
        self,
        store: CallStore,
        settings: Settings,
        environ: Mapping[str, str] | None = None,
        *,
        concurrency: int = 8,
        scan_count: int = 500,
    ) -> None:
        environ = os.environ if environ is None else environ
        self.store = store
        self.policies = {name: source_policy(source, environ) for name, source in settings.sources.items()}
        self.default_policy = SourcePolicy()
        self.scan_count = scan_count
        self._limit = asyncio.Semaphore(concurrency)

    def policy(self, source: str) -> SourcePolicy:
        """A source that is no longer configured keeps the default limit, without reconciliation."""
        return self.policies.get(source, self.default_policy)

    async def stuck_calls(self, now_ms: int, *, stale_only: bool = True) -> AsyncIterator[tuple[int, list[StuckCall]]]:
        """Batches of stuck calls, each with how many call hashes it covered, over every partition.

        ``stale_only=False`` yields every call in a non-terminal state, however recent (the console lists
        them). ``scan_iter`` also walks every primary of a Redis Cluster client.
        """
        keys = self.store.keys
        for partition in range(keys.partitions):
            call_prefix = keys.call_pattern(partition)[:-1]
            batch: list[str] = []
            async for found in self.store.redis.scan_iter(match=keys.call_pattern(partition), count=self.scan_count):
                batch.append(as_text(found))
                if len(batch) >= self.scan_count:
                    yield len(batch), await self._read(batch, call_prefix, now_ms, stale_only)
                    batch = []
            if batch:
                yield len(batch), await self._read(batch, call_prefix, now_ms, stale_only)

    async def _read(self, names: list[str], call_prefix: str, now_ms: int, stale_only: bool) -> list[StuckCall]:
        async with self.store.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hmget(name, "state", "attempt", "version", "updated_at", "provider")
            rows = await pipe.execute()
        return [
            call
            for name, row in zip(names, rows, strict=True)
            if (call := self._stuck(name[len(call_prefix) :], row, now_ms, stale_only))
        ]

    def _stuck(self, name: str, row: list[Any], now_ms: int, stale_only: bool) -> StuckCall | None:
        """``name`` is the key without its partition's call prefix: ``<source>:<call id>``."""
        state, attempt, version, updated_at, provider = (None if v is None else as_text(v) for v in row)
        if version is None or state is None or is_terminal(state):
            return None  # expired since SCAN saw it, or not (yet) a call in progress
        source, _, call_id = name.partition(":")
        updated = int(updated_at or 0)
        if stale_only and now_ms - updated < self.policy(source).stale_after_ms:
            return None
        return StuckCall(source, call_id, provider or "", state, int(attempt or 1), int(version), updated)

    async def sweep(self, now_ms: int | None = None) -> SweepReport:
        """One pass over every call. Raises `StoreUnavailable` when Redis cannot be reached."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        report = SweepReport()
        started = time.monotonic()
        async for scanned, calls in self.stuck_calls(now_ms):
            report.scanned += scanned
            report.stuck += len(calls)
            await asyncio.gather(*(self._settle_limited(call, report) for call in calls))
        await self._record(now_ms, time.monotonic() - started, report)
        return report

    async def _record(self, now_ms: int, seconds: float, report: SweepReport) -> None:
        """Keep the latest sweep's time and report where operators look (`last_sweep`)."""
        status = {"at_ms": now_ms, "duration_ms": round(seconds * 1000), "report": report.as_dict()}
        try:
            await self.store.redis.set(self.store.keys.sweeper_status(), orjson.dumps(status))
        except UNAVAILABLE_ERRORS as err:
            raise StoreUnavailable(str(err) or type(err).__name__) from err

    async def _settle_limited(self, call: StuckCall, report: SweepReport) -> None:
        async with self._limit:
            await self.settle(call, report)

    async def settle(self, call: StuckCall, report: SweepReport) -> None:
        """Reconcile one stuck call with its provider when possible, else flag it stale."""
        policy = self.policy(call.source)
        failure = "not_configured"
        if policy.client is not None and policy.api is not None:
            try:
                finding = await ask(policy.client, policy.api, call.call_id)
            except ReconcileError as err:
                failure = err.reason
                report.lookup_failures[failure] = report.lookup_failures.get(failure, 0) + 1
                log.warning(
                    "reconciliation failed, flagging stale: source=%s call_id=%s reason=%s: %s",
                    call.source,
                    call.call_id,
                    err.reason,
                    err.message,
                )
            else:
                step = await self.store.apply(self._reconciled_event(call, policy.client, finding))
                if is_terminal(finding.trigger.value) or step.outcome is Outcome.APPLIED:
                    report.reconciled += 1
                    log.info(
                        "reconciled: source=%s call_id=%s %s -> %s (%s, provider status %s)",
                        call.source,
                        call.call_id,
                        call.state,
                        step.to_state,
                        step.outcome.value,
                        finding.status,
                    )
                else:
                    report.live += 1
                return
        step = await self.store.apply(self._stale_event(call, policy, failure))
        if step.outcome is Outcome.DUPLICATE:
            report.already_annotated += 1
        else:
            report.annotated += 1
            log.info("flagged stale: source=%s call_id=%s state=%s", call.source, call.call_id, call.state)

    def _reconciled_event(self, call: StuckCall, client: GetCallClient, finding: Finding) -> CallEvent:
        return CallEvent(
            source=call.source,
            provider=call.provider or client.provider,
            call_id=call.call_id,
            event=finding.trigger,
            provider_event=RECONCILIATION,
            provider_status=finding.status,
            dedupe_key=f"reconcile:{call.attempt}:{finding.status}",
            received_at=iso_ms(time.time() * 1000),
            extras={"via": RECONCILIATION, **finding.extras},
            raw=finding.raw,
        )

    def _stale_event(self, call: StuckCall, policy: SourcePolicy, failure: str) -> CallEvent:
        return CallEvent(
            source=call.source,
            provider=call.provider,
            call_id=call.call_id,
            event=Trigger.ANNOTATION,
            provider_event=STALE,
            provider_status=None,
            dedupe_key=f"{STALE}:{call.attempt}:{call.state}",
            received_at=iso_ms(time.time() * 1000),
            extras={
                "annotation": STALE,
                "state": call.state,
                "last_update_at": iso_ms(call.updated_at_ms),
                "stale_after_s": policy.stale_after_ms // 1000,
                "reconciliation": failure,
            },
        )


async def last_sweep(redis: Redis, keys: Keys) -> dict[str, Any] | None:
    """The latest sweep's ``at_ms``, ``duration_ms`` and ``report`` (any sweeper process), or None."""
    raw = await redis.get(keys.sweeper_status())
    return orjson.loads(raw) if raw else None


async def run_periodically(sweeper: Sweeper, interval_s: float, stop: asyncio.Event) -> None:
    """Sweep every ``interval_s`` until ``stop`` is set; one process per round, by a Redis lease.

    Every process running this competes for the lease each round (``SET NX PX interval``); the winner
    sweeps. A lost process only costs its rounds until its lease expires. Errors are logged, never
    raised: the next round tries again.
    """
    redis = sweeper.store.redis
    lease = sweeper.store.keys.sweeper_lease()
    token = uuid.uuid4().hex
    # Workers started together would all wake at once; spreading them costs nothing.
    delay = random.uniform(0, min(interval_s, 5.0))
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)
        if stop.is_set():
            return
        delay = interval_s
        try:
            if await redis.set(lease, token, nx=True, px=max(1, int(interval_s * 1000))):
                report = await sweeper.sweep()
                if report.stuck:
                    log.info("sweep: %s", report.as_dict())
        except REDIS_DOWN as err:
            log.warning("sweep skipped, Redis unavailable: %s", err)
        except Exception:
            log.exception("sweep failed")


@contextlib.asynccontextmanager
async def periodic(settings: Settings, store: CallStore) -> AsyncIterator[None]:
    """Run `run_periodically` in the background while the context is open, if ``[sweeper]`` asks for it."""
    if settings.sweeper_interval_s is None:
        yield
        return
    sweeper = Sweeper(store, settings)
    stop = asyncio.Event()
    task = asyncio.create_task(run_periodically(sweeper, settings.sweeper_interval_s, stop))
    try:
        yield
    finally:
        stop.set()
        await task
