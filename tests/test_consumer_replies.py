"""XAUTOCLAIM and XREADGROUP replies in the shapes redis-py hands them over, from Redis 6.2 and 7."""

from __future__ import annotations

from consumer._replies import Claimed, parse_autoclaim, parse_read


def test_autoclaim_reply_of_redis_6_2_counts_deleted_entries_it_does_not_name() -> None:
    """6.2: two elements; an entry deleted while pending comes back as nil."""
    reply = [b"0-0", [(b"1-0", {b"kind": b"transition"}), (None, None), (b"3-0", {b"kind": b"annotation"})]]
    assert parse_autoclaim(reply) == Claimed(
        cursor="0-0",
        entries=[("1-0", {b"kind": b"transition"}), ("3-0", {b"kind": b"annotation"})],
        deleted_ids=[],
        unnamed_deleted=1,
    )


def test_autoclaim_reply_of_redis_7_names_deleted_entries() -> None:
    """7: a third element lists ids Redis dropped from the pending list because they were deleted."""
    reply = [b"5-0", [(b"1-0", {b"a": b"1"})], [b"2-0"]]
    assert parse_autoclaim(reply) == Claimed(cursor="5-0", entries=[("1-0", {b"a": b"1"})], deleted_ids=["2-0"])


def test_autoclaim_reply_with_nothing_claimed() -> None:
    assert parse_autoclaim([b"0-0", [], []]) == Claimed(cursor="0-0", entries=[])


def test_read_reply_keeps_deleted_pending_entries_with_empty_fields() -> None:
    """Reading one's own pending entries returns a deleted one with no fields; no reply is no entries."""
    reply = [[b"s", [(b"1-0", {b"a": b"1"}), (b"2-0", {})]]]
    assert parse_read(reply) == [("s", [("1-0", {b"a": b"1"}), ("2-0", {})])]
    assert parse_read(None) == []
    assert parse_read([]) == []
