"""A local HTTP server standing in for the providers' get-call APIs and inTandem's VoiceCall API.

It serves the documented shapes (CallingBox ``GET /v1/calls/{id}``, Twilio's Call resource, the Vobiz
CDR, Goodbox ``call-details``; inTandem create and update), checks each API's documented
authentication, and records every request. Tests put call documents in the per-provider dicts and can
script the next answers of a route (``script("intandem.create", 429, {"Retry-After": "1"})``).
Standard library only: ``http.server`` on a free loopback port, in a thread.
"""

from __future__ import annotations

import base64
import re
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import orjson

#: The documented inTandem enums (the VoiceCall create/update pages): upper-case, case-sensitive.
INTANDEM_DIRECTIONS = {"INBOUND", "OUTBOUND"}
INTANDEM_STATUSES = {
    "INCOMING_CALL",
    "ANSWERED_BY_STAFF",
    "MISSED",
    "ANSWERED_BY_CALLS_PROVIDER",
    "MISSED_CALL_HANDLED",
    "VOICEMAIL_RECEIVED",
}
INTANDEM_CREATE_REQUIRED = (
    "staff_uid",
    "client_uid",
    "from_number",
    "to_number",
    "direction",
    "status",
    "rate",
    "provider",
    "source_identifier",
    "external_id",
    "business_uid",
)
#: The update page's required fields, as far as the page was read: price (a string) and duration
#: (seconds, a number) join the others; external id and business uid are not listed there.
INTANDEM_UPDATE_REQUIRED = (
    "staff_uid",
    "client_uid",
    "from_number",
    "to_number",
    "direction",
    "status",
    "rate",
    "price",
    "provider",
    "source_identifier",
    "duration",
)
INTANDEM_PATH = "/platform/v1/voice_calls"

Answer = tuple[int, dict[str, str], Any]


@dataclass
class Recorded:
    """One request the server received."""

    route: str
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return orjson.loads(self.body) if self.body else None


@dataclass
class Credentials:
    """What each stand-in API accepts."""

    callingbox_api_key: str = "sk_test_callingbox"
    twilio_account_sid: str = "AC" + "0" * 32
    twilio_auth_token: str = "twilio-token"
    vobiz_auth_id: str = "MA_TESTAUTH"
    vobiz_auth_token: str = "vobiz-token"
    goodbox_api_key: str = "gb-key"
    goodbox_api_secret: str = "gb-secret"
    intandem_token: str = "intandem-token"


@dataclass
class ProviderApi:
    """The server's state: documents to serve, scripted answers, and the requests it received."""

    credentials: Credentials = field(default_factory=Credentials)
    callingbox: dict[str, dict[str, Any]] = field(default_factory=dict)
    twilio: dict[str, dict[str, Any]] = field(default_factory=dict)
    vobiz: dict[str, dict[str, Any]] = field(default_factory=dict)
    goodbox: dict[str, dict[str, Any]] = field(default_factory=dict)
    intandem: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Call ids whose get-call requests always answer this HTTP status (an outage for one call).
    failing: dict[str, int] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    scripted: dict[str, deque[Answer]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    # -- test controls ------------------------------------------------------------------------------

    def script(self, route: str, status: int, headers: dict[str, str] | None = None, body: Any = None) -> None:
        """Answer the next request of ``route`` with this, before serving normally again."""
        with self.lock:
            self.scripted.setdefault(route, deque()).append((status, headers or {}, body))

    def received(self, route: str) -> list[Recorded]:
        with self.lock:
            return [request for request in self.requests if request.route == route]

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> ProviderApi:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                api.handle(self)

            def do_POST(self) -> None:
                api.handle(self)

            def do_PUT(self) -> None:
                api.handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # -- dispatch -----------------------------------------------------------------------------------

    ROUTES: tuple[tuple[str, str, re.Pattern[str]], ...] = (
        ("callingbox.get", "GET", re.compile(r"^/v1/calls/(?P<id>[^/]+)$")),
        (
            "twilio.get",
            "GET",
            re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Calls/(?P<id>[^/]+)\.json$"),
        ),
        ("vobiz.cdr", "GET", re.compile(r"^/api/v1/Account/(?P<account>[^/]+)/cdr/(?P<id>[^/]+)$")),
        ("goodbox.get", "GET", re.compile(r"^/ca/api/v1/call-details$")),
        ("intandem.create", "POST", re.compile(rf"^{INTANDEM_PATH}$")),
        ("intandem.update", "PUT", re.compile(rf"^{INTANDEM_PATH}/(?P<id>[^/]+)$")),
    )

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        route, params = "unknown", {}
        for name, method, pattern in self.ROUTES:
            found = pattern.match(parts.path)
            if found and method == handler.command:
                route, params = name, {key: unquote(value) for key, value in found.groupdict().items()}
                break
        recorded = Recorded(
            route=route,
            method=handler.command,
            path=parts.path,
            query=parse_qs(parts.query),
            headers={key.lower(): value for key, value in handler.headers.items()},
            body=body,
        )
        with self.lock:
            self.requests.append(recorded)
            queue = self.scripted.get(route)
            scripted = queue.popleft() if queue else None
        call_id = params.get("id") or (recorded.query.get("id") or [""])[0]
        if scripted is not None:
            status, headers, document = scripted
        elif route.endswith((".get", ".cdr")) and call_id in self.failing:
            status, headers, document = self.failing[call_id], {}, {"error": "unavailable"}
        elif route == "unknown":
            status, headers, document = 404, {}, {"error": "no such route"}
        else:
            status, headers, document = getattr(self, "_" + route.replace(".", "_"))(recorded, params)
        payload = orjson.dumps(document) if document is not None else b""
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    # -- get-call APIs ------------------------------------------------------------------------------

    def _callingbox_get(self, request: Recorded, params: dict[str, str]) -> Answer:
        if request.headers.get("authorization") != f"Bearer {self.credentials.callingbox_api_key}":
            return 401, {}, {"error": {"message": "Invalid API key"}}
        call = self.callingbox.get(params["id"])
        if call is None:
            return 404, {}, {"error": {"message": "Call not found"}}
        return 200, {}, call

    def _twilio_get(self, request: Recorded, params: dict[str, str]) -> Answer:
        expected = base64.b64encode(
            f"{self.credentials.twilio_account_sid}:{self.credentials.twilio_auth_token}".encode()
        ).decode()
        if request.headers.get("authorization") != f"Basic {expected}":
            return 401, {}, {"code": 20003, "message": "Authenticate", "status": 401}
        call = self.twilio.get(params["id"])
        if call is None or params["account"] != self.credentials.twilio_account_sid:
            return 404, {}, {"code": 20404, "message": "The requested resource was not found", "status": 404}
        return 200, {}, call

    def _vobiz_cdr(self, request: Recorded, params: dict[str, str]) -> Answer:
        if (
            request.headers.get("x-auth-id") != self.credentials.vobiz_auth_id
            or request.headers.get("x-auth-token") != self.credentials.vobiz_auth_token
            or params["account"] != self.credentials.vobiz_auth_id
        ):
            return 401, {}, {"error": "authentication failed"}
        cdr = self.vobiz.get(params["id"])
        if cdr is None:
            return 404, {}, {"error": "CDR not found"}
        return 200, {}, cdr

    def _goodbox_get(self, request: Recorded, _params: dict[str, str]) -> Answer:
        if (
            request.headers.get("x-api-key") != self.credentials.goodbox_api_key
            or request.headers.get("x-api-secret") != self.credentials.goodbox_api_secret
        ):
            return 401, {}, {"message": "Unauthorized"}
        call = self.goodbox.get((request.query.get("id") or [""])[0])
        if call is None:
            return 404, {}, {"message": "Call not found"}
        return 200, {}, {"data": call}

    # -- inTandem VoiceCall -------------------------------------------------------------------------

    def _intandem_problems(self, request: Recorded, required: tuple[str, ...]) -> list[str]:
        if request.headers.get("authorization") != f"Bearer {self.credentials.intandem_token}":
            return ["authorization: Bearer token required"]
        if not request.headers.get("content-type", "").startswith("application/json"):
            return ["content-type must be application/json"]
        document = request.json
        if not isinstance(document, dict):
            return ["body must be a JSON object"]
        problems = [f"{name} is required" for name in required if document.get(name) in (None, "")]
        if document.get("direction") not in INTANDEM_DIRECTIONS:
            problems.append(f"direction must be one of {sorted(INTANDEM_DIRECTIONS)}")
        if document.get("status") not in INTANDEM_STATUSES:
            problems.append(f"status must be one of {sorted(INTANDEM_STATUSES)}")
        if document.get("provider") != "VONAGE":
            problems.append("provider must be VONAGE")
        for name in ("rate", "price"):
            if name in document and not isinstance(document[name], str):
                problems.append(f"{name} must be a string, not a number")
        if "duration" in document and (
            isinstance(document["duration"], bool) or not isinstance(document["duration"], int | float)
        ):
            problems.append("duration must be a number")
        return problems

    def _intandem_create(self, request: Recorded, _params: dict[str, str]) -> Answer:
        problems = self._intandem_problems(request, INTANDEM_CREATE_REQUIRED)
        if problems:
            status = 401 if problems[0].startswith("authorization") else 422
            return status, {}, {"success": False, "errors": problems}
        uid = str(uuid.uuid4())
        record = {"uid": uid, **request.json}
        with self.lock:
            self.intandem[uid] = record
        return 201, {}, {"success": True, "data": record}

    def _intandem_update(self, request: Recorded, params: dict[str, str]) -> Answer:
        problems = self._intandem_problems(request, INTANDEM_UPDATE_REQUIRED)
        if problems:
            status = 401 if problems[0].startswith("authorization") else 422
            return status, {}, {"success": False, "errors": problems}
        with self.lock:
            if params["id"] not in self.intandem:
                return 404, {}, {"success": False, "errors": ["VoiceCall not found"]}
            self.intandem[params["id"]].update(request.json)
            record = dict(self.intandem[params["id"]])
        return 200, {}, {"success": True, "data": record}
