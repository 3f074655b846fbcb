"""Structured logs as an operator reads them: one JSON object per line with the request's id and call id,
readable text on a terminal, and never a secret."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
import redis.asyncio
from starlette.testclient import TestClient

from receiver import logs
from receiver.app import create_app
from receiver.embedded import free_port
from receiver.settings import Secret
from statemachine.machine import decide
from statemachine.states import Trigger
from tests.conftest import MakeSettings, signed_source

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
RING = b"CallUUID=log-1&From=14155551234&To=919876543210&Event=Ring&CallStatus=ringing"
SIGNING_SECRET = "signing-secret-7f3a91"
OPERATOR_TOKEN = "operator-token-5c2e08"
HEADER_SECRET = "api-key-value-d41d8c"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def capture() -> Iterator[Callable[..., io.StringIO]]:
    """Install the service's log configuration on a buffer (DEBUG, so nothing is filtered); restore after."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level, {name: logging.getLogger(name).level for name in logs.QUIET_LOGGERS})

    def install(stream: io.StringIO | None = None, **environ: str) -> io.StringIO:
        buffer = stream if stream is not None else io.StringIO()
        logs.configure(buffer, environ={"CALLSTREAM_LOG_LEVEL": "DEBUG", **environ}, force=True)
        return buffer

    yield install
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved[0]:
        root.addHandler(handler)
    root.setLevel(saved[1])
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)


def json_lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in buffer.getvalue().splitlines() if line]


def access_lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [line for line in json_lines(buffer) if line["logger"] == "callstream.access"]


def test_access_line_carries_request_id_call_id_and_outcome(
    capture: Callable[..., io.StringIO], make_client: Callable[..., TestClient]
) -> None:
    """The caller's X-Request-Id is echoed and logged with the call id, source, outcome, status and timing."""
    buffer = capture(CALLSTREAM_LOG_FORMAT="json")
    response = make_client().post(
        "/webhooks/vobiz", content=RING, headers={**FORM, "X-Request-Id": "req-2026.05:abc_1"}
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "req-2026.05:abc_1"
    [line] = access_lines(buffer)
    assert {key: line[key] for key in ("level", "request_id", "source", "call_id", "outcome", "method", "path")} == {
        "level": "debug",
        "request_id": "req-2026.05:abc_1",
        "source": "vobiz",
        "call_id": "log-1",
        "outcome": "applied",
        "method": "POST",
        "path": "/webhooks/vobiz",
    }
    assert line["status"] == 200
    assert line["route"] == "/webhooks/{source}"
    assert line["message"] == "POST /webhooks/vobiz 200"
    assert isinstance(line["duration_ms"], float)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["ts"])


def test_default_level_logs_refused_and_failed_requests_only(
    capture: Callable[..., io.StringIO], make_client: Callable[..., TestClient], make_settings: MakeSettings
) -> None:
    """At INFO (the default) an accepted callback writes no line; a refused one writes one at info with its
    request id; a 503 writes one at warning."""
    buffer = capture(CALLSTREAM_LOG_FORMAT="json", CALLSTREAM_LOG_LEVEL="INFO")
    sources = {"vobiz": make_settings().sources["vobiz"], "signed": signed_source("signed", "vobiz", SIGNING_SECRET)}
    client = make_client(make_settings(sources))
    assert client.post("/webhooks/vobiz", content=RING, headers={**FORM, "X-Request-Id": "ok-1"}).status_code == 200
    refused = client.post("/webhooks/signed", content=RING, headers={**FORM, "X-Request-Id": "no-1"})
    assert refused.status_code == 401
    assert [(line["request_id"], line["level"], line["status"]) for line in access_lines(buffer)] == [
        ("no-1", "info", 401)
    ]
    dead = redis.asyncio.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1)
    with TestClient(create_app(make_settings(), redis=dead), raise_server_exceptions=False) as down:
        assert down.post("/webhooks/vobiz", content=RING, headers={**FORM, "X-Request-Id": "down-1"}).status_code == 503
    lines = json_lines(buffer)
    assert [
        (line["level"], line["status"]) for line in lines if line.get("request_id") == "down-1" and "status" in line
    ] == [("warning", 503)]
    [error] = [line for line in lines if line["logger"] == "callstream.pipeline"]
    assert (error["level"], error["request_id"], error["operation"]) == ("error", "down-1", "apply")


def test_request_id_is_generated_when_absent_or_unusable(
    capture: Callable[..., io.StringIO], make_client: Callable[..., TestClient]
) -> None:
    """Without a usable X-Request-Id (absent, spaces, too long) a fresh id is made, echoed and logged."""
    buffer = capture(CALLSTREAM_LOG_FORMAT="json")
    client = make_client()
    sent = [{}, {"X-Request-Id": "has spaces in it"}, {"X-Request-Id": "x" * 129}]
    echoed = [client.get("/healthz", headers=headers).headers["x-request-id"] for headers in sent]
    for request_id in echoed:
        assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    assert len(set(echoed)) == 3
    assert [line["request_id"] for line in access_lines(buffer)] == echoed


def test_dead_letter_warning_is_bound_to_its_request(
    capture: Callable[..., io.StringIO], make_client: Callable[..., TestClient]
) -> None:
    """A dead-lettered callback logs a warning with the reason, code and entry id, under the request's id."""
    buffer = capture(CALLSTREAM_LOG_FORMAT="json")
    response = make_client().post(
        "/webhooks/vobiz", content=b"Event=Ring&CallStatus=ringing", headers={**FORM, "X-Request-Id": "dl-1"}
    )
    assert response.status_code == 422
    [warning] = [line for line in json_lines(buffer) if line["level"] == "warning"]
    assert warning["message"] == "dead-lettered: CallUUID is missing"
    assert (warning["request_id"], warning["source"], warning["code"]) == ("dl-1", "vobiz", "missing_field")
    assert warning["deadletter_id"] == response.json()["error"]["deadletter_id"]
    [access] = access_lines(buffer)
    assert (access["status"], access["outcome"], access["error"]) == (422, "dead_lettered", "missing_field")


def test_secrets_never_reach_the_logs(
    capture: Callable[..., io.StringIO], make_client: Callable[..., TestClient], make_settings: MakeSettings
) -> None:
    """Signing secret, operator token and secret-bearing headers appear in no log line, on success or failure."""
    buffer = capture(CALLSTREAM_LOG_FORMAT="json")
    settings = make_settings(
        {"vobiz": signed_source("vobiz", "vobiz", SIGNING_SECRET)}, operator_token=Secret(OPERATOR_TOKEN)
    )
    client = make_client(settings)
    secret_headers = {"X-Api-Key": HEADER_SECRET, "Authorization": f"Bearer {OPERATOR_TOKEN}"}
    unsigned = client.post("/webhooks/vobiz", content=RING, headers={**FORM, **secret_headers})
    assert unsigned.status_code == 401
    forged = client.post(
        "/webhooks/vobiz",
        content=RING,
        headers={**FORM, "X-Vobiz-Signature-V3": SIGNING_SECRET, "X-Vobiz-Signature-V3-Nonce": "12345678901234567890"},
    )
    assert forged.status_code == 401
    assert client.get("/calls/vobiz/log-1", headers=secret_headers).status_code == 404
    assert client.get("/calls/vobiz/log-1", headers={"Authorization": f"Bearer {OPERATOR_TOKEN}x"}).status_code == 401
    assert client.get(f"/metrics?token={OPERATOR_TOKEN}").status_code == 401
    text = buffer.getvalue()
    assert len(access_lines(buffer)) == 5
    rejected = access_lines(buffer)[0]
    assert (rejected["outcome"], rejected["error"]) == ("rejected", "invalid_signature")
    assert "X-Vobiz-Signature-V3" in rejected["reason"]
    for secret in (SIGNING_SECRET, OPERATOR_TOKEN, HEADER_SECRET):
        assert secret not in text


def test_terminal_gets_readable_lines(
    capture: Callable[..., io.StringIO], make_client: Callable[..., TestClient]
) -> None:
    """Attached to a terminal (format auto), lines are text with key=value pairs, not JSON."""
    buffer = capture(Terminal())
    make_client().post("/webhooks/vobiz", content=RING, headers={**FORM, "X-Request-Id": "tty-1"})
    [line] = [line for line in buffer.getvalue().splitlines() if "callstream.access" in line]
    assert not line.startswith("{")
    assert re.match(r"\d\d:\d\d:\d\d\.\d{3} DEBUG +callstream\.access: POST /webhooks/vobiz 200  ", line)
    assert "request_id=tty-1" in line
    assert "call_id=log-1" in line


def test_console_lines_cannot_be_forged_from_the_path(
    capture: Callable[..., io.StringIO], make_client: Callable[..., TestClient]
) -> None:
    """A path carrying an encoded line break, ANSI escapes and a right-to-left override stays on its one
    line, escaped: a reader of the console log sees no forged line and no recoloured text."""
    buffer = capture(Terminal())
    path = "/nope%0A12:00:00.000%20INFO%20callstream.access:%20forged%1B%5B31m%E2%80%AE%E2%80%A8"
    assert make_client().post(path).status_code == 404
    text = buffer.getvalue()
    assert "\x1b" not in text and "\u202e" not in text and "\u2028" not in text
    lines = text.splitlines()
    assert all(re.match(r"\d\d:\d\d:\d\d\.\d{3} ", line) for line in lines)
    [line] = [line for line in lines if "callstream.access" in line]
    assert "nope\\n12:00:00.000 INFO callstream.access: forged\\x1b[31m\\u202e\\u2028" in line


def test_transitions_library_is_silenced(capture: Callable[..., io.StringIO]) -> None:
    """Even at DEBUG, firing the machine writes nothing from the transitions library."""
    buffer = capture(CALLSTREAM_LOG_FORMAT="json")
    assert decide("ringing", Trigger.ANSWERED).to_state == "answered"
    assert decide("completed", Trigger.RINGING).outcome.value == "late"
    assert [line for line in json_lines(buffer) if line["logger"].startswith("transitions")] == []


def test_configure_leaves_existing_logging_alone() -> None:
    """A program that configured logging itself keeps its handlers; only the noisy libraries are quietened."""
    root = logging.getLogger()
    mine = logging.StreamHandler(io.StringIO())
    saved = list(root.handlers)
    root.addHandler(mine)
    try:
        assert logs.configure(io.StringIO()) is None
        assert mine in root.handlers
        assert logging.getLogger("transitions").level == logging.WARNING
    finally:
        root.removeHandler(mine)
    assert root.handlers == saved


def test_uvicorn_configuration_routes_everything_through_one_json_handler() -> None:
    """The configuration given to uvicorn workers: JSON on stderr for everything, uvicorn's own handlers
    dropped, transitions at WARNING; the level comes from CALLSTREAM_LOG_LEVEL."""
    config = logs.dict_config({"CALLSTREAM_LOG_FORMAT": "json", "CALLSTREAM_LOG_LEVEL": "warning"})
    assert config["handlers"]["stderr"]["formatter"] == "json"
    assert config["root"] == {"handlers": ["stderr"], "level": "WARNING"}
    assert config["loggers"]["uvicorn"]["handlers"] == []
    assert config["loggers"]["transitions"]["level"] == "WARNING"
    assert logs.dict_config({"CALLSTREAM_LOG_FORMAT": "console"})["handlers"]["stderr"]["formatter"] == "console"
