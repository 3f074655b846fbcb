"""Hostile and broken requests: each gets its precise status and a JSON error naming the problem.

Never a 500, never a traceback in the body. Requests that passed authentication but could not be
processed are kept in the dead-letter stream with the reason and the raw request; requests that did not
pass authentication (or name no source) leave nothing behind.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis
from starlette.testclient import TestClient

from receiver.providers import PROVIDERS, OutgoingRequest
from receiver.settings import Settings
from statemachine.keys import Keys
from tests.conftest import MakeSettings, signed_source
from tests.support.processes import Receiver

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
SECRET = "hostile-secret"
RING = b"Event=Ring&CallUUID=h-call-1&CallStatus=ringing"
ANSWERED = {"event": "call.answered", "created_at": "2026-05-29T12:00:07Z", "call": {"id": "h-call-2"}}

Client = Callable[..., TestClient]


@pytest.fixture
def client(make_client: Client) -> TestClient:
    """Every provider at /webhooks/<name>, unverified."""
    return make_client()


@pytest.fixture
def signed_client(make_client: Client, make_settings: MakeSettings) -> TestClient:
    sources = {name: signed_source(name, name, SECRET) for name in ("vobiz", "minivoice")}
    return make_client(make_settings(sources))


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The status, a JSON error body with ``code`` and a message, and no traceback."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert "Traceback" not in response.text and 'File "' not in response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code, error
    assert error["message"]
    return error


def dead_letters(r: redis.Redis, keys: Keys) -> list[dict[str, bytes]]:
    return [{k.decode(): v for k, v in fields.items()} for _id, fields in r.xrange(keys.deadletter())]


def only_keys(r: redis.Redis, keys: Keys) -> list[str]:
    return sorted(key.decode() for key in r.scan_iter(match=keys.everything(), count=1000))


def signed(provider: str, body: bytes, content_type: str, now: float | None = None) -> dict[str, str]:
    outgoing = OutgoingRequest(url=f"http://testserver/webhooks/{provider}", body=body, content_type=content_type)
    return {"content-type": content_type, **PROVIDERS[provider].sign(outgoing, SECRET, now or time.time())}


# Parse failures after authentication: status, code, and the request kept as a dead letter.
BROKEN_BODIES = {
    "malformed JSON": ("minivoice", JSON, b'{"event": "call.answered", "call": {', 400, "malformed_body"),
    "JSON array": ("minivoice", JSON, b'[{"event": "call.answered"}]', 400, "malformed_body"),
    "malformed form": ("vobiz", FORM, b"Event=Ring&CallUUID", 400, "malformed_body"),
    "invalid UTF-8 form": ("vobiz", FORM, b"Event=Ring&CallUUID=\xff\xfe", 400, "malformed_body"),
    "invalid UTF-8 JSON": ("minivoice", JSON, b'{"event": "call.answered\xff"}', 400, "malformed_body"),
    "deep nesting": (
        "minivoice",
        JSON,
        b'{"event": "call.answered", "call": {"id": "x"}, "variables": ' + b'{"a":' * 300 + b"1" + b"}" * 301,
        400,
        "malformed_body",
    ),
    "number overflow": ("minivoice", JSON, b'{"event": "call.answered", "call": {"id": 1e400}}', 400, "malformed_body"),
    "huge number as id": (
        "minivoice",
        JSON,
        b'{"event": "call.answered", "call": {"id": 123456789012345678901234567890}}',
        422,
        "invalid_field",
    ),
    "wrong content type": ("vobiz", "text/plain", RING, 415, "unsupported_content_type"),
    "missing content type": ("minivoice", "", orjson.dumps(ANSWERED), 415, "unsupported_content_type"),
    "missing call id": ("vobiz", FORM, b"Event=Ring&CallStatus=ringing", 422, "missing_field"),
    "missing call id (JSON)": ("minivoice", JSON, b'{"event": "call.answered", "call": {}}', 422, "missing_field"),
    "unknown event": ("vobiz", FORM, b"Event=Transfer&CallUUID=h-call-3", 202, "unknown_event"),
    "unknown event (JSON)": (
        "minivoice", JSON, b'{"event": "call.teleported", "call": {"id": "x"}}', 202, "unknown_event"
    ),
    "CRLF in id": ("vobiz", FORM, b"Event=Ring&CallUUID=a%0D%0AHSET%20x", 422, "invalid_field"),
    "space in id": ("vobiz", FORM, b"Event=Ring&CallUUID=a%20b", 422, "invalid_field"),
    "NUL in id": ("minivoice", JSON, b'{"event": "call.answered", "call": {"id": "a\\u0000b"}}', 422, "invalid_field"),
    "id over 256 chars": ("vobiz", FORM, b"Event=Ring&CallUUID=" + b"x" * 257, 422, "invalid_field"),
    "id of wrong type": (
        "minivoice", JSON, b'{"event": "call.answered", "call": {"id": {"$gt": ""}}}', 422, "invalid_field"
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BROKEN_BODIES))
def test_unprocessable_request_is_refused_and_dead_lettered(
    case: str, signed_client: TestClient, r: redis.Redis, keys: Keys
) -> None:
    """Signed correctly but unusable: precise status and code, the raw request kept with the reason."""
    provider, content_type, body, status, code = BROKEN_BODIES[case]
    headers = signed(provider, body, content_type)
    if not content_type:
        del headers["content-type"]
    response = signed_client.post(f"/webhooks/{provider}", content=body, headers=headers)
    error = assert_error(response, status, code)
    (letter,) = dead_letters(r, keys)
    assert letter["code"].decode() == code
    assert letter["reason"].decode() == error["message"]
    assert letter["body"] == body
    assert letter["source"].decode() == provider
    assert orjson.loads(letter["headers"]).get("content-type", "") == content_type
    assert error["deadletter_id"] == r.xrange(keys.deadletter())[0][0].decode()
    assert r.exists(keys.transitions()) == 0


def test_unknown_source_is_404_and_leaves_nothing(client: TestClient, r: redis.Redis, keys: Keys) -> None:
    """No such source: 404 naming it; nothing written, not even a dead letter."""
    response = client.post("/webhooks/nope", content=RING, headers={"content-type": FORM})
    error = assert_error(response, 404, "unknown_source")
    assert "nope" in error["message"]
    assert only_keys(r, keys) == []


@pytest.mark.parametrize(
    ("provider", "headers", "header"),
    [
        ("vobiz", {}, "X-Vobiz-Signature-V3"),
        ("vobiz", {"X-Vobiz-Signature-V3": "bm90LWl0"}, "X-Vobiz-Signature-V3-Nonce"),
        (
            "vobiz",
            {"X-Vobiz-Signature-V3": "bm90LWl0", "X-Vobiz-Signature-V3-Nonce": "1"},
            "X-Vobiz-Signature-V3-Nonce",
        ),
        (
            "vobiz",
            {"X-Vobiz-Signature-V3": "bm90LWl0", "X-Vobiz-Signature-V3-Nonce": "12345678901234567890"},
            "X-Vobiz-Signature-V3",
        ),
        ("minivoice", {}, "X-MiniVoice-Signature"),
        ("minivoice", {"X-MiniVoice-Signature": "v1=00", "X-MiniVoice-Timestamp": "soon"}, "X-MiniVoice-Timestamp"),
        ("minivoice", {"X-MiniVoice-Signature": "v1=00", "X-MiniVoice-Timestamp": "{now}"}, "X-MiniVoice-Signature"),
    ],
    ids=[
        "vobiz-missing",
        "vobiz-no-nonce",
        "vobiz-bad-nonce",
        "vobiz-wrong",
        "minivoice-missing",
        "minivoice-bad-ts",
        "minivoice-wrong",
    ],
)
def test_bad_or_missing_signature_is_401_naming_the_header(
    provider: str, headers: dict[str, str], header: str, signed_client: TestClient, r: redis.Redis, keys: Keys
) -> None:
    """Unauthenticated: 401 naming the failing header, never the expected value; nothing kept."""
    headers = {name: value.replace("{now}", str(int(time.time()))) for name, value in headers.items()}
    body = RING if provider == "vobiz" else orjson.dumps(ANSWERED)
    content_type = FORM if provider == "vobiz" else JSON
    response = signed_client.post(
        f"/webhooks/{provider}", content=body, headers={"content-type": content_type, **headers}
    )
    error = assert_error(response, 401, "invalid_signature")
    assert error["header"] == header
    assert SECRET not in response.text
    assert only_keys(r, keys) == []


def test_stale_timestamp_is_refused(signed_client: TestClient, r: redis.Redis, keys: Keys) -> None:
    """A correctly signed MiniVoice request from 10 minutes ago is outside the 300 s tolerance: 401."""
    body = orjson.dumps(ANSWERED)
    response = signed_client.post(
        "/webhooks/minivoice", content=body, headers=signed("minivoice", body, JSON, time.time() - 600)
    )
    error = assert_error(response, 401, "invalid_signature")
    assert error["header"] == "X-MiniVoice-Timestamp"
    assert only_keys(r, keys) == []


def test_replayed_nonce_with_another_body_is_refused(signed_client: TestClient, r: redis.Redis, keys: Keys) -> None:
    """Vobiz signs only URL + nonce: a captured nonce reused for another event is 401 replayed_request,
    while the same event again under the same nonce is an ordinary duplicate."""
    headers = signed("vobiz", RING, FORM)
    first = signed_client.post("/webhooks/vobiz", content=RING, headers=headers)
    assert first.json()["results"][0]["outcome"] == "applied"
    again = signed_client.post("/webhooks/vobiz", content=RING, headers=headers)
    assert again.status_code == 200 and again.json()["results"][0]["outcome"] == "duplicate"
    forged = b"Event=Hangup&CallUUID=h-call-1&HangupCause=USER_BUSY"
    response = signed_client.post("/webhooks/vobiz", content=forged, headers=headers)
    assert_error(response, 401, "replayed_request")
    other_call = b"Event=Ring&CallUUID=h-call-9"
    assert_error(signed_client.post("/webhooks/vobiz", content=other_call, headers=headers), 401, "replayed_request")
    assert [fields[b"to_state"] for _id, fields in r.xrange(keys.transitions())] == [b"ringing"]
    assert r.hget(keys.call("vobiz", "h-call-1"), "state") == b"ringing"
    assert r.exists(keys.call("vobiz", "h-call-9")) == 0


def test_body_over_the_limit_is_413(
    make_client: Client, make_settings: MakeSettings, r: redis.Redis, keys: Keys
) -> None:
    """Over max_body_bytes, declared or streamed in chunks: 413, nothing kept."""
    client = make_client(make_settings(max_body_bytes=1024))
    big = RING + b"&Padding=" + b"x" * 2000
    declared = client.post("/webhooks/vobiz", content=big, headers={"content-type": FORM})
    assert_error(declared, 413, "body_too_large")

    def chunks() -> Iterator[bytes]:
        yield RING
        for _ in range(10):
            yield b"&Padding=" + b"x" * 300

    chunked = client.post("/webhooks/vobiz", content=chunks(), headers={"content-type": FORM})
    assert_error(chunked, 413, "body_too_large")
    assert only_keys(r, keys) == []


BRACED_IDS = ["{0}", "}{", "{other}:x", "a*b?[c]", "call:vobiz:x", "ü-☎-id"]


@pytest.mark.parametrize("call_id", BRACED_IDS)
def test_key_syntax_in_ids_stays_data(call_id: str, client: TestClient, r: redis.Redis, keys: Keys) -> None:
    """Braces, globs and separators in a call id end up inside the call's own key, after the hash tag."""
    body = orjson.dumps({"event": "call.answered", "created_at": "2026-05-29T12:00:07Z", "call": {"id": call_id}})
    response = client.post("/webhooks/minivoice", content=body, headers={"content-type": JSON})
    assert response.status_code == 200, response.text
    prefix = keys.prefix
    assert only_keys(r, keys) == sorted([f"{prefix}:{{0}}:call:minivoice:{call_id}", f"{prefix}:{{0}}:transitions"])
    assert r.hget(f"{prefix}:{{0}}:call:minivoice:{call_id}", "state") == b"answered"


def test_form_numbers_out_of_range_are_data(client: TestClient, r: redis.Redis, keys: Keys) -> None:
    """Absurd numbers in a form callback are kept as data: the event is applied and published."""
    body = b"Event=Hangup&CallUUID=h-call-4&Duration=1e400&BillDuration=" + b"9" * 5000 + b"&HangupCauseCode=-1e308"
    response = client.post("/webhooks/vobiz", content=body, headers={"content-type": FORM})
    assert response.status_code == 200, response.text
    (entry,) = r.xrange(keys.transitions())
    assert entry[1][b"call_id"] == b"h-call-4"
    assert orjson.loads(entry[1][b"event"])["raw"]["Duration"] == "1e400"


# Against a real uvicorn: the limit is enforced before the whole body has been sent.


def read_status(sock: socket.socket) -> bytes:
    sock.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n", 1)[0]


@pytest.fixture
def live_receiver(tmp_path: Path, redis_url: str, prefix: str) -> Iterator[Receiver]:
    with Receiver(tmp_path, redis_url, prefix, workers=1).start() as receiver:
        yield receiver


@pytest.mark.slow
def test_oversized_body_is_refused_before_it_is_sent(live_receiver: Receiver) -> None:
    """A declared 50 MB body and an endless chunked body are both answered 413 after 256 KiB at most."""
    limit = Settings(sources={}).max_body_bytes
    head = f"POST /webhooks/vobiz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {FORM}\r\n"
    with socket.create_connection(("127.0.0.1", live_receiver.port)) as sock:
        sock.sendall(f"{head}Content-Length: 50000000\r\n\r\n".encode() + RING)
        assert read_status(sock) == b"HTTP/1.1 413 Request Entity Too Large"
    with socket.create_connection(("127.0.0.1", live_receiver.port)) as sock:
        sock.sendall(f"{head}Transfer-Encoding: chunked\r\n\r\n".encode())
        chunk = b"x" * 65536
        try:
            for _ in range(limit // len(chunk) + 2):  # never the terminating chunk
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the receiver may close as soon as it has answered
        assert read_status(sock) == b"HTTP/1.1 413 Request Entity Too Large"
