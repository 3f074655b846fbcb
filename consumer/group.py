"""A Redis Streams consumer-group member that hands typed transitions to a handler.

Delivery is at least once: an entry is acknowledged (XACK) only after the handler returned, so a
consumer that dies mid-way leaves its entries pending, and they are handed out again: to the same
consumer name when it restarts (it reads its own pending entries first), or to any member of the group
once they have been idle for ``claim_idle_ms`` (XAUTOCLAIM). A handler failure leaves the entry pending
too; after ``max_deliveries`` deliveries the entry goes to the group's dead-letter stream with the
error, and is acknowledged.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from redis import exceptions as redis_errors
from redis.asyncio import Redis

from consumer import deadletter
from consumer._replies import Entry, parse_autoclaim, parse_read
from consumer.transition import Transition, UndecodableEntry
from statemachine.keys import Keys
from statemachine.store import UNAVAILABLE_ERRORS, as_text

log = logging.getLogger("callstream.consumer")

#: Error prefixes meaning the group (or its stream) no longer exists.
GROUP_GONE = ("NOGROUP", "UNBLOCKED")

#: A handler: a coroutine function, or a plain function (run inline on the event loop).
Handler = Callable[[Transition], Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class ConsumerOptions:
    """How a consumer reads, retries and gives up.

    ``start_id`` is where a group created by the consumer starts: ``"0"`` (the default) hands out
    everything the stream still holds, ``"$"`` only what is added afterwards. ``claim_idle_ms`` must
    be longer than the slowest handler call, or a peer reclaims an entry still being handled.
    """

    count: int = 10
    block_ms: int = 2000
    claim_idle_ms: int = 30_000
    claim_every_ms: int = 5_000
    max_deliveries: int = 5
    start_id: str = "0"
    retry_delay_ms: int = 1000

    def __post_init__(self) -> None:
        for name in ("count", "block_ms", "claim_idle_ms", "claim_every_ms", "max_deliveries", "retry_delay_ms"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")


def default_name() -> str:
    """A consumer name unique per process and stable across its lifetime: ``<host>-<pid>``."""
    return f"{socket.gethostname()}-{os.getpid()}"


class Consumer:
    """One member ``name`` of consumer group ``group`` reading ``streams``.

    ``streams`` defaults to every transitions stream of ``keys`` (one per partition); pass a subset to
    split partitions between processes. Entries of one stream are handled one at a time, in the order
    Redis hands them out; different streams concurrently (see `run`).
    """

    def __init__(
        self,
        redis: Redis,
        group: str,
        handler: Handler,
        *,
        keys: Keys | None = None,
        streams: Sequence[str] | None = None,
        name: str | None = None,
        options: ConsumerOptions | None = None,
    ) -> None:
        self.redis = redis
        self.keys = keys or Keys()
        self.group = group
        self.deadletter_key = self.keys.consumer_deadletter(group)
        self.streams = list(streams) if streams is not None else self.keys.all_transitions()
        if not self.streams:
            raise ValueError("a consumer needs at least one stream")
        self.name = name or default_name()
        self.handler = handler
        self.options = options or ConsumerOptions()
        self._stopping = asyncio.Event()
        self._cursors = dict.fromkeys(self.streams, "0-0")
        self._groups_ready = False

    # -- running -----------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask `run` to return once the entry being handled is acknowledged (at most ``block_ms`` later).

        Entries read but not handled yet stay pending under this consumer's name: a restart under the
        same name handles them first; peers reclaim them after ``claim_idle_ms``.
        """
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def run(self) -> None:
        """Handle entries until `stop`. Redis outages are waited out; the group is recreated if missing.

        Each stream is served by its own loop: entries of one stream are handled one at a time, in
        order, while several streams (partitions) are handled concurrently. A single XREADGROUP over
        several streams would not do: in a Redis Cluster the partitions live in different slots.
        """
        self._stopping.clear()
        async with asyncio.TaskGroup() as lanes:
            for stream in self.streams:
                lanes.create_task(self._serve(stream))

    async def _serve(self, stream: str) -> None:
        recovered = False
        next_claim = 0.0
        while not self.stopping:
            try:
                if not recovered:
                    await self.recover_own([stream])
                    recovered = True
                if time.monotonic() >= next_claim:
                    await self.reclaim([stream])
                    next_claim = time.monotonic() + self.options.claim_every_ms / 1000
                await self.read_new(stream)
            except UNAVAILABLE_ERRORS as err:
                log.warning("Redis unavailable (%s); retrying in %d ms", err, self.options.retry_delay_ms)
                await self._pause(self.options.retry_delay_ms)

    async def _pause(self, ms: int) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), ms / 1000)
        except TimeoutError:
            pass

    # -- groups ------------------------------------------------------------------------------------

    async def ensure_groups(self) -> None:
        """Create the group on every stream (and the stream itself) where it is missing."""
        for stream in self.streams:
            try:
                await self.redis.xgroup_create(stream, self.group, id=self.options.start_id, mkstream=True)
                log.info("created consumer group %s on %s from %s", self.group, stream, self.options.start_id)
            except redis_errors.ResponseError as err:
                if not str(err).startswith("BUSYGROUP"):
                    raise
        self._cursors = dict.fromkeys(self.streams, "0-0")  # a new group's pending list starts empty
        self._groups_ready = True

    async def _with_group(self, command: Callable[[], Awaitable[Any]]) -> Any:
        """Run a group command; recreate the group and retry when it is gone.

        A group vanishes when Redis restarts without persistence or someone deletes it: commands then
        fail with NOGROUP, and Redis 7 wakes a blocked XREADGROUP with UNBLOCKED.
        """
        if not self._groups_ready:
            await self.ensure_groups()
        try:
            return await command()
        except redis_errors.ResponseError as err:
            if not str(err).startswith(GROUP_GONE):
                raise
            log.warning("consumer group %s is missing (%s); recreating it", self.group, err)
            await self.ensure_groups()
            return await command()

    # -- the three ways an entry reaches the handler -----------------------------------------------

    async def read_new(self, stream: str) -> int:
        """Read and handle entries of ``stream`` never delivered to the group (blocks up to ``block_ms``)."""
        reply = await self._with_group(
            lambda: self.redis.xreadgroup(
                self.group, self.name, {stream: ">"}, count=self.options.count, block=self.options.block_ms
            )
        )
        handled = 0
        for _stream, entries in parse_read(reply):
            for entry_id, fields in entries:
                if self.stopping:
                    return handled
                await self._deliver(stream, entry_id, fields, 1)
                handled += 1
        return handled

    async def recover_own(self, streams: Sequence[str] | None = None) -> int:
        """Handle the entries already pending under this consumer's name (left by a previous run)."""
        handled = 0
        for stream in self.streams if streams is None else streams:
            after = "0"
            while not self.stopping:
                start = after
                reply = await self._with_group(
                    lambda start=start, stream=stream: self.redis.xreadgroup(  # type: ignore[misc]
                        self.group, self.name, {stream: start}, count=self.options.count
                    )
                )
                rows = [entry for _stream, entries in parse_read(reply) for entry in entries]
                if not rows:
                    break
                handled += await self._deliver_counted(stream, rows)
                after = rows[-1][0]
        return handled

    async def reclaim(self, streams: Sequence[str] | None = None) -> int:
        """Claim and handle entries other consumers (or this one) left pending over ``claim_idle_ms``."""
        handled = 0
        for stream in self.streams if streams is None else streams:
            cursor = self._cursors[stream]
            reply = await self._with_group(
                lambda cursor=cursor, stream=stream: self.redis.xautoclaim(  # type: ignore[misc]
                    stream, self.group, self.name, self.options.claim_idle_ms, cursor, count=self.options.count
                )
            )
            claimed = parse_autoclaim(reply)
            self._cursors[stream] = claimed.cursor
            if claimed.unnamed_deleted:
                await self._ack_vanished(stream, cursor, {entry_id for entry_id, _ in claimed.entries})
            if claimed.entries:
                log.info("claimed %d idle entries of %s", len(claimed.entries), stream)
                handled += await self._deliver_counted(stream, claimed.entries)
        return handled

    async def _deliver_counted(self, stream: str, rows: list[Entry]) -> int:
        """Handle redelivered entries, looking their delivery counts up first (one round trip)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for entry_id, _fields in rows:
                pipe.xpending_range(stream, self.group, entry_id, entry_id, 1, self.name)
            found = await pipe.execute()
        handled = 0
        for (entry_id, fields), pending in zip(rows, found, strict=True):
            if self.stopping:
                break
            deliveries = int(pending[0]["times_delivered"]) if pending else 1
            await self._deliver(stream, entry_id, fields, deliveries)
            handled += 1
        return handled

    async def _ack_vanished(self, stream: str, cursor: str, returned: set[str]) -> None:
        """Redis 6.2 claims entries deleted from the stream without naming them: find and acknowledge them."""
        pending = await self.redis.xpending_range(stream, self.group, cursor, "+", 1000, self.name)
        for row in pending:
            entry_id = as_text(row["message_id"])
            if entry_id not in returned and not await self.redis.xrange(stream, entry_id, entry_id):
                await self.redis.xack(stream, self.group, entry_id)

    # -- one entry ---------------------------------------------------------------------------------

    async def _deliver(self, stream: str, entry_id: str, fields: dict[Any, Any], deliveries: int) -> None:
        """Hand one entry to the handler and acknowledge it, or leave it pending, or give up on it."""
        if not fields:  # deleted (trimmed) from the stream while pending: nothing left to handle
            await self.redis.xack(stream, self.group, entry_id)
            return
        if deliveries > self.options.max_deliveries:
            await self._give_up(
                stream, entry_id, fields, deliveries, f"not acknowledged after {deliveries - 1} deliveries"
            )
            return
        try:
            transition = Transition.from_entry(stream, entry_id, fields, deliveries)
        except UndecodableEntry as err:
            await self._give_up(stream, entry_id, fields, deliveries, str(err))
            return
        try:
            result = self.handler(transition)
            if inspect.isawaitable(result):
                await result
        except Exception as err:  # the handler's failure is data here: it decides retry or dead letter
            error = f"{type(err).__name__}: {err}"
            if deliveries >= self.options.max_deliveries:
                await self._give_up(stream, entry_id, fields, deliveries, error)
            else:
                log.warning(
                    "handler failed on %s %s (delivery %d): %s", stream, entry_id, deliveries, error, exc_info=err
                )
            return
        await self.redis.xack(stream, self.group, entry_id)

    async def _give_up(self, stream: str, entry_id: str, fields: dict[Any, Any], deliveries: int, error: str) -> None:
        # Dead letter first, then acknowledge: a crash in between dead-letters the entry twice at worst,
        # never loses it. (No MULTI: the two keys may live in different cluster slots.)
        dead_id = await deadletter.give_up(
            self.redis,
            self.deadletter_key,
            stream=stream,
            entry_id=entry_id,
            fields=fields,
            group=self.group,
            consumer=self.name,
            deliveries=deliveries,
            error=error,
        )
        await self.redis.xack(stream, self.group, entry_id)
        log.error("gave up on %s %s after %d deliveries: %s (kept as %s)", stream, entry_id, deliveries, error, dead_id)
