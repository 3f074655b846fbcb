"""CallingBox: the ``t=…,v1=…`` signature (hand-computed vector, rotation, several v1, stale t) and the
envelope's normalization, through the real app and a real Redis."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, cast

import orjson
import pytest
import redis
from starlette.testclient import TestClient

from receiver.delivery import Delivery
from receiver.errors import SignatureError
from receiver.providers import callingbox
from receiver.settings import Secret, Source
from receiver.signatures import timestamped_hmac
from statemachine.keys import Keys
from statemachine.store import entry_fields
from tests.conftest import MakeSettings, signed_source

SECRET = "whsec_test_secret"
CALL_ID = "3c90c3cc-0d44-4b50-8888-8dd25736052a"

#: Computed outside the code under test: printf '1776340800.{"id":"evt-1","type":"call.ringing"}' |
#: openssl dgst -sha256 -hmac 'whsec_test_secret'
VECTOR_T = "1776340800"
VECTOR_BODY = b'{"id":"evt-1","type":"call.ringing"}'
VECTOR_V1 = "63f61e0dc243194eb54d8b738688b3a7921e0fbe17f16a667d0328145fa0e916"


def envelope(event_type: str, status: str, **call: object) -> bytes:
    """A webhook as docs.callingbox.io/guides/webhook-events shows it."""
    document = {
        "id": "0b6f4c1e-8d2a-4f3b-9c7e-1a2b3c4d5e6f",
        "type": event_type,
        "created": 1776340800,
        "api_version": "2026-04",
        "data": {"call": {"id": CALL_ID, "status": status, "from_number": "+14155550100", **call}},
    }
    return orjson.dumps(document)


def delivery(headers: dict[str, str], body: bytes, *secrets: str) -> Delivery:
    source = Source(name="cb", provider="callingbox", secrets=tuple(Secret(s) for s in secrets))
    return Delivery(source, body, {k.lower(): v for k, v in headers.items()}, "http://testserver/webhooks/cb", 0.0)


def test_hand_computed_vector_verifies() -> None:
    """The signature of a known secret, t and body is the openssl-computed hex, and verifies."""
    assert timestamped_hmac.signature(SECRET, VECTOR_T, VECTOR_BODY) == VECTOR_V1
    header = {"CallingBox-Signature": f"t={VECTOR_T},v1={VECTOR_V1}"}
    assert callingbox.verify(delivery(header, VECTOR_BODY, SECRET), float(VECTOR_T) + 299).checked


@pytest.mark.parametrize(
    ("header", "now_offset"),
    [
        (f"t={VECTOR_T},v1={'0' * 64}", 0),
        (f"t={VECTOR_T},v1={VECTOR_V1}", 301),
        (f"t={VECTOR_T},v1={VECTOR_V1}", -301),
        (f"v1={VECTOR_V1}", 0),
        (f"t={int(VECTOR_T) + 1},v1={VECTOR_V1}", 0),
        (f"t={VECTOR_T},v0={VECTOR_V1}", 0),
    ],
    ids=["wrong-v1", "stale", "future", "no-t", "t-changed", "no-v1"],
)
def test_vector_variants_are_refused_naming_the_header(header: str, now_offset: int) -> None:
    """Wrong digest, t outside 300 s either way, missing t, a t other than the signed one, no v1: refused."""
    with pytest.raises(SignatureError) as caught:
        callingbox.verify(delivery({"CallingBox-Signature": header}, VECTOR_BODY, SECRET), 1776340800 + now_offset)
    assert caught.value.details["header"] == "CallingBox-Signature"
    assert VECTOR_V1 not in caught.value.message


def test_several_v1_values_accept_any_match() -> None:
    """During rotation CallingBox sends several v1 values; one matching is enough, in any position."""
    header = {"CallingBox-Signature": f"t={VECTOR_T},v1={'a' * 64},v1={VECTOR_V1}"}
    assert callingbox.verify(delivery(header, VECTOR_BODY, SECRET), float(VECTOR_T)).checked


def post(client: TestClient, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    response = client.post("/webhooks/cb", content=body, headers={"Content-Type": "application/json", **headers})
    return response.status_code, response.json()


def test_signed_with_either_rotated_secret_is_applied(
    make_client: Callable[..., TestClient], make_settings: MakeSettings, r: redis.Redis, keys: Keys
) -> None:
    """A source with the old and the new secret accepts webhooks signed with either."""
    client = make_client(make_settings({"cb": signed_source("cb", "callingbox", "whsec_old", "whsec_new")}))
    now = str(int(time.time()))
    ringing = envelope("call.ringing", "ringing")
    answered = envelope("call.answered", "in_progress", answered_at="2026-04-16T12:00:09Z")
    old = {"CallingBox-Signature": f"t={now},v1={timestamped_hmac.signature('whsec_old', now, ringing)}"}
    new = {"CallingBox-Signature": f"t={now},v1={timestamped_hmac.signature('whsec_new', now, answered)}"}
    assert post(client, ringing, old)[0] == 200
    status, body = post(client, answered, new)
    assert status == 200
    [result] = body["results"]
    assert (result["event"], result["outcome"], result["to_state"]) == ("answered", "applied", "answered")
    assert r.hget(keys.call("cb", CALL_ID), "state") == b"answered"


def test_bad_or_stale_signature_is_401_naming_the_header(
    make_client: Callable[..., TestClient], make_settings: MakeSettings, r: redis.Redis, keys: Keys
) -> None:
    """Signed with another secret, or with a t ten minutes old: 401, header named, nothing published."""
    client = make_client(make_settings({"cb": signed_source("cb", "callingbox", SECRET)}))
    body = envelope("call.ringing", "ringing")
    now = int(time.time())
    for t, secret in ((now, "whsec_other"), (now - 600, SECRET)):
        signature = timestamped_hmac.signature(secret, str(t), body)
        status, reply = post(client, body, {"CallingBox-Signature": f"t={t},v1={signature}"})
        assert status == 401
        assert reply["error"] == {**reply["error"], "code": "invalid_signature", "header": "CallingBox-Signature"}
    assert r.xlen(keys.transitions()) == 0


def test_event_fields_reach_the_stream(make_client: Callable[..., TestClient], r: redis.Redis, keys: Keys) -> None:
    """occurred_at is the envelope's unix ``created`` in UTC; the event id is kept; billing fields are extras."""
    client = make_client()
    body = envelope(
        "call.completed",
        "completed",
        answered_at="2026-04-16T12:00:09Z",
        duration_seconds=48,
        billed_duration_seconds=42,
        billing_amount_milli_cents=1260,
    )
    response = client.post(
        "/webhooks/callingbox",
        content=body,
        headers={"Content-Type": "application/json", "CallingBox-Event-Id": "evt-header-id"},
    )
    assert response.status_code == 200
    [entry] = published(r, keys)
    event = entry["event"]
    assert event["occurred_at"] == "2026-04-16T12:00:00Z"
    assert event["dedupe_key"] == f"{CALL_ID}:call.completed"
    # The signed envelope's id, not the (unsigned) header's.
    assert event["correlation"] == {"event_id": "0b6f4c1e-8d2a-4f3b-9c7e-1a2b3c4d5e6f", "api_version": "2026-04"}
    assert event["extras"] == {
        "answered_at": "2026-04-16T12:00:09Z",
        "duration_s": 48,
        "billed_duration_s": 42,
        "billing_amount_milli_cents": 1260,
    }
    assert (event["from_number"], entry["to_state"]) == ("+14155550100", "completed")


def published(r: redis.Redis, keys: Keys) -> list[dict[str, Any]]:
    """The transitions stream's entries, decoded."""
    entries = cast(list[tuple[bytes, dict[bytes, bytes]]], r.xrange(keys.transitions()))
    return [entry_fields(fields) for _id, fields in entries]


def test_unknown_type_is_dead_lettered(make_client: Callable[..., TestClient], r: redis.Redis, keys: Keys) -> None:
    """A type CallingBox does not document (there is no call.initiated event) is kept, not applied."""
    client = make_client()
    response = client.post(
        "/webhooks/callingbox",
        content=envelope("call.initiated", "initiated"),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 202
    assert response.json()["error"]["code"] == "unknown_event"
    assert r.xlen(keys.deadletter()) == 1
    assert r.xlen(keys.transitions()) == 0
