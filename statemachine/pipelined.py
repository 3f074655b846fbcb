"""One dedicated Redis connection on which batches of commands are pipelined.

A `Lane` writes each batch as soon as it is handed one, without waiting for the replies of the batches
before it. The replies are parsed (hiredis) as their bytes arrive, in the connection's own data callback,
in the order Redis sends them (the order the commands were written), and each batch gets its own as soon
as all of them are in: no task wakes up to read. Nothing is checked out of a pool per batch: the
connection is taken once, from the client's pool (a single server, or the primary Sentinel names) or
from a cluster node, with the client's own set-up (AUTH, SELECT, TLS), and kept for the lane alone.

Error replies are values in their batch's list (`redis.exceptions` instances, as redis-py maps them), so
one refused command fails only its caller. A connection that breaks, or stays silent beyond the timeout
while replies are owed (one watchdog timer per connection), fails every batch still waiting (nothing of
theirs is reported as done) and is let go; the next batch opens a fresh one. `Lane.execute` sends a batch
that met a broken connection once more on a fresh one (a connection left over from a Redis restart);
steps that did run meet their dedupe marks, exactly as a provider's retry would.
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import hiredis
from redis import exceptions as redis_errors
from redis._parsers import BaseParser


class SingleFlight:
    """An awaitable job run once for every caller that asks while it runs; each caller gets its outcome."""

    def __init__(self) -> None:
        self._running: asyncio.Future[None] | None = None

    async def run(self, job: Callable[[], Awaitable[None]]) -> None:
        if self._running is not None:
            await asyncio.shield(self._running)
            return
        running = self._running = asyncio.get_running_loop().create_future()
        try:
            await job()
            running.set_result(None)
        except BaseException as err:
            running.set_exception(err)
            running.exception()  # marked as retrieved: each waiting caller raises it itself
            raise
        finally:
            self._running = None


class _Batch:
    __slots__ = ("count", "future", "replies")

    def __init__(self, count: int, future: asyncio.Future[list[Any]]) -> None:
        self.count = count
        self.future = future
        self.replies: list[Any] = []


class _Link:
    """One connection of a lane, with the batches written on it and not yet answered."""

    __slots__ = ("connection", "dropped", "last_read", "parser", "pending", "watchdog", "writer")

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.writer: asyncio.StreamWriter = connection._writer
        self.parser = hiredis.Reader(
            protocolError=redis_errors.InvalidResponse,
            replyError=BaseParser.parse_error,
            notEnoughData=_NOT_ENOUGH_DATA,
        )
        self.pending: deque[_Batch] = deque()
        #: When bytes last arrived, or when a reply became owed after none was (loop time).
        self.last_read = 0.0
        self.watchdog: asyncio.TimerHandle | None = None
        self.dropped = False

    def fail(self, error: redis_errors.RedisError) -> None:
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None
        while self.pending:
            batch = self.pending.popleft()
            if not batch.future.done():
                batch.future.set_exception(error)


class Lane:
    """A dedicated, pipelined connection. ``connect`` returns a connected redis-py connection;
    ``release`` gives one back (disconnected) when the lane lets it go."""

    def __init__(
        self,
        connect: Callable[[], Awaitable[Any]],
        release: Callable[[Any], Awaitable[None] | None],
        timeout_s: float | None,
        name: str = "",
    ) -> None:
        self.name = name
        self.timeout_s = timeout_s
        self._connect = connect
        self._release = release
        self._link: _Link | None = None
        self._opening = SingleFlight()
        self._closing: set[asyncio.Task[None]] = set()

    @property
    def idle(self) -> bool:
        """Connected, with no reply owed: a write now would be served at once."""
        link = self._link
        return link is not None and not link.pending

    def submit(self, packed: bytes, count: int) -> asyncio.Future[list[Any]] | None:
        """Write ``packed`` (``count`` commands) now and return the future of their replies, or None when
        the lane has no open connection (then `execute`, which connects). The future fails with
        `redis.exceptions.ConnectionError` or `TimeoutError` when the connection fails before every reply
        has arrived (some of the commands may have run)."""
        link = self._link
        if link is None or link.writer.is_closing():
            return None
        loop = asyncio.get_running_loop()
        batch = _Batch(count, loop.create_future())
        if not link.pending:
            link.last_read = loop.time()
            if link.watchdog is None and self.timeout_s:
                link.watchdog = loop.call_at(link.last_read + self.timeout_s, self._watch, link)
        link.pending.append(batch)
        try:
            link.writer.write(packed)
        except (OSError, RuntimeError) as err:
            self._drop(link, redis_errors.ConnectionError(f"error writing to {self.name}: {err}"))
        return batch.future

    async def execute(self, packed: bytes, count: int, *, retry: bool = True) -> list[Any]:
        """`submit`, connecting first when needed, and wait for the replies (error replies are values).

        Raises `redis.exceptions.ConnectionError` or `TimeoutError` when the connection fails before every
        reply has arrived (some of the commands may have run). With ``retry`` a connection error is tried
        once more on a fresh connection, as redis-py retries a command on a connection left over from a
        Redis restart; steps that did run then meet their dedupe marks.
        """
        try:
            return await self._execute_once(packed, count)
        except redis_errors.ConnectionError:
            if not retry:
                raise
            return await self._execute_once(packed, count)

    async def _execute_once(self, packed: bytes, count: int) -> list[Any]:
        future = self.submit(packed, count)
        if future is None:
            await self._open()
            future = self.submit(packed, count)
            if future is None:
                raise redis_errors.ConnectionError(f"connection to {self.name} was closed")
        link = self._link
        if link is not None:
            try:
                await link.writer.drain()
            except (OSError, RuntimeError) as err:
                self._drop(link, redis_errors.ConnectionError(f"error writing to {self.name}: {err}"))
        return await future

    async def _open(self) -> None:
        """Connect once, however many batches are waiting for it."""
        await self._opening.run(self._connect_link)

    async def _connect_link(self) -> None:
        connection = await self._connect()
        link = _Link(connection)
        # Replies are parsed as their bytes arrive, in the connection's own data callback: no task wakes up to
        # read them. The stream redis-py reads from is left empty; the connection is the lane's alone.
        stream = connection._reader
        stream.feed_data = functools.partial(self._received, link)
        stream.feed_eof = functools.partial(self._ended, link)
        stream.set_exception = functools.partial(self._ended, link)
        self._link = link

    def _received(self, link: _Link, data: bytes) -> None:
        """Bytes from Redis: hand each batch its replies as soon as all of them are in."""
        if link.dropped:
            return
        link.last_read = asyncio.get_running_loop().time()
        pending = link.pending
        parser = link.parser
        try:
            parser.feed(data)
            while pending:
                reply = parser.gets()
                if reply is _NOT_ENOUGH_DATA:
                    break
                batch = pending[0]
                batch.replies.append(reply)
                if len(batch.replies) == batch.count:
                    pending.popleft()
                    if not batch.future.done():
                        batch.future.set_result(batch.replies)
            if not pending and parser.has_data():
                raise redis_errors.InvalidResponse(f"{self.name} sent a reply nothing was waiting for")
        except redis_errors.RedisError as err:
            self._drop(link, err)

    def _ended(self, link: _Link, error: BaseException | None = None) -> None:
        """The connection closed (from either end) or failed."""
        reason = f": {error}" if error is not None else ""
        self._drop(link, redis_errors.ConnectionError(f"connection to {self.name} closed{reason}"))

    def _watch(self, link: _Link) -> None:
        """The read timeout: fail the link when replies are owed and nothing arrived for ``timeout_s``."""
        link.watchdog = None
        if not link.pending or self.timeout_s is None:
            return
        loop = asyncio.get_running_loop()
        deadline = link.last_read + self.timeout_s
        if loop.time() >= deadline:
            self._drop(link, redis_errors.TimeoutError(f"Timeout reading from {self.name}"))
        else:
            link.watchdog = loop.call_at(deadline, self._watch, link)

    def _drop(self, link: _Link, error: redis_errors.RedisError) -> None:
        """Fail every batch waiting on ``link`` with ``error`` and let its connection go."""
        if self._link is link:
            self._link = None
        link.fail(error)
        if not link.dropped:
            link.dropped = True
            closing = asyncio.ensure_future(self._let_go(link.connection))
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)

    async def _let_go(self, connection: Any) -> None:
        try:
            await connection.disconnect()
        finally:
            released = self._release(connection)
            if released is not None:
                await released

    async def aclose(self) -> None:
        """Drop the connection (any waiting batch fails) and wait until it is let go."""
        link = self._link
        if link is not None:
            self._drop(link, redis_errors.ConnectionError(f"connection to {self.name} closed"))
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)


#: What hiredis returns while a reply is incomplete.
_NOT_ENOUGH_DATA = object()
