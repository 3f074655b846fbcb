"""``GET /console/live/events``: new transitions and annotations as server-sent events, from every partition.

The stream polls each partition's transitions stream (`POLL_S`) with non-blocking reads, so it works the
same on one server and on a Redis Cluster and never holds a Redis connection while waiting. Each event's
``id`` is the cursor of every partition (entry ids joined by commas): a browser that reconnects sends it
back as ``Last-Event-ID`` and resumes exactly after the last entry it got. A response ends after
`MAX_SECONDS` (the browser reconnects by itself), so no connection lives forever.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from receiver.console.access import Visitor
from receiver.console.render import HEADERS, call_url, entry_time
from receiver.queries import REDIS_DOWN, is_entry_id, transitions
from receiver.queries.transitions import Filter

if TYPE_CHECKING:
    from receiver.console.routes import Context

POLL_S = 0.5
KEEPALIVE_S = 15.0
MAX_SECONDS = 300.0
RETRY_MS = 1000
BATCH = 200


def encode_cursor(cursors: dict[str, str], streams: list[str]) -> str:
    return ",".join(cursors[stream] for stream in streams)


def decode_cursor(text: str, streams: list[str]) -> dict[str, str] | None:
    ids = text.split(",") if text else []
    if len(ids) != len(streams) or not all(is_entry_id(entry_id) for entry_id in ids):
        return None
    return dict(zip(streams, ids, strict=True))


def summary(entry: dict[str, Any]) -> dict[str, Any]:
    """What the live table shows of one entry (the page builds its row from this, as text)."""
    names = ("id", "kind", "source", "provider", "call_id", "from_state", "to_state", "name", "version", "attempt")
    return {
        **{name: entry.get(name) for name in names},
        "replay": bool(entry.get("replay")),
        "time": entry_time(entry["id"]),
        "url": call_url(str(entry.get("source", "")), str(entry.get("call_id", ""))),
    }


def message(event: str, data: Any, event_id: str | None = None) -> str:
    lines = [f"id: {event_id}"] if event_id is not None else []
    lines += [f"event: {event}", f"data: {orjson.dumps(data).decode()}"]
    return "\n".join(lines) + "\n\n"


async def events(request: Request, _visitor: Visitor, ctx: Context) -> Response:
    redis = ctx.redis(request)
    streams = ctx.settings.keys.all_transitions()
    where = Filter.of(request.query_params)
    given = request.headers.get("last-event-id") or request.query_params.get("after", "")
    cursors = decode_cursor(given, streams) or await transitions.tips(redis, ctx.settings.keys)

    async def stream() -> AsyncIterator[str]:
        yield f"retry: {RETRY_MS}\n\n"
        position = dict(cursors)
        started = last_sent = time.monotonic()
        while time.monotonic() - started < MAX_SECONDS:
            try:
                found = await transitions.after(redis, cursors, BATCH)
            except REDIS_DOWN as err:
                yield message("problem", {"message": f"Redis did not answer ({type(err).__name__}); retrying"})
                await asyncio.sleep(RETRY_MS / 1000)
                continue
            for entry in found:
                position[entry["stream"]] = entry["id"]
                if where.matches(entry):
                    yield message("entry", summary(entry), encode_cursor(position, streams))
                    last_sent = time.monotonic()
            if time.monotonic() - last_sent > KEEPALIVE_S:
                yield ": keep-alive\n\n"
                last_sent = time.monotonic()
            # Always a pause, even with more to read: an open view costs at most BATCH entries per POLL_S
            # however busy the streams are (it falls behind under a burst and catches up afterwards).
            await asyncio.sleep(POLL_S)

    return StreamingResponse(stream(), media_type="text/event-stream", headers={**HEADERS, "X-Accel-Buffering": "no"})
