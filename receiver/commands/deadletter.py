"""``callstream deadletter list|show ID|redrive [ID...|--all]``: the receiver's dead-letter stream.

Redriving runs a kept request through the pipeline again (no signature check: it was verified when it
arrived; provider dedupe skipped, as for an operator replay) with its source as configured *now*, so a
fixed configuration or a newer release can process it. On success the entry is removed; when it fails
again the pipeline keeps it anew with the new reason and the old entry is removed, so each request is
in the stream once. Header values that carry credentials are masked when shown.
"""

from __future__ import annotations

import argparse
import hmac
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from redis.asyncio import Redis

from receiver import deadletter
from receiver.commands import connection
from receiver.commands.calls import iso_ms
from receiver.commands.connection import Target, Work
from receiver.deadletter import DeadLetter
from receiver.delivery import Delivery
from receiver.errors import ReceiverError, http_error
from receiver.pipeline import Pipeline
from receiver.settings import Source
from statemachine.store import CallStore

#: Header names (lower-case) whose values are credentials, and fragments that mark such names.
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
SECRET_NAME_PARTS = ("secret", "token", "password", "api-key", "apikey")
MASK = "***"
PAGE = 500


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
        letter = await deadletter.entry(redis, target.keys, args.entry_id)
        if letter is None:
            print(f"callstream deadletter: no dead letter {args.entry_id}", file=sys.stderr)
            return connection.EXIT_NOT_FOUND
        source = target.settings.sources.get(letter.source)
        document = {**letter.as_dict(), "dead_lettered_at_ms": letter.dead_lettered_at_ms}
        document["headers"] = masked_headers(letter.headers, secret_values(source))
        if args.json:
            print(orjson.dumps(document).decode())
            return 0
        for name in ("id", "source", "provider", "code", "reason", "method", "url"):
            print(f"{name:<9} {document[name]}")
        print(f"{'received':<9} {iso_ms(int(letter.received_at * 1000))}")
        print(f"{'kept':<9} {iso_ms(letter.dead_lettered_at_ms)}")
        print("headers")
        for header, value in document["headers"].items():
            print(f"  {header}: {value}")
        print("body")
        print(document["body"])
        return 0

    return work


def secret_values(source: Source | None) -> list[str]:
    return [secret.reveal() for secret in source.secrets] if source is not None else []


def masked_headers(headers: Mapping[str, str], secrets: Sequence[str]) -> dict[str, str]:
    """Headers with credential values replaced by ``***``: by name, or because the value holds a secret."""

    def sensitive(name: str, value: str) -> bool:
        lowered = name.lower()
        if lowered in SECRET_HEADERS or any(part in lowered for part in SECRET_NAME_PARTS):
            return True
        words = value.split()
        return any(hmac.compare_digest(word.encode(), secret.encode()) for word in words for secret in secrets)

    return {name: MASK if sensitive(name, value) else value for name, value in headers.items()}


# -- redrive ----------------------------------------------------------------------------------------


async def redrive_one(pipeline: Pipeline, target: Target, letter: DeadLetter) -> dict[str, Any]:
    """Process one dead letter again; returns what happened (``status``: redriven, failed or kept)."""
    report: dict[str, Any] = {"id": letter.entry_id, "source": letter.source}
    source = target.settings.sources.get(letter.source)
    if source is None:
        return {**report, "status": "kept", "reason": f"source {letter.source!r} is not configured"}
    delivery = Delivery(source, letter.body, letter.headers, letter.url, letter.received_at, letter.method)
    try:
        results = await pipeline.process(delivery, time.time(), replay=True, verified=True)
    except connection.REDIS_DOWN:
        raise
    except ReceiverError as err:
        _status, code = http_error(err)
        kept_as = err.details.get("deadletter_id")
        if kept_as is None:  # failed before the pipeline could keep it: keep the original
            return {**report, "status": "kept", "code": code, "reason": err.message}
        await deadletter.remove(pipeline.redis, target.keys, letter.entry_id)
        return {**report, "status": "failed", "code": code, "reason": err.message, "kept_as": kept_as}
    await deadletter.remove(pipeline.redis, target.keys, letter.entry_id)
    return {**report, "status": "redriven", "results": results}


def _redrive(args: argparse.Namespace) -> Work:
    async def work(target: Target, redis: Redis) -> int:
        pipeline = Pipeline(CallStore(redis, target.keys, target.settings.retention))
        letters: list[DeadLetter] = []
        missing = []
        if args.all:
            letters = await _everything(redis, target)
        else:
            for entry_id in args.entry_ids:
                letter = await deadletter.entry(redis, target.keys, entry_id)
                if letter is None:
                    missing.append(entry_id)
                else:
                    letters.append(letter)
        reports = [{"id": entry_id, "status": "missing"} for entry_id in missing]
        for letter in letters:
            reports.append(await redrive_one(pipeline, target, letter))
        for report in reports:
            print(orjson.dumps(report).decode() if args.json else describe(report))
        counts = {status: sum(r["status"] == status for r in reports) for status in STATUSES}
        if not args.json:
            print(", ".join(f"{count} {status}" for status, count in counts.items()))
        return 0 if counts["redriven"] == len(reports) else connection.EXIT_FAILED

    return work


async def _everything(redis: Redis, target: Target) -> list[DeadLetter]:
    """Every dead letter now in the stream (later arrivals wait for the next redrive)."""
    found: list[DeadLetter] = []
    start = "-"
    while True:
        page = await deadletter.entries(redis, target.keys, start, PAGE)
        found += page
        if len(page) < PAGE:
            return found
        start = "(" + page[-1].entry_id


STATUSES = ("redriven", "failed", "kept", "missing")


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
