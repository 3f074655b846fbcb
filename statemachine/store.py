"""Applies decided events to Redis in one atomic step, and reads calls back.

Each event costs one round trip: a server-side script (`apply_step.lua`) checks the nonce and dedupe
marks, looks the decision up in the table generated from the machine, writes the call's new state,
appends the stream entry and sets the call's expiry, all atomically. Two receivers handling two
callbacks of one call at once are serialized by Redis itself, so neither can apply over the other.

Concurrent requests share round trips: `apply` queues its script call and the steps queued during one
turn of the event loop are sent together, as one pipeline, on the next (`StepBatcher`). Each step is still
its own atomic script with its own reply; a pipeline that fails as a whole (connection lost, timeout)
fails every step that was in it, so no request is ever told its event was applied when it was not.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import redis as redis_py
from hiredis import pack_command
from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from statemachine.errors import ReplayedNonce, StoreUnavailable
from statemachine.events import CallEvent
from statemachine.keys import Keys
from statemachine.machine import Outcome
from statemachine.script import apply_step_source, decision_row, early_row

#: redis-py before 5.3 wants a command name for `get_connection`; later versions warn when given one.
_GET_CONNECTION_ARGS: tuple[str, ...] = ("EVALSHA",) if redis_py.VERSION < (5, 3) else ()

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


class StepBatcher:
    """Sends the script calls queued during one turn of the event loop as one pipeline.

    redis-py spends more CPU per command (pool checkout, retry wrapper, packing, parsing) than Redis spends
    running the script, so under concurrency one pipeline of N calls costs far less than N calls. Calls
    queued while earlier pipelines are in flight go out in the next one; pipelines never wait for each
    other. Replies are matched to callers one to one; an error reply fails only its own caller, an error
    of the whole pipeline fails every caller in it.
    """

    def __init__(
        self, redis: Redis, sha: str, source: str, max_batch: int = 256, wait: tuple[int, int] | None = None
    ) -> None:
        self.redis = redis
        self.sha = sha
        self.source = source
        self.max_batch = max_batch
        #: (replicas, timeout ms): after each batch, WAIT on the same connection until that many replicas
        #: have its writes, or fail the whole batch, so a 2xx survives the primary's crash and failover.
        self.wait = wait
        self._queue: list[tuple[list[str], list[Any], asyncio.Future[Any]]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self, keys: list[str], args: list[Any]) -> Any:
        """Queue one script call and wait for its reply (or its error)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append((keys, args, future))
        if len(self._queue) == 1:
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        queue, self._queue = self._queue, []
        for start in range(0, len(queue), self.max_batch):
            task = asyncio.ensure_future(self._send(queue[start : start + self.max_batch]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[tuple[list[str], list[Any], asyncio.Future[Any]]]) -> None:
        try:
            replies = await self._execute([(keys, args) for keys, args, _ in batch])
        except BaseException as err:  # the whole pipeline failed: so did every step in it
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(err if isinstance(err, Exception) else StoreUnavailable("interrupted"))
            if not isinstance(err, Exception):
                raise
            return
        for (_, _, future), reply in zip(batch, replies, strict=True):
            if future.done():  # the caller went away (client disconnected); its step ran regardless
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    async def _execute(self, calls: list[tuple[list[str], list[Any]]]) -> list[Any]:
        replies = await self._pipeline(calls)
        missing = [index for index, reply in enumerate(replies) if isinstance(reply, redis_errors.NoScriptError)]
        if missing:  # Redis restarted or its scripts were flushed: load ours and send those calls again
            await self.redis.script_load(self.source)
            again = await self._pipeline([calls[index] for index in missing])
            for index, reply in zip(missing, again, strict=True):
                replies[index] = reply
        return replies

    async def _pipeline(self, calls: list[tuple[list[str], list[Any]]]) -> list[Any]:
        """Send the calls on one connection in one write and read their replies in order.

        This is what redis-py's Pipeline does, less its per-command bookkeeping, and packed by hiredis in C
        (redis-py's asyncio client packs in Python: ~8 % of the receiver's CPU). Connection errors are
        retried under the connection's own retry policy, as redis-py retries any command: a stale pooled
        connection after a Redis restart reconnects. A batch resent after a drop may meet steps that had
        already run; their dedupe marks make those duplicates, exactly as a provider's retry would.
        """
        count = len(calls)
        packed = b"".join(pack_command(("EVALSHA", self.sha, len(keys), *keys, *args)) for keys, args in calls)
        if self.wait is not None:
            wait_command: tuple[Any, ...] = ("WAIT", *self.wait)
            packed += pack_command(wait_command)
            count += 1
        pool = self.redis.connection_pool
        connection = await pool.get_connection(*_GET_CONNECTION_ARGS)  # type: ignore[no-untyped-call]
        try:
            replies: list[Any] = await connection.retry.call_with_retry(
                lambda: _exchange(connection, packed, count), lambda _error: connection.disconnect()
            )
        except BaseException:
            await connection.disconnect()  # replies may still be in flight: never reuse this connection
            raise
        finally:
            await pool.release(connection)
        if self.wait is not None:
            confirmed = replies.pop()
            if not isinstance(confirmed, int) or confirmed < self.wait[0]:
                # The steps ran on the primary but may not survive a failover: the provider must retry
                # (on this primary the retry is a duplicate; on a promoted replica it is applied again).
                raise StoreUnavailable(f"{confirmed} of {self.wait[0]} replicas confirmed the write in time")
        return replies


async def _exchange(connection: Any, packed: bytes, count: int) -> list[Any]:
    """Write a packed batch and read its ``count`` replies; an error reply is its own step's, not the batch's."""
    await connection.send_packed_command(packed)
    replies: list[Any] = []
    for _ in range(count):
        try:
            replies.append(await connection.read_response())
        except redis_errors.ResponseError as err:
            replies.append(err)
    return replies


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
        # redis-py refuses EVALSHA in a cluster pipeline: on Redis Cluster each step is its own EVALSHA,
        # routed to its slot's primary by the cluster client (MOVED/ASK and failover handled there).
        cluster = isinstance(redis, RedisCluster)
        if wait_replicas and cluster:
            raise ValueError("wait_replicas needs the step and its WAIT on one connection: not on Redis Cluster")
        wait = (wait_replicas, wait_timeout_ms) if wait_replicas else None
        batch = (batch or wait is not None) and not cluster
        self._batcher = StepBatcher(redis, self._apply_step.sha, apply_step_source(), wait=wait) if batch else None

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
