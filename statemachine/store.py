"""Applies decided events to Redis in one atomic step, and reads calls back.

Each event costs one round trip: a server-side script (`apply_step.lua`) checks the nonce and dedupe
marks, looks the decision up in the table generated from the machine, writes the call's new state,
appends the stream entry and sets the call's expiry, all atomically. Two receivers handling two
callbacks of one call at once are serialized by Redis itself, so neither can apply over the other.

Concurrent requests share round trips: `apply` queues its script call and the steps queued during one
turn of the event loop are sent together on the next, one write per primary on a connection kept for
them (`statemachine.batching`). Each step is still its own atomic script with its own reply; a write
that fails as a whole (connection lost, timeout) fails every step that was in it, so no request is ever
told its event was applied when it was not.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from redis import exceptions as redis_errors
from redis.asyncio import Redis

from statemachine.batching import StepBatcher
from statemachine.errors import ReplayedNonce, StoreUnavailable
from statemachine.events import CallEvent
from statemachine.keys import Keys
from statemachine.machine import Outcome
from statemachine.script import apply_step_source, decision_row, early_row, prepare_decision_rows

#: Redis errors that mean "try again later", never "your request is wrong".
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.BusyLoadingError,
    redis_errors.ReadOnlyError,
    redis_errors.TryAgainError,
    redis_errors.ClusterDownError,
    # A cluster client whose slot map has a gap while a failover is under way.
    redis_errors.SlotNotCoveredError,
    # A cluster client that reaches none of its nodes ("Redis Cluster cannot be connected").
    redis_errors.RedisClusterException,
    OSError,
)


@dataclass(frozen=True, slots=True)
class Retention:
    """How long things are kept. The dedupe window of a call is its hash's lifetime."""

    stream_maxlen: int = 1_000_000
    active_call_ms: int = 7 * 24 * 3600 * 1000
    terminal_call_ms: int = 3 * 24 * 3600 * 1000
    nonce_ms: int = 3 * 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class NonceClaim:
    """Nonces one request spends: from then on each authenticates that request only.

    ``fingerprint`` is a digest of the request (what a retry repeats byte for byte): the same request again
    (a provider's retry, a retry after a 503) finds its own fingerprint and passes; any other request under
    one of these nonces is a replay. Marks live ``ttl_ms`` in each nonce's own partition.
    """

    source: str
    nonces: tuple[str, ...]
    fingerprint: str
    ttl_ms: int


@dataclass(frozen=True, slots=True)
class StepResult:
    """What one event did, as Redis confirmed it."""

    outcome: Outcome
    from_state: str
    to_state: str
    attempt: int
    version: int
    entry_id: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome.value,
            "from_state": self.from_state,
            "to_state": self.to_state,
            "attempt": self.attempt,
            "version": self.version,
            "entry_id": self.entry_id,
        }


@dataclass(frozen=True, slots=True)
class CallRecord:
    """A call's current state and the stream entries of its history (oldest first)."""

    source: str
    call_id: str
    provider: str
    state: str
    attempt: int
    version: int
    updated_at_ms: int
    ttl_ms: int
    history: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "call_id": self.call_id,
            "provider": self.provider,
            "state": self.state,
            "attempt": self.attempt,
            "version": self.version,
            "updated_at_ms": self.updated_at_ms,
            "expires_in_ms": self.ttl_ms,
            "history": self.history,
        }


def occurred_ms(occurred_at: str | None) -> str:
    """The provider's time of an event as unix milliseconds, "" when unknown or unreadable."""
    if not occurred_at:
        return ""
    try:
        moment = datetime.fromisoformat(occurred_at)
    except ValueError:
        return ""
    if moment.tzinfo is None:
        return ""
    return str(int(moment.timestamp() * 1000))


def dedupe_mark(dedupe_key: str) -> str:
    """The call hash's field that marks ``dedupe_key`` as seen: ``d:<key>``, or ``d#`` and the first 16 hex
    digits of the key's SHA-1 when ``d:<key>`` would be longer than 64 bytes (so the hash stays compact)."""
    mark = "d:" + dedupe_key
    encoded = mark.encode()
    if len(encoded) > 64:
        return "d#" + hashlib.sha1(encoded[2:], usedforsecurity=False).hexdigest()[:16]
    return mark


def as_text(value: Any) -> str:
    """A Redis reply value (bytes from a client without decode_responses) as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


def entry_fields(fields: dict[Any, Any]) -> dict[str, Any]:
    """A transitions stream entry's fields as a plain dict, with its event decoded."""
    entry: dict[str, Any] = {as_text(key): as_text(value) for key, value in fields.items()}
    for number in ("version", "attempt"):
        if number in entry:
            entry[number] = int(entry[number])
    if "event" in entry:
        entry["event"] = orjson.loads(entry["event"])
    entry["replay"] = entry.get("replay") == "1"
    return entry


class CallStore:
    """The Redis side of the lifecycle: apply an event, look a call up."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys | None = None,
        retention: Retention | None = None,
        *,
        batch: bool = True,
        wait_replicas: int = 0,
        wait_timeout_ms: int = 1000,
    ) -> None:
        self.redis = redis
        self.keys = keys or Keys()
        self.retention = retention or Retention()
        self._apply_step = redis.register_script(apply_step_source())
        prepare_decision_rows()
        wait = (wait_replicas, wait_timeout_ms) if wait_replicas else None
        batch = batch or wait is not None
        self._batcher = StepBatcher(redis, self._apply_step.sha, apply_step_source(), wait=wait) if batch else None

    async def aclose(self) -> None:
        """Let the connections kept for batches go (the client's own pool is the caller's to close)."""
        if self._batcher is not None:
            await self._batcher.aclose()

    async def apply(
        self, event: CallEvent, *, claim: NonceClaim | None = None, replay: bool = False, label: str | None = None
    ) -> StepResult:
        """Apply one event atomically and return what it did, spending ``claim``'s nonces in the same step.

        Raises `ReplayedNonce` (nothing applied) when a nonce of ``claim`` already authenticated another
        request, and `StoreUnavailable` when Redis cannot be reached (nothing is applied in that case).
        """
        keys = [self.keys.call_of(event.source, event.call_id), self.keys.transitions_of(event.source, event.call_id)]
        if claim is not None and self.keys.partitions > 1:
            # A replayed nonce may come with another call id, hence another partition and slot: its mark
            # lives in the nonce's own partition and is claimed first, in a round trip of its own.
            await self.spend(claim)
            claim = None
        if claim is not None:
            keys += [self.keys.nonce_of(claim.source, nonce) for nonce in claim.nonces]
        retention = self.retention
        args = [
            event.event.value,
            event.dedupe_key,
            "1" if replay else "0",
            claim.fingerprint if claim is not None else "",
            claim.ttl_ms if claim is not None else 0,
            retention.stream_maxlen,
            retention.active_call_ms,
            retention.terminal_call_ms,
            int(time.time() * 1000),
            event.source,
            event.provider,
            event.call_id,
            label or event.extras.get("annotation") or event.event.value,
            event.to_json(),
            decision_row(event.event),
            early_row(event.event),
            occurred_ms(event.occurred_at),
            dedupe_mark(event.dedupe_key),
        ]
        try:
            if self._batcher is not None:
                reply = await self._batcher.run(keys, args)
            else:
                reply = await self._apply_step(keys=keys, args=args)
        except UNAVAILABLE_ERRORS as err:
            raise StoreUnavailable(str(err) or type(err).__name__) from err
        outcome = as_text(reply[0])
        if outcome == "replayed_nonce":
            raise ReplayedNonce("a signature nonce of this request already authenticated another request")
        return StepResult(
            outcome=Outcome(outcome),
            from_state=as_text(reply[1]),
            to_state=as_text(reply[2]),
            attempt=int(reply[3]),
            version=int(reply[4]),
            entry_id=as_text(reply[5]) or None,
        )

    async def spend(self, claim: NonceClaim) -> None:
        """Spend ``claim``'s nonces in one round trip, for a request that applies no step (or not in their slot).

        Raises `ReplayedNonce` when a nonce already authenticated another request: the request must then be
        refused, and nothing of it kept. The same request again passes (see `NonceClaim`).
        """
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for nonce in claim.nonces:
                    key = self.keys.nonce_of(claim.source, nonce)
                    pipe.set(key, claim.fingerprint, nx=True, px=claim.ttl_ms)
                    pipe.get(key)
                replies = await pipe.execute()
        except UNAVAILABLE_ERRORS as err:
            raise StoreUnavailable(str(err) or type(err).__name__) from err
        if any(seen is not None and as_text(seen) != claim.fingerprint for seen in replies[1::2]):
            raise ReplayedNonce("a signature nonce of this request already authenticated another request")

    async def get_call(self, source: str, call_id: str) -> CallRecord | None:
        """The call's current state and history, or None when it is unknown or expired."""
        key = self.keys.call_of(source, call_id)
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.hmget(key, "state", "attempt", "version", "history", "provider", "updated_at")
                pipe.pttl(key)
                fields, ttl = await pipe.execute()
            if fields[2] is None:
                return None
            entry_ids = as_text(fields[3]).split() if fields[3] else []
            history: list[dict[str, Any]] = []
            if entry_ids:
                stream = self.keys.transitions_of(source, call_id)
                async with self.redis.pipeline(transaction=False) as pipe:
                    for entry_id in entry_ids:
                        pipe.xrange(stream, entry_id, entry_id)
                    found = await pipe.execute()
                for entry_id, rows in zip(entry_ids, found, strict=True):
                    if rows:
                        history.append({"id": entry_id, **entry_fields(rows[0][1])})
                    else:
                        history.append({"id": entry_id, "trimmed": True})
        except UNAVAILABLE_ERRORS as err:
            raise StoreUnavailable(str(err) or type(err).__name__) from err
        return CallRecord(
            source=source,
            call_id=call_id,
            provider=as_text(fields[4]) if fields[4] else "",
            state=as_text(fields[0]) if fields[0] else "new",
            attempt=int(fields[1] or 1),
            version=int(fields[2]),
            updated_at_ms=int(fields[5] or 0),
            ttl_ms=int(ttl),
            history=history,
        )
