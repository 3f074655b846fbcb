"""Steps of concurrent requests sent together: one pipelined write per Redis primary per event-loop turn.

`StepBatcher.run` queues one script call; the calls queued during one turn of the event loop go out on
the next turn, grouped by the primary that serves their keys (one group on a single Redis or behind
Sentinel, one per primary on Redis Cluster), each group as one write on that primary's `Lane`. Each step
is still its own atomic script with its own reply: an error reply fails only its caller; a connection
that fails fails every caller whose reply had not arrived, so no request is told its event was applied
when it may not have been.

On Redis Cluster a step answered ``MOVED`` (its slot moved, or its primary failed over) is sent again to
the node the refreshed slot map names, one answered ``ASK`` (a slot being migrated) to the named node after
``ASKING``; a primary that cannot be reached makes the client refresh the slot map and the batch is tried
again on the primary now serving each step, a few times, before its callers are failed.

With ``wait`` (``[redis] wait_replicas``) every batch is followed by ``WAIT replicas timeout`` on the same
connection, so its steps are acknowledged only once that many replicas of that primary have them.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from typing import Any

import redis as redis_py
from hiredis import pack_command
from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot

from statemachine.errors import StoreUnavailable
from statemachine.pipelined import Lane, SingleFlight

#: redis-py before 5.3 wants a command name for `get_connection`; later versions warn when given one.
_GET_CONNECTION_ARGS: tuple[str, ...] = ("EVALSHA",) if redis_py.VERSION < (5, 3) else ()

#: How often a cluster batch is tried again after its primary could not be reached (slot map refreshed
#: in between), and how often one step follows MOVED/ASK redirections, before its callers are failed.
CLUSTER_ATTEMPTS = 3
REDIRECTIONS = 5
#: Hash tags whose lane a cluster client remembers before it starts over (a call's keys share its partition's).
MAX_REMEMBERED_TAGS = 4096
#: Pause before trying a failed cluster batch again: a replica takes over after the cluster's node timeout.
CLUSTER_RETRY_PAUSE_S = 0.25

#: Failures of a cluster node's connection, after which the slot map is read again and the batch retried.
_CONNECTION_ERRORS = (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError)
#: Replies a batch cannot be answered with as they are: a lost script, a redirection, a demoted primary.
_NEEDS_MORE = (redis_errors.NoScriptError, redis_errors.AskError, redis_errors.ReadOnlyError)

Call = tuple[list[str], list[Any]]
Queued = tuple[list[str], list[Any], asyncio.Future[Any]]


class SingleTarget:
    """One primary (a single Redis, or the one Sentinel names): one lane on a connection of the client's pool."""

    def __init__(self, redis: Redis) -> None:
        pool = redis.connection_pool
        self.pool = pool
        self.lane = Lane(self._connect, pool.release, pool.connection_kwargs.get("socket_timeout"), "redis")

    async def _connect(self) -> Any:
        return await self.pool.get_connection(*_GET_CONNECTION_ARGS)  # type: ignore[no-untyped-call]

    def lane_for(self, key: str) -> Lane:
        return self.lane

    @property
    def ready(self) -> bool:
        return True

    async def refresh(self) -> None:
        """Nothing to look up again: a Sentinel-managed connection finds the primary when it reconnects."""

    async def aclose(self) -> None:
        await self.lane.aclose()


class ClusterTargets:
    """Redis Cluster: one lane per primary, found from the client's slot map (refreshed on demand)."""

    def __init__(self, cluster: RedisCluster) -> None:
        self.cluster = cluster
        self.lanes: dict[str, Lane] = {}
        self._refreshing = SingleFlight()
        self._initialized = False
        self._by_tag: dict[str, Lane] = {}

    @property
    def ready(self) -> bool:
        return self._initialized

    def lane_for(self, key: str) -> Lane:
        """The lane of the primary serving ``key``'s slot (`SlotNotCoveredError` when none does).

        Remembered per hash tag (a call's keys all carry their partition's) until the slot map is read again.
        """
        # Redis's hash-tag rule: the text between the first "{" and the next "}", when not empty.
        start = key.find("{")
        end = key.find("}", start + 1) if start >= 0 else -1
        tag = key[start + 1 : end] if end > start + 1 else key
        lane = self._by_tag.get(tag)
        if lane is None:
            node = self.cluster.nodes_manager.get_node_from_slot(key_slot(key.encode()))
            lane = self.lanes.get(node.name)
            if lane is None:
                lane = self.lanes[node.name] = self._lane(node)
            if len(self._by_tag) >= MAX_REMEMBERED_TAGS:
                self._by_tag.clear()
            self._by_tag[tag] = lane
        return lane

    def lane_at(self, host: str, port: int) -> Lane:
        """The lane of the node at ``host:port`` (an ASK redirection's target)."""
        node = self.cluster.get_node(host=host, port=port)
        if node is None:  # a node the slot map does not know yet: reached with the client's settings
            node = ClusterNode(host, port, **self.cluster.get_connection_kwargs())  # type: ignore[arg-type]
        lane = self.lanes.get(node.name)
        if lane is None:
            lane = self.lanes[node.name] = self._lane(node)
        return lane

    @staticmethod
    def _lane(node: ClusterNode) -> Lane:
        async def connect() -> Any:
            connection = node.acquire_connection()
            if not connection.is_connected:
                try:
                    await connection.connect()  # type: ignore[no-untyped-call]
                except BaseException:
                    node.release(connection)
                    raise
            return connection

        def release(connection: Any) -> None:
            node.release(connection)

        return Lane(connect, release, node.connection_kwargs.get("socket_timeout"), node.name)

    async def refresh(self) -> None:
        """Read the slot map again (once, however many batches ask at the same time)."""
        await self._refreshing.run(self._read_slot_map)

    async def _read_slot_map(self) -> None:
        try:
            if not self._initialized:
                await self.cluster.initialize()
            else:
                await self.cluster.nodes_manager.initialize()
            self._initialized = True
        finally:
            # Whatever was remembered may be stale now, whether or not the map could be read.
            self._by_tag.clear()

    async def aclose(self) -> None:
        lanes, self.lanes = list(self.lanes.values()), {}
        await asyncio.gather(*(lane.aclose() for lane in lanes), return_exceptions=True)


Targets = SingleTarget | ClusterTargets


def targets_for(redis: Redis) -> Targets:
    """Where steps go for this client: its single primary, or the primaries of its cluster."""
    if isinstance(redis, RedisCluster):
        return ClusterTargets(redis)
    return SingleTarget(redis)


#: A turn's batch of this many calls or more means the loop is busy (see `StepBatcher.run`).
BUSY_BATCH = 2


class StepBatcher:
    """Sends the script calls queued during one turn of the event loop together, per primary.

    redis-py spends more CPU per command (pool checkout, retry wrapper, packing, parsing) than Redis spends
    running the script, so under concurrency one write of N calls costs far less than N calls. Calls
    queued while earlier batches are in flight go out in the next one, on the same connection: batches
    never wait for each other's replies.
    """

    def __init__(
        self,
        redis: Redis,
        sha: str,
        source: str,
        max_batch: int = 256,
        wait: tuple[int, int] | None = None,
    ) -> None:
        self.targets = targets_for(redis)
        self.sha = sha
        self.source = source
        self.max_batch = max_batch
        #: (replicas, timeout ms): after each batch, WAIT on the same connection until that many replicas
        #: have its writes, or fail the whole batch, so a 2xx survives the primary's crash and failover.
        self.wait = wait
        self._queue: list[Queued] = []
        self._tasks: set[asyncio.Task[None]] = set()
        #: Whether the last turn's batch was large: then a step waits for the end of its turn even when its
        #: primary is idle, so that a busy loop writes once per turn (see `run`).
        self._busy = False

    async def run(self, keys: list[str], args: list[Any]) -> Any:
        """Queue one script call and wait for its reply (or its error).

        Under light load, a call whose primary has nothing in flight goes out at once: Redis would otherwise
        sit idle until the end of the loop turn, while the requests of the turn wait for it. Other calls wait
        for the end of the turn and go together. Under heavy load (the last turn's batch held at least
        `BUSY_BATCH` calls) every call waits for the end of its turn: writing the turn's first call alone
        would cost Redis and the receiver a read and a write each for nothing, since the turn's batch
        follows a moment later.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        item = (keys, args, future)
        if not self._busy and not self._queue and self.targets.ready and self._idle(keys[0]):
            self._dispatch([item])
        else:
            self._queue.append(item)
            if len(self._queue) == 1:
                loop.call_soon(self._flush)
        return await future

    def _idle(self, key: str) -> bool:
        try:
            return self.targets.lane_for(key).idle
        except (redis_errors.RedisError, redis_errors.RedisClusterException):
            return False  # no primary serves the slot: the queued path reports it

    def _flush(self) -> None:
        queue, self._queue = self._queue, []
        self._busy = len(queue) >= BUSY_BATCH
        if self.targets.ready:
            self._dispatch(queue)
        else:
            self._spawn(self._dispatch_when_ready(queue))

    async def _dispatch_when_ready(self, queue: list[Queued]) -> None:
        try:
            await self.targets.refresh()
        except BaseException as err:
            _fail(queue, err)
            if not isinstance(err, Exception):
                raise
            return
        self._dispatch(queue)

    def _dispatch(self, queue: list[Queued]) -> None:
        """Group the calls by lane and write each group (in slices of ``max_batch``) at once.

        The replies are handed out from a callback on the write's future, without a task per batch; a
        batch that needs more (a connection to open, a script to load, a redirection, a retry) continues
        in a task.
        """
        groups: dict[Lane, list[Queued]] = {}
        lane_for = self.targets.lane_for
        for item in queue:
            try:
                lane = lane_for(item[0][0])
            except (redis_errors.RedisError, redis_errors.RedisClusterException) as err:  # no primary serves the slot
                if not item[2].done():
                    item[2].set_exception(err)
                continue
            groups.setdefault(lane, []).append(item)
        for lane, items in groups.items():
            for start in range(0, len(items), self.max_batch):
                batch = items[start : start + self.max_batch]
                calls = [(keys, args) for keys, args, _ in batch]
                future = lane.submit(*self._pack(calls))
                if future is None:
                    self._spawn(self._send(lane, batch))
                else:
                    future.add_done_callback(functools.partial(self._landed, lane, batch, calls))

    def _landed(self, lane: Lane, batch: list[Queued], calls: list[Call], future: asyncio.Future[list[Any]]) -> None:
        """The replies of a batch written by `_dispatch`: handed out, or the batch continued in a task."""
        if future.cancelled():
            _fail(batch, StoreUnavailable("interrupted"))
            return
        error = future.exception()
        if error is not None:
            retried = redis_errors.ConnectionError if isinstance(self.targets, SingleTarget) else _CONNECTION_ERRORS
            if isinstance(error, retried):  # tried once more, on a fresh connection (or the refreshed slot map)
                self._spawn(self._send(lane, batch, retry=False))
            else:
                _fail(batch, error)
            return
        try:
            replies = self._unpack(future.result(), calls)
        except Exception as err:  # not confirmed by the replicas in time
            _fail(batch, err)
            return
        if any(isinstance(reply, _NEEDS_MORE) for reply in replies):
            self._spawn(self._send(lane, batch, first=replies))
        else:
            _deliver(batch, replies)
        if self._queue and lane.idle:  # what queued up while this batch was out goes now, not at the turn's end
            self._flush()

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(
        self, lane: Lane, batch: list[Queued], *, first: list[Any] | None = None, retry: bool = True
    ) -> None:
        try:
            replies = await self._execute(lane, [(keys, args) for keys, args, _ in batch], first=first, retry=retry)
        except BaseException as err:  # the whole batch failed: so did every step in it
            _fail(batch, err)
            if not isinstance(err, Exception):
                raise
            return
        _deliver(batch, replies)

    async def _execute(
        self, lane: Lane, calls: list[Call], *, first: list[Any] | None = None, retry: bool = True
    ) -> list[Any]:
        """The replies of ``calls`` on ``lane`` (``first``: the replies of a write already made there); on a
        cluster, redirected and retried as needed."""
        if isinstance(self.targets, SingleTarget):
            if first is not None:
                return await self._after(lane, calls, first)
            return await self._on_lane(lane, calls, retry=retry)
        for attempt in range(CLUSTER_ATTEMPTS):
            try:
                if first is not None and attempt == 0:
                    replies = await self._after(lane, calls, first)
                else:
                    replies = await self._on_lane(lane, calls)
                break
            except _CONNECTION_ERRORS:
                if attempt == CLUSTER_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(CLUSTER_RETRY_PAUSE_S * attempt)
                await self.targets.refresh()
                lanes = {self.targets.lane_for(keys[0]) for keys, _ in calls}
                if len(lanes) > 1:  # the calls are now served by several primaries: one batch each
                    return await self._regrouped(calls)
                lane = lanes.pop()
        redirected = [index for index, reply in enumerate(replies) if isinstance(reply, redis_errors.AskError)]
        if redirected:
            again = await asyncio.gather(*(self._redirect(calls[index], replies[index]) for index in redirected))
            for index, reply in zip(redirected, again, strict=True):
                replies[index] = reply
        return replies

    async def _regrouped(self, calls: list[Call]) -> list[Any]:
        groups: dict[Lane, list[int]] = {}
        for index, (keys, _) in enumerate(calls):
            groups.setdefault(self.targets.lane_for(keys[0]), []).append(index)
        replies: list[Any] = [None] * len(calls)
        results = await asyncio.gather(
            *(self._execute(lane, [calls[index] for index in indexes]) for lane, indexes in groups.items())
        )
        for indexes, group_replies in zip(groups.values(), results, strict=True):
            for index, reply in zip(indexes, group_replies, strict=True):
                replies[index] = reply
        return replies

    async def _redirect(self, call: Call, error: redis_errors.AskError) -> Any:
        """One step answered MOVED or ASK, followed to where the cluster says its slot is served."""
        targets = self.targets
        assert isinstance(targets, ClusterTargets)
        reply: Any = error
        for _ in range(REDIRECTIONS):
            if isinstance(reply, redis_errors.MovedError):
                await targets.refresh()
                reply = (await self._on_lane(targets.lane_for(call[0][0]), [call]))[0]
            elif isinstance(reply, redis_errors.AskError):
                reply = (await self._on_lane(targets.lane_at(reply.host, reply.port), [call], asking=True))[0]
            else:
                return reply
        return redis_errors.TryAgainError(f"step still redirected after {REDIRECTIONS} redirections: {reply}")

    async def _on_lane(self, lane: Lane, calls: list[Call], *, asking: bool = False, retry: bool = True) -> list[Any]:
        """The calls' replies from one lane (see `_after`)."""
        return await self._after(lane, calls, await self._pipeline(lane, calls, asking=asking, retry=retry), asking)

    async def _after(self, lane: Lane, calls: list[Call], replies: list[Any], asking: bool = False) -> list[Any]:
        """``replies`` of ``calls`` from ``lane``, after loading the script there if that server lost it and
        sending those calls again; a demoted primary's connection is let go."""
        missing = [index for index, reply in enumerate(replies) if isinstance(reply, redis_errors.NoScriptError)]
        if missing:  # Redis restarted or its scripts were flushed: load ours and send those calls again
            await self._pipeline(lane, [], prefix=[("SCRIPT", "LOAD", self.source)])
            again = await self._pipeline(lane, [calls[index] for index in missing], asking=asking)
            for index, reply in zip(missing, again, strict=True):
                replies[index] = reply
        if any(isinstance(reply, redis_errors.ReadOnlyError) for reply in replies):
            # A demoted primary (failover): let the connection go, so the next batch finds the new one.
            await lane.aclose()
            if isinstance(self.targets, ClusterTargets):
                await self.targets.refresh()
        return replies

    def _pack(
        self, calls: Sequence[Call], *, asking: bool = False, prefix: Sequence[tuple[Any, ...]] = ()
    ) -> tuple[bytes, int]:
        """The calls as one write (``prefix`` commands first, ASKING before each call when ``asking``, WAIT
        after them with ``wait``), packed by hiredis in C, and the number of commands in it."""
        parts = [pack_command(command) for command in prefix]
        sha = self.sha
        for keys, args in calls:
            if asking:
                parts.append(pack_command(("ASKING",)))
            parts.append(pack_command(("EVALSHA", sha, len(keys), *keys, *args)))
        if self.wait is not None and calls:
            wait_command: tuple[Any, ...] = ("WAIT", *self.wait)
            parts.append(pack_command(wait_command))
        return b"".join(parts), len(parts)

    def _unpack(
        self,
        replies: list[Any],
        calls: Sequence[Call],
        *,
        asking: bool = False,
        prefix: Sequence[tuple[Any, ...]] = (),
    ) -> list[Any]:
        """The calls' own replies from a `_pack` write's (those of ``prefix`` commands are checked, those of
        ASKING left out); `StoreUnavailable` when fewer replicas than ``wait`` asks confirmed the write."""
        for reply in replies[: len(prefix)]:
            if isinstance(reply, Exception):
                raise reply
        replies = replies[len(prefix) :]
        if asking:
            replies = replies[1::2] + replies[-1:] if self.wait is not None and calls else replies[1::2]
        if self.wait is not None and calls:
            confirmed = replies.pop()
            redirected = all(isinstance(reply, redis_errors.AskError) for reply in replies)
            if (not isinstance(confirmed, int) or confirmed < self.wait[0]) and not redirected:
                # The steps ran on the primary but may not survive a failover: the provider must retry
                # (on this primary the retry is a duplicate; on a promoted replica it is applied again).
                # (When every step was redirected, none ran here, and this node's WAIT says nothing.)
                raise StoreUnavailable(f"{confirmed} of {self.wait[0]} replicas confirmed the write in time")
        return replies

    async def _pipeline(
        self,
        lane: Lane,
        calls: Sequence[Call],
        *,
        asking: bool = False,
        prefix: Sequence[tuple[Any, ...]] = (),
        retry: bool = True,
    ) -> list[Any]:
        """Send the calls in one write and read their replies in order: what redis-py's Pipeline does, less
        its per-command bookkeeping (redis-py's asyncio client packs in Python: ~8 % of the receiver's CPU)."""
        packed, count = self._pack(calls, asking=asking, prefix=prefix)
        replies = await lane.execute(packed, count, retry=retry)
        return self._unpack(replies, calls, asking=asking, prefix=prefix)

    async def aclose(self) -> None:
        """Let the dedicated connections go (steps still waiting fail)."""
        await self.targets.aclose()


def _deliver(batch: list[Queued], replies: list[Any]) -> None:
    for (_, _, future), reply in zip(batch, replies, strict=True):
        if future.done():  # the caller went away (client disconnected); its step ran regardless
            continue
        if isinstance(reply, Exception):
            future.set_exception(reply)
        else:
            future.set_result(reply)


def _fail(batch: list[Queued], err: BaseException) -> None:
    for _, _, future in batch:
        if not future.done():
            future.set_exception(err if isinstance(err, Exception) else StoreUnavailable("interrupted"))
