"""Streams, consumer groups and dead letters: lengths, lag and pending counts (``callstream stats``, console Health).

``lag`` is how many entries of the stream the group has not been handed yet. Redis 7 reports it in
XINFO GROUPS; on Redis 6.2 (or when Redis 7 cannot tell, after deletions) it is counted here from the
group's last delivered id, up to `LAG_SCAN_LIMIT` entries (shown as ``>N`` beyond that).
"""

from __future__ import annotations

from typing import Any

from redis import exceptions as redis_errors
from redis.asyncio import Redis

from receiver.queries import entry_order
from statemachine.keys import Keys
from statemachine.store import as_text

LAG_SCAN_LIMIT = 10_000


async def collect(redis: Redis, keys: Keys) -> dict[str, Any]:
    """Stream lengths, consumer groups and dead-letter lengths under ``keys``, as plain data."""
    streams = []
    for stream in keys.all_transitions():
        streams.append(await stream_stats(redis, stream))
    group_names = sorted({group["name"] for stream in streams for group in stream["groups"]})
    return {
        "prefix": keys.prefix,
        "streams": streams,
        "deadletter": {"stream": keys.deadletter(), "length": await redis.xlen(keys.deadletter())},
        "consumer_deadletters": [
            {
                "group": name,
                "stream": keys.consumer_deadletter(name),
                "length": await redis.xlen(keys.consumer_deadletter(name)),
            }
            for name in group_names
        ],
    }


async def stream_stats(redis: Redis, stream: str) -> dict[str, Any]:
    """Length, first and last ids, and each group with its consumers."""
    try:
        info = await redis.xinfo_stream(stream)
    except redis_errors.ResponseError:  # no such key
        return {"stream": stream, "exists": False, "length": 0, "first_id": None, "last_id": None, "groups": []}
    first, last = info.get("first-entry"), info.get("last-entry")
    summary: dict[str, Any] = {
        "stream": stream,
        "exists": True,
        "length": int(info["length"]),
        "first_id": as_text(first[0]) if first else None,
        "last_id": as_text(last[0]) if last else None,
        "groups": [],
    }
    for group in await redis.xinfo_groups(stream):
        summary["groups"].append(await group_stats(redis, stream, summary, group))
    return summary


async def group_stats(redis: Redis, stream: str, summary: dict[str, Any], group: dict[str, Any]) -> dict[str, Any]:
    name = as_text(group["name"])
    last_delivered = as_text(group["last-delivered-id"])
    lag = group.get("lag")
    consumers = await redis.xinfo_consumers(stream, name)
    return {
        "name": name,
        "pending": int(group["pending"]),
        "last_delivered_id": last_delivered,
        "lag": int(lag) if lag is not None else await counted_lag(redis, stream, summary, last_delivered),
        "consumers": [
            {"name": as_text(c["name"]), "pending": int(c["pending"]), "idle_ms": int(c["idle"])} for c in consumers
        ],
    }


async def counted_lag(redis: Redis, stream: str, summary: dict[str, Any], last_delivered: str) -> int | str:
    """Entries after ``last_delivered``, counted (``">N"`` past the scan limit)."""
    if summary["last_id"] is None or entry_order(last_delivered) >= entry_order(summary["last_id"]):
        return 0
    if summary["first_id"] is not None and entry_order(last_delivered) < entry_order(summary["first_id"]):
        return int(summary["length"])
    after = await redis.xrange(stream, min="(" + last_delivered, max="+", count=LAG_SCAN_LIMIT + 1) or []
    return len(after) if len(after) <= LAG_SCAN_LIMIT else f">{LAG_SCAN_LIMIT}"
