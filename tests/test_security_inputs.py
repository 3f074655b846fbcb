"""Validly signed callbacks whose content sits at the edges: event times UTC cannot hold, and call ids with
characters that reorder or break the text an operator reads. Signed with the official SDKs (twilio's
RequestValidator, PyJWT as Vonage's SDK uses it), through the real app and a real Redis.

Against a receiver without these fixes the times gave a 500 with nothing kept, and the ids were accepted.
"""

from __future__ import annotations

import hashlib
import time
import urllib.parse
from collections.abc import Callable

import jwt
import orjson
import pytest
import redis
from starlette.testclient import TestClient
from twilio.request_validator import RequestValidator

from statemachine.keys import Keys
from tests.conftest import MakeSettings, signed_source

Client = Callable[..., TestClient]
TWILIO_TOKEN = "TWILIOAUTHTOKEN0123456789abcdef"
VONAGE_SECRET = "vonage-signature-secret-0123456789abcdef"


@pytest.fixture
def client(make_client: Client, make_settings: MakeSettings) -> TestClient:
    sources = {
        "tw": signed_source("tw", "twilio", TWILIO_TOKEN),
        "vg": signed_source("vg", "vonage", VONAGE_SECRET),
    }
    return make_client(make_settings(sources))


def twilio_post(client: TestClient, params: dict[str, str]) -> object:
    signature = RequestValidator(TWILIO_TOKEN).compute_signature("http://testserver/webhooks/tw", params)
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature}
    return client.post("/webhooks/tw", content=urllib.parse.urlencode(params).encode(), headers=headers)


def vonage_post(client: TestClient, document: dict[str, str]) -> object:
    body = orjson.dumps(document)
    claims = {"iat": int(time.time()), "payload_hash": hashlib.sha256(body).hexdigest()}
    token = jwt.encode(claims, VONAGE_SECRET, algorithm="HS256")
    return client.post(
        "/webhooks/vg", content=body, headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    )


@pytest.mark.parametrize("timestamp", ["Fri, 31 Dec 9999 23:59:59 -0500", "0001-01-01T00:00:00+01:00"])
def test_twilio_time_beyond_utc_is_unknown_not_a_500(
    timestamp: str, client: TestClient, r: redis.Redis, keys: Keys
) -> None:
    """A Timestamp that converted to UTC falls outside years 1–9999 is an unknown time: the event applies."""
    params = {"CallSid": "CA" + "7" * 32, "CallStatus": "ringing", "Timestamp": timestamp, "SequenceNumber": "0"}
    response = twilio_post(client, params)
    assert response.status_code == 200, response.text  # type: ignore[attr-defined]
    [(_id, fields)] = r.xrange(keys.transitions())
    assert orjson.loads(fields[b"event"])["occurred_at"] is None


@pytest.mark.parametrize("timestamp", ["9999-12-31T23:59:59.000-05:00", "0001-01-01T00:00:00.000+01:00"])
def test_vonage_time_beyond_utc_is_unknown_not_a_500(
    timestamp: str, client: TestClient, r: redis.Redis, keys: Keys
) -> None:
    response = vonage_post(client, {"uuid": "vg-edge-1", "status": "ringing", "timestamp": timestamp})
    assert response.status_code == 200, response.text  # type: ignore[attr-defined]
    assert r.hget(keys.call("vg", "vg-edge-1"), "state") == b"ringing"


@pytest.mark.parametrize(
    "call_id", ["call\u202eexe.gpj", "call\u2028forged", "call\x85next", "call\u00a0id", "call\u200bid"]
)
def test_call_id_with_unicode_control_or_separator_is_refused(
    call_id: str, client: TestClient, r: redis.Redis, keys: Keys
) -> None:
    """Right-to-left override, line and paragraph separators, NEL, no-break and zero-width spaces: 422
    ``invalid_field``, kept as a dead letter, no call created."""
    response = vonage_post(client, {"uuid": call_id, "status": "ringing", "timestamp": "2026-05-29T12:00:05.000Z"})
    assert (response.status_code, response.json()["error"]["code"]) == (422, "invalid_field")  # type: ignore[attr-defined]
    assert r.xlen(keys.transitions()) == 0 and r.xlen(keys.deadletter()) == 1
