"""``callstream replay``: send recorded scenarios to a running receiver, signed when given a secret."""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request
import uuid

import orjson

from receiver.routes.webhooks import REPLAY_HEADER
from receiver.scenario import Scenario


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("fixtures", nargs="+", help="scenario files (fixtures/<provider>/<scenario>.json)")
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="receiver base URL")
    parser.add_argument("--source", help="send to /webhooks/SOURCE instead of the scenario's path")
    parser.add_argument("--secret", help="sign each request as the provider would, with this secret")
    parser.add_argument("--shuffle", action="store_true", help="send the requests in a random order")
    parser.add_argument("--seed", type=int, help="seed for --shuffle")
    parser.add_argument(
        "--fresh-ids", action="store_true", help="suffix every call id so the scenario runs as new calls"
    )
    parser.add_argument(
        "--operator-token",
        help="mark the requests as an operator replay (processed again despite provider dedupe)",
    )


def send(url: str, body: bytes | None, headers: dict[str, str], method: str = "POST") -> tuple[int, bytes]:
    """One HTTP request; returns status and body, whatever the status."""
    request = urllib.request.Request(url, data=body, headers=headers, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - operator-given URL
            return int(response.status), response.read()
    except urllib.error.HTTPError as err:
        return int(err.code), err.read()


def run(args: argparse.Namespace) -> int:
    failures = 0
    for path in args.fixtures:
        scenario = Scenario.load(path)
        if args.source:
            scenario = scenario.with_source(args.source)
        if args.fresh_ids:
            scenario = scenario.renamed("-" + uuid.uuid4().hex[:8])
        if args.shuffle:
            scenario = scenario.shuffled(args.seed)
        print(f"# {scenario.name} ({scenario.provider}): {len(scenario.requests)} requests")
        for request in scenario.requests:
            url = args.url.rstrip("/") + request.target
            headers = request.signed_headers(scenario.provider, url, args.secret)
            if args.operator_token:
                headers[REPLAY_HEADER] = args.operator_token
            status, body = send(url, None if request.method == "GET" else request.body, headers, request.method)
            failures += status >= 300 and status != 202
            print(f"{status} {request.path} {_summary(body)}")
    return 1 if failures else 0


def _summary(body: bytes) -> str:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:200].decode("utf-8", errors="replace")
    if "results" in document:
        return " ".join(
            f"{r['call_id']} {r['event']}: {r['outcome']} {r['from_state']}->{r['to_state']}"
            for r in document["results"]
        )
    return orjson.dumps(document).decode()


def main_error(message: str) -> int:
    print(f"callstream replay: {message}", file=sys.stderr)
    return 2
