"""``callstream calls show SOURCE CALL_ID``: a call's current state and its history of transitions."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson
from redis.asyncio import Redis

from receiver.commands import connection
from receiver.commands.connection import Target
from receiver.timefmt import duration, iso_ms
from statemachine.store import CallRecord, CallStore


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    show = actions.add_parser("show", help="current state, attempt, version and history of one call")
    show.add_argument("source", help="the source (webhook path name) the call came in through")
    show.add_argument("call_id", help="the provider's call id")
    show.add_argument("--json", action="store_true", help="one JSON document instead of text")
    connection.add_arguments(show)


def run(args: argparse.Namespace) -> int:
    async def show(target: Target, redis: Redis) -> int:
        record = await CallStore(redis, target.keys, target.settings.retention).get_call(args.source, args.call_id)
        if record is None:
            print(f"callstream calls: no call {args.call_id!r} from source {args.source!r} (unknown or expired)",
                  file=sys.stderr)  # fmt: skip
            return connection.EXIT_NOT_FOUND
        print(orjson.dumps(record.as_dict()).decode() if args.json else render(record))
        return 0

    return connection.execute("calls", args, show)


def history_line(entry: dict[str, Any]) -> str:
    if entry.get("trimmed"):
        return f"  {entry['id']:<20} (trimmed from the stream)"
    replay = " replay" if entry.get("replay") else ""
    change = f"{entry.get('from_state', '')} -> {entry.get('to_state', '')}"
    return (
        f"  {entry['id']:<20} {entry.get('kind', ''):<10} {change:<26} {entry.get('name', ''):<18} "
        f"v{entry.get('version', '')} a{entry.get('attempt', '')}{replay}"
    )


def render(record: CallRecord) -> str:
    lines = [
        f"call      {record.source}/{record.call_id} ({record.provider or 'unknown provider'})",
        f"state     {record.state}   attempt {record.attempt}   version {record.version}",
        f"updated   {iso_ms(record.updated_at_ms) if record.updated_at_ms else '-'}   "
        f"expires in {duration(record.ttl_ms)}",
        f"history   {len(record.history)} entries",
    ]
    lines += [history_line(entry) for entry in record.history]
    return "\n".join(lines)
