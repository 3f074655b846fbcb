"""Vobiz: the trunk webhooks (admission and hangup), event times, and the trunk signature, through the real
app and a real Redis. Payloads are the ones docs.vobiz.ai/trunks/webhook publishes; expected states are
read from that page (and from the hangup-cause table it links)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Any

import orjson
import pytest
import redis
from starlette.testclient import TestClient

from receiver.delivery import FORM, JSON, Delivery
from receiver.providers import PROVIDERS, vobiz, vobiz_trunk
from receiver.settings import ConfigError, Settings, Source
from statemachine.keys import Keys
from statemachine.store import entry_fields
from tests.conftest import MakeSettings, signed_source

SIGNING_SECRET = "trunk-signing-secret-0123456789"

#: docs.vobiz.ai/trunks/webhook, "Payload - allowed call".
ALLOWED: dict[str, Any] = {
    "Event": "CallInitiated",
    "CallUUID": "aabbccdd-1234-5678-90ab-cdef12345678",
    "RequestID": "aabbccdd-1234-5678-90ab-cdef12345678",
    "Timestamp": "2026-03-18T12:00:00Z",
    "From": "+919876543210",
    "To": "+918012345678",
    "Direction": "outbound",
    "Status": "initiated",
    "auth_id": "MA_XXXXXXXX",
    "TrunkID": "aabbccdd-1234-5678-90ab-cdef12345678",
    "Domain": "1486467e.sip.vobiz.ai",
    "SourceIP": "10.0.0.1",
    "SIPCallID": "abc123@10.0.0.1",
    "Allowed": True,
    "Reason": "",
}
#: Same page, "Payload - rejected call".
REFUSED: dict[str, Any] = {**ALLOWED, "Allowed": False, "Reason": "Insufficient balance: 0.50 INR"}
#: Same page, "Hangup Payload".
HANGUP: dict[str, Any] = {
    "Event": "Hangup",
    "CallUUID": "aabbccdd-1234-5678-90ab-cdef12345678",
    "RequestID": "aabbccdd-1234-5678-90ab-cdef12345678",
    "Timestamp": "2026-03-18T12:00:08Z",
    "From": "+919876543210",
    "To": "+918012345678",
    "Direction": "outbound",
    "Status": "completed",
    "AccountId": "MA_XXXXXXXX",
    "TrunkID": "aabbccdd-1234-5678-90ab-cdef12345678",
    "Domain": "1486467e.sip.vobiz.ai",
    "SourceIP": "10.0.0.1",
    "SIPCallID": "abc123@10.0.0.1",
    "BridgeUUID": "bbccddee-2345-6789-01bc-def234567890",
    "Reason": "NORMAL_CLEARING",
    "StartTime": "2026-03-18T12:00:00Z",
    "EndTime": "2026-03-18T12:00:08Z",
    "Duration": 8,
    "Billsec": 3,
    "RingTime": 5,
    "Cost": 0.07,
    "Currency": "INR",
    "MOS": 4.5,
    "HangupCauseName": "Normal Hangup",
    "HangupCauseCode": 4000,
    "HangupSource": "Caller",
}
CALL = HANGUP["CallUUID"]


def post_json(client: TestClient, path: str, document: dict[str, Any], **headers: str) -> Any:
    return client.post(path, content=orjson.dumps(document), headers={"Content-Type": JSON, **headers})


def trunk_signature(body: bytes, secret: str = SIGNING_SECRET) -> str:
    """As the page's Flask example computes it: hex HMAC-SHA256 of the raw body."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_refused_call_ends_failed_with_the_reason(
    make_client: Callable[..., TestClient], r: redis.Redis, keys: Keys
) -> None:
    """``Allowed: false``: Vobiz would not place the call, and trunk webhooks are one-shot, so the call must end
    here: failed (a platform refusal, not a far end declining), with the reason published."""
    response = post_json(make_client(), "/webhooks/vobiz", REFUSED)
    assert response.status_code == 200, response.text
    [result] = response.json()["results"]
    assert (result["outcome"], result["from_state"], result["to_state"]) == ("applied", "new", "failed")
    [(_id, fields)] = r.xrange(keys.transitions())
    event = entry_fields(fields)["event"]
    assert event["extras"]["reason"] == "Insufficient balance: 0.50 INR"
    assert event["occurred_at"] == "2026-03-18T12:00:00Z"
    assert event["correlation"]["trunk_id"] == ALLOWED["TrunkID"]


def test_admitted_call_dials_then_the_hangup_completes_it(
    make_client: Callable[..., TestClient], r: redis.Redis, keys: Keys
) -> None:
    """``Allowed: true`` is the attempt starting; the Hangup with 3 connected seconds (``Billsec``) and cause
    4000 Normal Hangup ends it completed, dated by its ``Timestamp``."""
    client = make_client()
    first = post_json(client, "/webhooks/vobiz", ALLOWED).json()["results"][0]
    assert (first["from_state"], first["to_state"]) == ("new", "dialing")
    last = post_json(client, "/webhooks/vobiz", HANGUP).json()["results"][0]
    assert (last["from_state"], last["to_state"]) == ("dialing", "completed")
    entries = [entry_fields(f)["event"] for _id, f in r.xrange(keys.transitions())]
    hangup = entries[-1]
    assert hangup["occurred_at"] == "2026-03-18T12:00:08Z"
    assert hangup["extras"]["bill_duration_s"] == 3
    assert hangup["extras"]["ring_time_s"] == 5
    assert hangup["extras"]["cost"] == 0.07
    assert hangup["extras"]["currency"] == "INR"
    assert hangup["extras"]["hangup_cause_code"] == "4000"
    assert hangup["extras"]["end_time"] == "2026-03-18T12:00:08Z"
    assert r.hget(keys.call("vobiz", CALL), "state") == b"completed"


def test_an_unconnected_trunk_hangup_is_not_completed(make_client: Callable[..., TestClient]) -> None:
    """``Duration`` is ring + talk time: 8 s of ringing with no ``Billsec`` is no answer (cause 3000)."""
    unanswered = {
        **HANGUP,
        "Billsec": 0,
        "RingTime": 8,
        "HangupCauseCode": 3000,
        "HangupCauseName": "No Answer",
        "Reason": "NO_ANSWER",
    }
    [result] = post_json(make_client(), "/webhooks/vobiz", unanswered).json()["results"]
    assert result["to_state"] == "no_answer"


def test_signed_trunk_source_accepts_the_body_hmac_and_refuses_others(
    make_client: Callable[..., TestClient], make_settings: MakeSettings, r: redis.Redis, keys: Keys
) -> None:
    """A ``vobiz_trunk`` source checks the hex HMAC-SHA256 of the raw body in ``X-Vobiz-Signature``."""
    source = signed_source("trunk", "vobiz_trunk", "old-secret", SIGNING_SECRET)
    client = make_client(make_settings({"trunk": source}))
    body = orjson.dumps(REFUSED)
    unsigned = client.post("/webhooks/trunk", content=body, headers={"Content-Type": JSON})
    assert unsigned.status_code == 401
    assert unsigned.json()["error"]["header"] == "X-Vobiz-Signature"
    altered = client.post(
        "/webhooks/trunk",
        content=body.replace(b"0.50", b"9.50"),
        headers={"Content-Type": JSON, "X-Vobiz-Signature": trunk_signature(body)},
    )
    assert altered.status_code == 401
    assert r.xlen(keys.transitions()) == 0
    signed = client.post(
        "/webhooks/trunk", content=body, headers={"Content-Type": JSON, "X-Vobiz-Signature": trunk_signature(body)}
    )
    assert signed.status_code == 200, signed.text
    assert signed.json()["results"][0]["to_state"] == "failed"
    assert client.get("/webhooks/trunk?Event=Hangup").status_code == 405


def test_trunk_signature_header_can_be_renamed(make_settings: MakeSettings) -> None:
    """The page asks to confirm the header name in the Console: ``signature_header`` names another."""
    toml = '[sources.trunk]\nprovider = "vobiz_trunk"\nsecrets = ["s"]\n'
    settings = Settings.from_toml(toml + 'signature_header = "X-Trunk-Signature"\n', {}, list(PROVIDERS))
    source = settings.sources["trunk"]
    body = orjson.dumps(HANGUP)
    headers = {"content-type": JSON, "x-trunk-signature": trunk_signature(body, "s")}
    delivery = Delivery(source, body, headers, "http://testserver/webhooks/trunk", 0.0)
    assert vobiz_trunk.ADAPTER.verify(delivery, 0.0).checked
    with pytest.raises(ConfigError, match="sources.trunk.signature_headr"):
        Settings.from_toml(toml + 'signature_headr = "X"\n', {}, list(PROVIDERS))
    with pytest.raises(ConfigError, match="sources.trunk.signature_header: must be a non-empty string"):
        Settings.from_toml(toml + 'signature_header = ""\n', {}, list(PROVIDERS))


@pytest.mark.parametrize(
    ("fields", "occurred_at"),
    [
        ({"Event": "Ring", "timestamp": "2026-05-29T12:00:01+05:30"}, "2026-05-29T06:30:01Z"),
        ({"Event": "Hangup", "EndTime": "2026-05-29 17:30:51"}, None),  # account-local: never read as UTC
        ({"Event": "StartApp", "AnswerTime": "2026-05-29 17:30:09"}, None),
        ({"Event": "Hangup", "EndTime": "2026-03-18T12:00:08Z"}, "2026-03-18T12:00:08Z"),
    ],
    ids=["timestamp-field", "local-end-time", "local-answer-time", "zoned-end-time"],
)
def test_event_time_is_read_only_when_it_has_a_zone(fields: dict[str, str], occurred_at: str | None) -> None:
    """``Timestamp`` / ``timestamp`` / a zoned ``*Time`` become ``occurred_at``; local times stay in the extras."""
    body = "&".join(f"{k}={v.replace('+', '%2B')}" for k, v in {"CallUUID": "c-1", **fields}.items()).encode()
    delivery = Delivery(Source(name="vobiz", provider="vobiz", verify=False), body, {"content-type": FORM}, "", 0.0)
    (event,) = vobiz.normalize(delivery)
    assert event.occurred_at == occurred_at
    if occurred_at is None:
        assert any(key.endswith("_time_local") for key in event.extras)
