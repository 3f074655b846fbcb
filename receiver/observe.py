"""ASGI middleware around every HTTP request: request id, per-request log context, access line, metrics.

The request id is the caller's ``X-Request-Id`` when it is a plausible id (1-128 characters of letters,
digits and ``._:-``), else a new unique one; it is echoed in the response's ``X-Request-Id`` header and
bound to every log line of the request. The access line (logger ``callstream.access``) carries method,
path (never the query string), route, status and duration, plus whatever the request bound: ``source``,
``call_id``, ``outcome``, ``error``. It is written at DEBUG for 2xx/3xx answers, INFO for 4xx and
WARNING for 5xx: at the default level every refused or failed request is logged and the hot path of
accepted callbacks writes nothing (their transitions are in the stream, their counts in the metrics).
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from receiver import logs
from receiver.metrics import Metrics

REQUEST_ID_HEADER = b"x-request-id"
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
#: Route label of requests no route matched, so unknown paths cannot create new series.
UNMATCHED = "(unmatched)"
#: Method label values; anything else (clients may send any token) is counted as OTHER.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

access_log = logging.getLogger("callstream.access")


class _Ids:
    """Unique request ids without a system call each: a random per-process prefix and a counter.

    The prefix is drawn again in a forked child, so two worker processes never share it.
    """

    def __init__(self) -> None:
        self.reset()
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        self.prefix = uuid.uuid4().hex[:16]
        self.counter = itertools.count()

    def next(self) -> str:
        return f"{self.prefix}{next(self.counter):016x}"


_IDS = _Ids()


def request_id_from(scope: Scope) -> str:
    """The caller's request id when usable, else a fresh one (32 hex digits)."""
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER:
            text: str = value.decode("latin-1")
            if _VALID_REQUEST_ID.fullmatch(text):
                return text
            break
    return _IDS.next()


def access_level(status: int) -> int:
    if status >= 500:
        return logging.WARNING
    return logging.INFO if status >= 400 else logging.DEBUG


class ObserveRequests:
    """Wraps the app: binds a log context per request, records metrics and writes the access line."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(scope)
        echoed = (b"x-request-id", request_id.encode())
        token = logs.new_context(request_id=request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), echoed]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            # The router records the matched route in the scope; its template keeps label values bounded.
            route = scope.get("route")
            template = getattr(route, "path", UNMATCHED) if route is not None else UNMATCHED
            method = scope["method"]
            self.metrics.request(template, method if method in METHODS else "OTHER", status, elapsed)
            level = access_level(status)
            if access_log.isEnabledFor(level):
                access_log.log(
                    level,
                    "%s %s %d",
                    scope["method"],
                    scope["path"],
                    status,
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "route": template,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 3),
                    },
                )
            logs.end_context(token)
