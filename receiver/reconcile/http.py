"""Outbound JSON over HTTP with the standard library: one request, its status, headers and parsed body.

Used by reconciliation (provider get-call APIs) and by sinks. Blocking `urllib` runs in a worker thread
(`asyncio.to_thread`) so the event loop keeps serving; no HTTP client library is needed at run time.
A non-2xx status is a normal answer here (callers decide what it means); only a failure to get any
answer raises `TransportError`.
"""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

USER_AGENT = "callstream/0.1"


class TransportError(Exception):
    """No HTTP answer: connection refused or reset, DNS failure, timeout."""


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """One HTTP answer. ``headers`` are lower-cased; ``document`` is the JSON body, or None if not JSON."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def document(self) -> Any:
        try:
            return orjson.loads(self.body) if self.body else None
        except orjson.JSONDecodeError:
            return None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def request_sync(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    json: Any = None,
    timeout_s: float = 10.0,
) -> HttpResponse:
    """Send one request and return the answer, whatever its status."""
    if not url.startswith(("https://", "http://")):
        raise TransportError(f"unsupported URL scheme in {_host(url)!r}")
    data = None if json is None else orjson.dumps(json)
    all_headers = {"Accept": "application/json", "User-Agent": USER_AGENT, **(headers or {})}
    if data is not None:
        all_headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, headers=all_headers, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 - scheme checked
            return HttpResponse(int(response.status), _lower(response.headers.items()), response.read())
    except urllib.error.HTTPError as err:
        with err:
            return HttpResponse(int(err.code), _lower(err.headers.items()), err.read())
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        reason = getattr(err, "reason", None) or err
        # Only the host is named: paths and queries may carry account ids or tokens.
        raise TransportError(f"{method} {_host(url)}: {reason}") from err


async def request(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    json: Any = None,
    timeout_s: float = 10.0,
) -> HttpResponse:
    """`request_sync` in a worker thread."""
    return await asyncio.to_thread(request_sync, method, url, headers=headers, json=json, timeout_s=timeout_s)


def _lower(items: Any) -> dict[str, str]:
    return {str(name).lower(): str(value) for name, value in items}


def _host(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc or "(no host)"
