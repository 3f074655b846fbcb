"""``callstream stats``: stream lengths, consumer groups' lag and pending counts, dead-letter lengths.

The figures are gathered by `receiver.queries.stats` (shared with the console's Health page), which says
how ``lag`` is counted.
"""

from __future__ import annotations

import argparse
from typing import Any

import orjson
from redis.asyncio import Redis

from receiver.commands import connection
from receiver.commands.connection import Target
from receiver.queries.stats import collect


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON document instead of text")
    connection.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    async def work(target: Target, redis: Redis) -> int:
        document = await collect(redis, target.keys)
        print(orjson.dumps(document).decode() if args.json else render(document))
        return 0

    return connection.execute("stats", args, work)


def render(document: dict[str, Any]) -> str:
    lines = [f"prefix {document['prefix']}"]
    for stream in document["streams"]:
        if not stream["exists"]:
            lines.append(f"stream {stream['stream']}: missing")
            continue
        lines.append(
            f"stream {stream['stream']}: length {stream['length']}, "
            f"first {stream['first_id'] or '-'}, last {stream['last_id'] or '-'}"
        )
        if not stream["groups"]:
            lines.append("  no consumer groups")
        for group in stream["groups"]:
            lines.append(
                f"  group {group['name']}: lag {group['lag']}, pending {group['pending']}, "
                f"last delivered {group['last_delivered_id']}, consumers {len(group['consumers'])}"
            )
            for consumer in group["consumers"]:
                lines.append(
                    f"    consumer {consumer['name']}: pending {consumer['pending']}, idle {consumer['idle_ms']} ms"
                )
    dead = document["deadletter"]
    lines.append(f"deadletter {dead['stream']}: length {dead['length']}")
    for dead in document["consumer_deadletters"]:
        lines.append(f"consumer deadletter {dead['stream']}: length {dead['length']}")
    return "\n".join(lines)
