"""A consumer group's dead-letter stream: transitions its handler gave up on, each with the error.

An entry keeps every field of the original transitions entry, plus where it came from
(``origin_stream``, ``origin_id``), who gave up (``group``, ``consumer``), after how many deliveries,
the error, and when (``at``, Unix ms). Nothing here expires; the stream is trimmed to `MAXLEN`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from statemachine.keys import Keys
from statemachine.store import as_text

MAXLEN = 100_000

#: Fields the dead-letter entry adds around the original entry's own fields.
META_FIELDS = ("origin_stream", "origin_id", "group", "consumer", "deliveries", "error", "at")


@dataclass(frozen=True, slots=True)
class GivenUp:
    """One dead-lettered transition."""

    entry_id: str
    origin_stream: str
    origin_id: str
    group: str
    consumer: str
    deliveries: int
    error: str
    at_ms: int
    fields: dict[str, str]


async def give_up(
    redis: Redis,
    key: str,
    *,
    stream: str,
    entry_id: str,
    fields: dict[Any, Any],
    group: str,
    consumer: str,
    deliveries: int,
    error: str,
) -> str:
    """Append a transition to the dead-letter stream ``key``; returns the new entry's id."""
    record: dict[Any, Any] = {name: value for name, value in fields.items() if as_text(name) not in META_FIELDS}
    record.update(
        {
            "origin_stream": stream,
            "origin_id": entry_id,
            "group": group,
            "consumer": consumer,
            "deliveries": deliveries,
            "error": error,
            "at": int(time.time() * 1000),
        }
    )
    return as_text(await redis.xadd(key, record, maxlen=MAXLEN, approximate=True))


async def entries(redis: Redis, keys: Keys, group: str, count: int = 100) -> list[GivenUp]:
    """The group's dead letters, oldest first."""
    rows = await redis.xrange(keys.consumer_deadletter(group), count=count)
    found = []
    for entry_id, raw in rows or []:
        values = {as_text(name): as_text(value) for name, value in (raw or {}).items()}
        found.append(
            GivenUp(
                entry_id=as_text(entry_id),
                origin_stream=values.pop("origin_stream", ""),
                origin_id=values.pop("origin_id", ""),
                group=values.pop("group", ""),
                consumer=values.pop("consumer", ""),
                deliveries=int(values.pop("deliveries", "0")),
                error=values.pop("error", ""),
                at_ms=int(values.pop("at", "0")),
                fields=values,
            )
        )
    return found
