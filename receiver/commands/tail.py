"""``callstream tail``: follow the transitions stream, as a readable table or JSON lines.

Reads with XREAD (no consumer group, nothing acknowledged): any number of tails can watch at once
without disturbing consumers. Starts from the stream's beginning unless ``--from`` names an entry id
to start after (``$``: only entries added from now on).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson
import redis

from receiver import redis_client
from receiver.commands import connection
from receiver.queries.transitions import KINDS, Filter, entry_ms
from receiver.settings import ConfigError
from receiver.timefmt import iso_ms
from statemachine.states import CallState
from statemachine.store import entry_fields

STATES = ["new", *(state.value for state in CallState)]
COLUMNS = f"{'TIME (UTC)':<12} {'ID':<17} {'KIND':<10} {'SOURCE':<12} {'CALL':<38} TRANSITION"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="start", default="0", help="entry id to start after ('$' for new only)")
    parser.add_argument("--no-follow", action="store_true", help="print what is there and stop")
    parser.add_argument("--limit", type=int, help="stop after this many matching entries")
    parser.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    parser.add_argument("--source", help="only this source")
    parser.add_argument("--provider", help="only this provider")
    parser.add_argument("--call", help="only this call id")
    parser.add_argument("--state", choices=STATES, metavar="STATE", help="only entries reaching this state")
    parser.add_argument("--kind", choices=KINDS, help="only transitions or only annotations")
    parser.add_argument("--partition", type=int, default=0, help="which partition's transitions stream (default 0)")
    connection.add_arguments(parser)


def entry_time(entry_id: str) -> str:
    """The time Redis added an entry, from its id (milliseconds before the dash), as HH:MM:SS.mmm UTC."""
    return iso_ms(entry_ms(entry_id))[11:-1]  # the time part of YYYY-MM-DDTHH:MM:SS.mmmZ


def render(entry_id: str, entry: dict[str, Any], as_json: bool) -> str:
    if as_json:
        return orjson.dumps({"id": entry_id, **entry}).decode()
    replay = " (replay)" if entry.get("replay") else ""
    name, to_state = entry.get("name", ""), entry.get("to_state", "")
    if entry.get("kind") == "annotation":
        change = f"{to_state} ({name})"
    else:
        change = f"{entry.get('from_state', '')} -> {to_state}" + (f" [{name}]" if name and name != to_state else "")
    return (
        f"{entry_time(entry_id):<12} {entry_id:<17} {entry.get('kind', ''):<10} {entry.get('source', ''):<12} "
        f"{entry.get('call_id', ''):<38} {change} v{entry.get('version', '')} a{entry.get('attempt', '')}{replay}"
    )


def run(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit <= 0:
        print("callstream tail: --limit must be positive", file=sys.stderr)
        return connection.EXIT_USAGE
    try:
        target = connection.resolve(args)
    except ConfigError as err:
        print(f"callstream tail: {err}", file=sys.stderr)
        return connection.EXIT_USAGE
    connection.announce("tail", target)
    if not 0 <= args.partition < target.keys.partitions:
        print(f"callstream tail: --partition must be from 0 to {target.keys.partitions - 1}", file=sys.stderr)
        return connection.EXIT_USAGE
    # The socket timeout must outlast the XREAD block below.
    client = redis_client.sync_client(target.redis_url, timeout_s=connection.TIMEOUT_S * 2)
    stream = target.keys.transitions(args.partition)
    last = args.start
    where = Filter(args.source, args.provider, args.call, args.state, args.kind)
    printed = 0
    if not args.json:
        print(COLUMNS, flush=True)
    try:
        while True:
            block = None if args.no_follow else int(connection.TIMEOUT_S * 1000)
            replies: Any = client.xread({stream: last}, count=500, block=block)
            if not replies:
                if args.no_follow:
                    return 0
                continue
            for entry_id, fields in replies[0][1]:
                last = entry_id.decode()
                entry = entry_fields(fields)
                if where.matches(entry):
                    print(render(last, entry, args.json), flush=True)
                    printed += 1
                    if args.limit is not None and printed >= args.limit:
                        return 0
    except KeyboardInterrupt:
        return 0
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as err:
        print(
            f"callstream tail: cannot reach Redis at {connection.display_url(target.redis_url)}: {err}",
            file=sys.stderr,
        )
        return connection.EXIT_FAILED
    finally:
        client.close()
