"""Reading the transitions streams without a consumer group: filters, the newest entries, what came after a
cursor, and counts over a time window. Used by ``callstream tail`` and the console's Live and Calls pages.

Every function covers all partitions (one stream each) and never blocks in Redis, so it works the same on
one server and on a Redis Cluster, where the partitions' streams live in different slots.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from redis.asyncio import Redis

from receiver.queries import entry_order
from statemachine.keys import Keys
from statemachine.states import is_terminal
from statemachine.store import as_text, entry_fields

#: The start of an empty stream, for cursors.
ORIGIN = "0-0"
KINDS = ("transition", "annotation")


@dataclass(frozen=True, slots=True)
class Filter:
    """Which entries to keep; each field left None matches anything. ``state`` is the state reached."""

    source: str | None = None
    provider: str | None = None
    call_id: str | None = None
    state: str | None = None
    kind: str | None = None

    @classmethod
    def of(cls, values: Mapping[str, str]) -> Filter:
        """From request parameters named like the fields; empty values match anything."""
        return cls(**{field.name: values.get(field.name) or None for field in fields(cls)})

    def matches(self, entry: Mapping[str, Any]) -> bool:
        wanted = (
            ("source", self.source),
            ("provider", self.provider),
            ("call_id", self.call_id),
            ("to_state", self.state),
            ("kind", self.kind),
        )
        return all(value is None or entry.get(name) == value for name, value in wanted)


def entry_ms(entry_id: str) -> int:
    """The time Redis added an entry (Unix ms), from its id."""
    return int(entry_id.split("-", 1)[0])


#: The flat fields of an entry, present (empty when missing) in every entry these functions return.
FLAT_FIELDS = ("kind", "source", "provider", "call_id", "from_state", "to_state", "name", "version", "attempt")


def _entry(stream: str, entry_id: Any, raw: Mapping[Any, Any]) -> dict[str, Any]:
    return {**dict.fromkeys(FLAT_FIELDS, ""), "id": as_text(entry_id), "stream": stream, **entry_fields(dict(raw))}


async def _each(redis: Redis, streams: Sequence[str], command: Callable[[Any, str], Any]) -> list[Any]:
    """``command(pipe, stream)`` for every stream, sent in one round trip (per node on a cluster); the replies."""
    async with redis.pipeline(transaction=False) as pipe:
        for stream in streams:
            command(pipe, stream)
        return list(await pipe.execute())


def _newest_first(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(entries, key=lambda entry: entry_order(entry["id"]), reverse=True)


async def latest(redis: Redis, keys: Keys, count: int, where: Filter | None = None, scan: int = 1000) -> list[Any]:
    """Up to ``count`` matching entries, newest first, among the newest ``scan`` entries of each partition."""
    streams = keys.all_transitions()
    replies = await _each(redis, streams, lambda pipe, stream: pipe.xrevrange(stream, "+", "-", count=scan))
    entries = [
        _entry(stream, entry_id, raw) for stream, rows in zip(streams, replies, strict=True) for entry_id, raw in rows
    ]
    return [entry for entry in _newest_first(entries) if where is None or where.matches(entry)][:count]


async def tips(redis: Redis, keys: Keys) -> dict[str, str]:
    """The newest entry id of each partition's stream (`ORIGIN` for an empty one): a cursor for `after`."""
    streams = keys.all_transitions()
    replies = await _each(redis, streams, lambda pipe, stream: pipe.xrevrange(stream, "+", "-", count=1))
    return {stream: as_text(rows[0][0]) if rows else ORIGIN for stream, rows in zip(streams, replies, strict=True)}


async def after(redis: Redis, cursors: dict[str, str], count: int = 200) -> list[dict[str, Any]]:
    """Entries added after each stream's cursor, oldest first; advances ``cursors`` past what it returns."""
    streams = list(cursors)
    replies = await _each(
        redis, streams, lambda pipe, stream: pipe.xrange(stream, "(" + cursors[stream], "+", count=count)
    )
    found = []
    for stream, rows in zip(streams, replies, strict=True):
        for entry_id, raw in rows:
            found.append(_entry(stream, entry_id, raw))
        if rows:
            cursors[stream] = as_text(rows[-1][0])
    return list(reversed(_newest_first(found)))


@dataclass(frozen=True, slots=True)
class WindowCounts:
    """What the streams received since ``since_ms``: transitions, annotations, and outcomes (terminal states
    reached) by state. ``complete`` is False when a partition had more than the scan limit."""

    since_ms: int
    transitions: int
    annotations: int
    outcomes: dict[str, int]
    complete: bool


async def window_counts(
    redis: Redis, keys: Keys, since_ms: int, where: Filter | None = None, limit: int = 20_000
) -> WindowCounts:
    """Count the matching entries added since ``since_ms``, looking at most at ``limit`` per partition."""
    replies = await _each(
        redis, keys.all_transitions(), lambda pipe, stream: pipe.xrange(stream, str(since_ms), "+", count=limit)
    )
    kinds: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    for rows in replies:
        for _entry_id, raw in rows:
            flat = {as_text(key): as_text(value) for key, value in raw.items() if as_text(key) != "event"}
            if where is not None and not where.matches(flat):
                continue
            kinds[flat.get("kind", "")] += 1
            state = flat.get("to_state", "")
            if flat.get("kind") == "transition" and is_terminal(state):
                outcomes[state] += 1
    return WindowCounts(
        since_ms=since_ms,
        transitions=kinds["transition"],
        annotations=kinds["annotation"],
        outcomes=dict(outcomes),
        complete=all(len(rows) < limit for rows in replies),
    )
