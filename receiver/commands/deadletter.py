"""``callstream deadletter list|show ID|redrive [ID...|--all]``: the receiver's dead-letter stream.

What redriving does, and which header values are masked when shown, is in `receiver.queries.deadletters`
(shared with the console).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson
from redis.asyncio import Redis

from receiver import deadletter
from receiver.commands import connection
from receiver.commands.connection import Target, Work
from receiver.logs import printable
from receiver.pipeline import Pipeline
from receiver.queries.deadletters import counts, find, masked, redrive
from receiver.timefmt import iso_ms
from statemachine.store import CallStore


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="dead letters, oldest first")
    listing.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    listing.add_argument("--from", dest="start", default="-", help="first entry id to list")
    listing.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    show = actions.add_parser("show", help="one dead letter with its request (credentials masked)")
    show.add_argument("entry_id")
    show.add_argument("--json", action="store_true", help="one JSON document instead of text")
    redrive = actions.add_parser("redrive", help="process kept requests again; remove those that succeed")
    redrive.add_argument("entry_ids", nargs="*", metavar="ID")
    redrive.add_argument("--all", action="store_true", help="every dead letter")
    redrive.add_argument("--json", action="store_true", help="one JSON line per entry")
    for sub in (listing, show, redrive):
        connection.add_arguments(sub)


def run(args: argparse.Namespace) -> int:
    if args.action == "redrive" and bool(args.entry_ids) == bool(args.all):
        print("callstream deadletter redrive: give entry ids or --all (not both)", file=sys.stderr)
        return connection.EXIT_USAGE
    if args.action == "list" and args.limit <= 0:
        print("callstream deadletter list: --limit must be positive", file=sys.stderr)
        return connection.EXIT_USAGE
    return connection.execute("deadletter", args, ACTIONS[args.action](args))


# -- list / show ------------------------------------------------------------------------------------


def _list(args: argparse.Namespace) -> Work:
    async def work(target: Target, redis: Redis) -> int:
        letters = await deadletter.entries(redis, target.keys, args.start, args.limit)
        if not args.json:
            print(f"{'ID':<17} {'DEAD-LETTERED':<24} {'SOURCE':<14} {'PROVIDER':<12} {'CODE':<22} REASON")
        for letter in letters:
            if args.json:
                print(orjson.dumps({**letter.summary(), "dead_lettered_at_ms": letter.dead_lettered_at_ms}).decode())
            else:
                print(
                    f"{letter.entry_id:<17} {iso_ms(letter.dead_lettered_at_ms):<24} {letter.source:<14} "
                    f"{letter.provider:<12} {letter.code:<22} {letter.reason}"
                )
        return 0

    return work


def _show(args: argparse.Namespace) -> Work:
    async def work(target: Target, redis: Redis) -> int:
        letter = await find(redis, target.keys, args.entry_id)
        if letter is None:
            print(f"callstream deadletter: no dead letter {args.entry_id}", file=sys.stderr)
            return connection.EXIT_NOT_FOUND
        document = masked(letter, target.settings)
        if args.json:
            print(orjson.dumps(document).decode())
            return 0
        # Everything here is what a sender chose: control characters (an ANSI escape in a body) are shown
        # escaped, never sent to the operator's terminal; the body keeps its line breaks.
        for name in ("id", "source", "provider", "code", "reason", "method", "url"):
            print(f"{name:<9} {printable(document[name])}")
        print(f"{'received':<9} {iso_ms(int(letter.received_at * 1000))}")
        print(f"{'kept':<9} {iso_ms(letter.dead_lettered_at_ms)}")
        print(f"{'auth':<9} {printable(document['authentication'])}")
        if document["truncated"]:
            print(
                f"{'dropped':<9} kept truncated: body {document['body_bytes']} bytes "
                f"(sha256 {document['body_sha256']}), {document['headers_dropped']} headers dropped"
            )
        print("headers (* not authenticated: anyone relaying the request could have set it)")
        unauthenticated = set(document["unauthenticated_headers"])
        for header, value in document["headers"].items():
            mark = "*" if header in unauthenticated else " "
            print(f" {mark}{printable(header)}: {printable(value)}")
        print("body")
        print("\n".join(printable(line) for line in document["body"].split("\n")))
        return 0

    return work


# -- redrive ----------------------------------------------------------------------------------------


def _redrive(args: argparse.Namespace) -> Work:
    async def work(target: Target, redis: Redis) -> int:
        pipeline = Pipeline(
            CallStore(redis, target.keys, target.settings.retention), deadletters=target.settings.deadletters
        )
        reports = await redrive(pipeline, target.settings, None if args.all else args.entry_ids)
        for report in reports:
            print(orjson.dumps(report).decode() if args.json else describe(report))
        summary = counts(reports)
        if not args.json:
            print(", ".join(f"{count} {status}" for status, count in summary.items()))
        return 0 if summary["redriven"] == len(reports) else connection.EXIT_FAILED

    return work


def describe(report: dict[str, Any]) -> str:
    """One readable line per redriven entry."""
    entry_id, status = report["id"], report["status"]
    if status == "redriven":
        outcomes = ", ".join(
            f"{r['call_id']} {r['event']}: {r['outcome']} {r['from_state']}->{r['to_state']}" for r in report["results"]
        )
        return f"{entry_id} redriven: {outcomes or 'no events'}"
    if status == "failed":
        return f"{entry_id} still failing ({report['code']}: {report['reason']}); kept as {report['kept_as']}"
    if status == "kept":
        return f"{entry_id} kept: {report['reason']}"
    return f"{entry_id} not found"


ACTIONS = {"list": _list, "show": _show, "redrive": _redrive}
