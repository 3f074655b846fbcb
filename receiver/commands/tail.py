"""``callstream tail``: follow the transitions stream, as a readable table or JSON lines."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import orjson
import redis

from statemachine.keys import DEFAULT_PREFIX, Keys
from statemachine.store import entry_fields


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--prefix", default=os.environ.get("CALLSTREAM_PREFIX", DEFAULT_PREFIX))
    parser.add_argument("--from", dest="start", default="0", help="entry id to start after ('$' for new only)")
    parser.add_argument("--no-follow", action="store_true", help="print what is there and stop")
    parser.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    parser.add_argument("--source", help="only this source")
    parser.add_argument("--provider", help="only this provider")
    parser.add_argument("--call", help="only this call id")
    parser.add_argument("--state", help="only entries reaching this state")


def matches(entry: dict[str, Any], args: argparse.Namespace) -> bool:
    wanted = {"source": args.source, "provider": args.provider, "call_id": args.call, "to_state": args.state}
    return all(value is None or entry.get(name) == value for name, value in wanted.items())


def render(entry_id: str, entry: dict[str, Any], as_json: bool) -> str:
    if as_json:
        return orjson.dumps({"id": entry_id, **entry}).decode()
    replay = " (replay)" if entry.get("replay") else ""
    return (
        f"{entry_id:<17} {entry.get('kind', ''):<10} {entry.get('source', ''):<12} "
        f"{entry.get('call_id', ''):<38} {entry.get('from_state', '')}->{entry.get('to_state', '')} "
        f"{entry.get('name', '')} v{entry.get('version', '')} a{entry.get('attempt', '')}{replay}"
    )


def run(args: argparse.Namespace) -> int:
    client = redis.Redis.from_url(args.redis_url)
    stream = Keys(args.prefix).transitions()
    last = args.start
    try:
        while True:
            block = None if args.no_follow else 5000
            replies: Any = client.xread({stream: last}, count=500, block=block)
            if not replies:
                if args.no_follow:
                    return 0
                continue
            for entry_id, fields in replies[0][1]:
                last = entry_id.decode()
                entry = entry_fields(fields)
                if matches(entry, args):
                    print(render(last, entry, args.json), flush=True)
    except KeyboardInterrupt:
        return 0
    except redis.exceptions.ConnectionError as err:
        print(f"callstream tail: cannot reach Redis at {args.redis_url}: {err}", file=sys.stderr)
        return 1
    finally:
        client.close()
