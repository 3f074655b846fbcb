"""ASGI middleware around every HTTP request: request id, per-request log context, access line, metrics.

The request id is the caller's ``X-Request-Id`` when it is a plausible id (1-128 characters of letters,
digits and ``._:-``), else a new random one; it is echoed in the response's ``X-Request-Id`` header and
bound to every log line of the request. The access line (logger ``callstream.access``, INFO) carries
method, path (never the query string), route, status and duration, plus whatever the request bound:
``source``, ``call_id``, ``outcome``.
"""

from __future__ import annotations

import logging
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

access_log = logging.getLogger("callstream.access")


def request_id_from(scope: Scope) -> str:
    """The caller's request id when usable, else a fresh one."""
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER:
            text: str = value.decode("latin-1")
            if _VALID_REQUEST_ID.fullmatch(text):
                return text
            break
    return uuid.uuid4().hex


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
            self.metrics.request(template, scope["method"], status, elapsed)
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(
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
