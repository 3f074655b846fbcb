"""``callstream replay``: send recorded scenarios to a running receiver, signed when given a secret.

``--url`` is the receiver's base URL (``http://127.0.0.1:8000``, or with the path it is mounted under
behind a proxy), or one webhook URL (``.../webhooks/SOURCE``), which sends every request to that source.
A source configured with ``public_url`` (``--config`` or ``$CALLSTREAM_CONFIG``) is signed for that URL,
as the provider signs it, while the request goes to ``--url``.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Mapping

import orjson

from receiver.providers import PROVIDERS
from receiver.routes.webhooks import REPLAY_HEADER, configured_url
from receiver.scenario import Scenario, ScenarioRequest
from receiver.settings import ConfigError, Settings, Source

WEBHOOKS = "/webhooks/"
EXIT_FAILED = 1
EXIT_USAGE = 2


class ReplayError(Exception):
    """Replay cannot go on; the message says why, in one line."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("fixtures", nargs="+", help="scenario files (fixtures/<provider>/<scenario>.json)")
    parser.add_argument(
        "--url",
        default="http://127.0.0.1:8000",
        help="the receiver's base URL, or one webhook URL (.../webhooks/SOURCE) (default http://127.0.0.1:8000)",
    )
    parser.add_argument("--source", help="send to /webhooks/SOURCE instead of the scenario's path")
    parser.add_argument("--secret", help="sign each request as the provider would, with this secret")
    parser.add_argument(
        "--config", help="configuration whose sources' public_url to sign for (default: $CALLSTREAM_CONFIG)"
    )
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
    """One HTTP request; returns status and body, whatever the status. OSError when nothing answers."""
    request = urllib.request.Request(url, data=body, headers=headers, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - operator-given URL
            return int(response.status), response.read()
    except urllib.error.HTTPError as err:
        return int(err.code), err.read()


def receiver_target(url: str) -> tuple[str, str | None]:
    """``url`` split into the receiver's base URL and the source its path names (``.../webhooks/SOURCE``)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ReplayError(f"--url {url!r} is not an http(s) URL such as http://127.0.0.1:8000", EXIT_USAGE)
    if parts.query or parts.fragment:
        raise ReplayError(f"--url {url!r}: a query or fragment cannot be replayed to; give the base URL", EXIT_USAGE)
    path = parts.path.rstrip("/")
    head, found, source = path.rpartition(WEBHOOKS)
    if not found or not source or "/" in source:
        head, source = path, ""
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, head, "", "")), source or None


def run(args: argparse.Namespace) -> int:
    try:
        return replay(args)
    except ReplayError as err:
        print(f"callstream replay: {err}", file=sys.stderr)
        return err.exit_code


def replay(args: argparse.Namespace) -> int:
    base, url_source = receiver_target(args.url)
    if url_source and args.source and url_source != args.source:
        raise ReplayError(f"--url names source {url_source!r} but --source names {args.source!r}", EXIT_USAGE)
    source = args.source or url_source
    try:
        sources = Settings.load(args.config, os.environ, list(PROVIDERS)).sources
    except ConfigError as err:
        raise ReplayError(str(err), EXIT_USAGE) from err
    failures = 0
    for path in args.fixtures:
        scenario = _scenario(path, args, source)
        print(f"# {scenario.name} ({scenario.provider}): {len(scenario.requests)} requests")
        for request in scenario.requests:
            url = base + request.target
            headers = request.signed_headers(scenario.provider, _signed_url(url, request, sources), args.secret)
            if args.operator_token:
                headers[REPLAY_HEADER] = args.operator_token
            try:
                status, body = send(url, None if request.method == "GET" else request.body, headers, request.method)
            except OSError as err:
                reason = getattr(err, "reason", err)  # urllib wraps the socket's error
                said = getattr(reason, "strerror", None) or str(reason)
                raise ReplayError(
                    f"cannot reach {url}: {said} (is callstream serve running there?)", EXIT_FAILED
                ) from None
            failures += status >= 300 and status != 202
            print(f"{status} {urllib.parse.urlsplit(url).path} {_summary(body)}")
    return EXIT_FAILED if failures else 0


def _signed_url(url: str, request: ScenarioRequest, sources: Mapping[str, Source]) -> str:
    """The URL the provider would sign: the source's configured ``public_url``, as the receiver checks it,
    else the URL the request goes to."""
    source = sources.get(request.path.removeprefix(WEBHOOKS))
    if source is None or not source.public_url:
        return url
    return configured_url(source.public_url, request.method, request.query)


def _scenario(path: str, args: argparse.Namespace, source: str | None) -> Scenario:
    """The scenario at ``path`` as the options change it."""
    try:
        scenario = Scenario.load(path)
    except OSError as err:
        raise ReplayError(f"cannot read {path}: {err.strerror}", EXIT_USAGE) from None
    except (ValueError, KeyError, TypeError) as err:
        raise ReplayError(f"{path} is not a scenario file ({err!r}); see receiver/scenario.py", EXIT_USAGE) from None
    if source:
        scenario = scenario.with_source(source)
    if args.fresh_ids:
        scenario = scenario.renamed("-" + uuid.uuid4().hex[:8])
    if args.shuffle:
        scenario = scenario.shuffled(args.seed)
    return scenario


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
