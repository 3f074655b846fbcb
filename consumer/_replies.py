"""Stream command replies (as redis-py parses them with RESP2) turned into plain values.

XAUTOCLAIM answers in two shapes: Redis 6.2 replies ``[cursor, entries]`` and lists an entry that was
deleted from the stream while pending as a nil; Redis 7 replies ``[cursor, entries, deleted_ids]``
and removes deleted entries from the pending list itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from statemachine.store import as_text

#: (entry id, fields); fields are empty when the entry was deleted from the stream while pending.
Entry = tuple[str, dict[Any, Any]]


@dataclass(frozen=True, slots=True)
class Claimed:
    """What one XAUTOCLAIM call did."""

    cursor: str
    entries: list[Entry]
    deleted_ids: list[str] = field(default_factory=list)
    #: Entries claimed but gone from the stream, whose ids Redis 6.2 does not tell.
    unnamed_deleted: int = 0


def parse_autoclaim(reply: Any) -> Claimed:
    """Either XAUTOCLAIM reply shape (6.2: 2 elements, 7+: 3 elements)."""
    cursor, rows = reply[0], reply[1] or []
    entries: list[Entry] = []
    unnamed = 0
    for row in rows:
        if row is None or row[0] is None:
            unnamed += 1
        else:
            entries.append((as_text(row[0]), row[1] or {}))
    deleted = [as_text(entry_id) for entry_id in reply[2]] if len(reply) > 2 and reply[2] else []
    return Claimed(cursor=as_text(cursor), entries=entries, deleted_ids=deleted, unnamed_deleted=unnamed)


def parse_read(reply: Any) -> list[tuple[str, list[Entry]]]:
    """An XREADGROUP reply as (stream, entries) pairs; a deleted pending entry has empty fields."""
    if not reply:
        return []
    return [
        (as_text(stream), [(as_text(entry_id), fields or {}) for entry_id, fields in rows if entry_id is not None])
        for stream, rows in reply
    ]
