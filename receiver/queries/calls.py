"""Finding calls: by call id across sources, the most recently changed, and those still in progress or stale.

``calls show`` and ``GET /calls`` look a call up by source and id (`CallStore.get_call`); the console also
searches by id alone and lists calls, with the functions here.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from receiver.queries import transitions
from receiver.settings import Settings
from receiver.sweeper import StuckCall, Sweeper
from statemachine.store import CallRecord, CallStore


async def find(store: CallStore, sources: Iterable[str], call_id: str) -> list[CallRecord]:
    """The call ``call_id`` in each of ``sources`` where it is known (a provider id is unique per source only)."""
    found = []
    for source in sorted(sources):
        record = await store.get_call(source, call_id)
        if record is not None:
            found.append(record)
    return found


async def recent(store: CallStore, limit: int, scan: int = 1000) -> list[dict[str, Any]]:
    """The calls whose latest entries are newest, newest first: the latest entry of each (its ``id``,
    ``source``, ``call_id``, ``provider``, ``to_state``, ``version``, ``attempt``), among the newest ``scan``
    entries of each partition."""
    seen: set[tuple[str, str]] = set()
    calls = []
    for entry in await transitions.latest(store.redis, store.keys, scan * store.keys.partitions, scan=scan):
        call = (entry["source"], entry["call_id"])
        if call not in seen:
            seen.add(call)
            calls.append(entry)
            if len(calls) >= limit:
                break
    return calls


async def in_progress(
    store: CallStore, settings: Settings, limit: int, *, stale_only: bool, now_ms: int | None = None
) -> tuple[list[StuckCall], bool]:
    """Calls in a non-terminal state (``stale_only``: only those the sweeper counts as stuck), oldest change
    first, and whether the scan saw every call (False when it stopped at ``limit``).

    Scans every call hash (SCAN, in batches): on a large keyspace this takes a while, as a sweep does.
    """
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    found: list[StuckCall] = []
    async for _scanned, batch in Sweeper(store, settings).stuck_calls(now_ms, stale_only=stale_only):
        found += batch
        if len(found) >= limit:
            return sorted(found, key=lambda call: call.updated_at_ms)[:limit], False
    return sorted(found, key=lambda call: call.updated_at_ms), True
