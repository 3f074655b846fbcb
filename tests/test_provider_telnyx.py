"""Telnyx: Ed25519 signatures cross-checked against the telnyx SDK's verify_webhook_signature and PyNaCl,
how configured keys are read, the app's answers, and the Call Control / TeXML normalization rows."""

from __future__ import annotations

import base64
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from nacl.signing import SigningKey
from starlette.testclient import TestClient
from telnyx.lib.webhook_verification import WebhookVerificationError, verify_webhook_signature

from receiver.delivery import FORM, JSON, Delivery
from receiver.errors import SignatureError, UnknownEvent
from receiver.providers.base import OutgoingRequest
from receiver.providers.telnyx import ADAPTER
from statemachine.states import Trigger
from tests.conftest import MakeSettings, signed_source

#: A fixed private seed written by hand, and a second one for rotation / wrong-key cases.
SEED = bytes(range(32))
OTHER_SEED = bytes(range(100, 132))
SEED_B64 = base64.b64encode(SEED).decode()
NACL_KEY = SigningKey(SEED)
PUBLIC_B64 = base64.b64encode(bytes(NACL_KEY.verify_key)).decode()
OTHER_PUBLIC_B64 = base64.b64encode(bytes(SigningKey(OTHER_SEED).verify_key)).decode()
NOW = 1_780_000_000

BODY = orjson.dumps(
    {
        "data": {
            "record_type": "event",
            "event_type": "call.hangup",
            "id": "0ccc7b54-4df3-4bcb-a65a-3da1ecc997ee",
            "occurred_at": "2018-02-02T22:25:27.521992Z",
            "payload": {
                "call_control_id": "v3:u5OAKGEPT3Dx8SZSSDRWEMdNH2OripQhO",
                "call_leg_id": "428c31b6-7af4-4bcb-b7f5-5013ef9657c1",
                "call_session_id": "428c31b6-abf3-4bcb-b6d1-5013ef9657c1",
                "client_state": "aGF2ZSBhIG5pY2UgZGF5ID1d",
                "connection_id": "7267xxxxxxxxxxxxxx",
                "from": "+35319605860",
                "to": "+13129457420",
                "hangup_cause": "call_rejected",
                "hangup_source": "caller",
                "sip_hangup_cause": "603",
                "start_time": "2018-02-02T22:20:27.521992Z",
                "state": "hangup",
            },
        },
        "meta": {"attempt": 1, "delivered_to": "https://example.com/webhooks"},
    }
)


def nacl_headers(body: bytes, timestamp: int = NOW, key: SigningKey = NACL_KEY) -> dict[str, str]:
    """Headers as Telnyx sends them, signed with PyNaCl (not the code under test)."""
    signature = key.sign(f"{timestamp}|".encode() + body).signature
    return {"telnyx-signature-ed25519": base64.b64encode(signature).decode(), "telnyx-timestamp": str(timestamp)}


def delivery(headers: dict[str, str], body: bytes = BODY, *secrets: str, content_type: str = JSON) -> Delivery:
    source = signed_source("telnyx", "telnyx", *(secrets or (PUBLIC_B64,)))
    return Delivery(source, body, {"content-type": content_type, **headers}, "https://example.com/webhooks", NOW)


def test_pynacl_signed_request_is_accepted_with_the_public_key() -> None:
    """A request signed with the private key verifies against the configured base64 public key."""
    assert ADAPTER.verify(delivery(nacl_headers(BODY)), NOW).checked


def test_our_signature_is_accepted_by_the_telnyx_sdk() -> None:
    """``sign`` with the private seed yields headers the SDK's verify_webhook_signature accepts."""
    now = time.time()  # the SDK checks the timestamp against the clock
    headers = ADAPTER.sign(OutgoingRequest(url="https://example.com", body=BODY, content_type=JSON), SEED_B64, now)
    verify_webhook_signature(BODY, headers, PUBLIC_B64)
    assert headers["telnyx-timestamp"] == str(int(now))


def test_sdk_and_we_reject_the_same_tampering() -> None:
    """A changed body, a changed timestamp or another key: refused by the SDK and by us, naming the header."""
    now = int(time.time())
    signed = nacl_headers(BODY, now)
    cases: list[tuple[bytes, dict[str, str], str]] = [
        (BODY.replace(b"call_rejected", b"normal_clearing"), signed, PUBLIC_B64),
        (BODY, {**signed, "telnyx-timestamp": str(now + 1)}, PUBLIC_B64),
        (BODY, signed, OTHER_PUBLIC_B64),
    ]
    for body, headers, key in cases:
        with pytest.raises(WebhookVerificationError, match="verification failed"):
            verify_webhook_signature(body, headers, key)
        with pytest.raises(SignatureError) as raised:
            ADAPTER.verify(delivery(headers, body, key), now)
        assert raised.value.details["header"] == "telnyx-signature-ed25519"


@pytest.mark.parametrize(("outside", "inside"), [(-301, -300), (301, 300)], ids=["stale", "future"])
def test_timestamp_outside_tolerance_is_rejected(outside: int, inside: int) -> None:
    """A correctly signed request whose timestamp is more than 300 s away is refused, naming the header."""
    with pytest.raises(SignatureError) as raised:
        ADAPTER.verify(delivery(nacl_headers(BODY, NOW + outside)), NOW)
    assert raised.value.details["header"] == "telnyx-timestamp"
    assert ADAPTER.verify(delivery(nacl_headers(BODY, NOW + inside)), NOW).checked


def test_any_of_several_public_keys_verifies() -> None:
    """Several configured public keys (rotation): a signature by either verifies."""
    other = SigningKey(OTHER_SEED)
    assert ADAPTER.verify(delivery(nacl_headers(BODY, key=other), BODY, PUBLIC_B64, OTHER_PUBLIC_B64), NOW).checked


def test_missing_or_malformed_signature_is_named() -> None:
    """No signature header, or one that is not a 64-byte base64 value: refused, naming the header."""
    for headers in ({"telnyx-timestamp": str(NOW)}, {"telnyx-timestamp": str(NOW), "telnyx-signature-ed25519": "%%"}):
        with pytest.raises(SignatureError) as raised:
            ADAPTER.verify(delivery(headers), NOW)
        assert raised.value.details["header"] == "telnyx-signature-ed25519"


def test_a_public_key_is_never_used_as_a_seed() -> None:
    """Whoever knows the public key must not be able to sign with its bytes as a private seed."""
    forged = nacl_headers(BODY, key=SigningKey(base64.b64decode(PUBLIC_B64)))
    with pytest.raises(SignatureError):
        ADAPTER.verify(delivery(forged), NOW)


def test_a_configured_seed_or_passphrase_verifies_what_it_signs() -> None:
    """For replay and tests a source may hold ``seed:<base64>`` or a passphrase; both verify their own signing."""
    assert ADAPTER.verify(delivery(nacl_headers(BODY), BODY, "seed:" + SEED_B64), NOW).checked
    request = OutgoingRequest(url="https://example.com", body=BODY, content_type=JSON)
    headers = ADAPTER.sign(request, "a local passphrase", NOW)
    assert ADAPTER.verify(delivery(headers, BODY, "a local passphrase"), NOW).checked
    with pytest.raises(SignatureError):
        ADAPTER.verify(delivery(headers, BODY, "another passphrase"), NOW)


def test_app_answers_signed_200_and_bad_signature_401(
    make_client: Callable[..., TestClient], make_settings: MakeSettings
) -> None:
    """Through the app: a signed hangup is applied; a wrong signature is 401 naming the header."""
    client = make_client(make_settings({"telnyx": signed_source("telnyx", "telnyx", PUBLIC_B64)}))
    now = int(time.time())
    response = client.post("/webhooks/telnyx", content=BODY, headers={"Content-Type": JSON, **nacl_headers(BODY, now)})
    assert response.status_code == 200
    assert response.json()["results"][0]["to_state"] == "rejected"
    forged = nacl_headers(BODY, now, SigningKey(OTHER_SEED))
    response = client.post("/webhooks/telnyx", content=BODY, headers={"Content-Type": JSON, **forged})
    assert response.status_code == 401
    assert response.json()["error"]["header"] == "telnyx-signature-ed25519"


def event_of(body: bytes, content_type: str = JSON) -> Any:
    (event,) = ADAPTER.normalize(delivery({}, body, content_type=content_type))
    return event


def call_control(event_type: str, **payload: Any) -> bytes:
    return orjson.dumps(
        {
            "data": {
                "event_type": event_type,
                "id": "e-1",
                "occurred_at": "2026-05-28T19:30:01.5+02:00",
                "payload": {"call_leg_id": "leg-1", **payload},
            }
        }
    )


def test_hangup_fields_become_the_canonical_event() -> None:
    """call.hangup (the documented example): call_rejected → rejected, ids and correlation carried over."""
    event = event_of(BODY)
    assert event.event is Trigger.REJECTED
    assert event.call_id == "428c31b6-7af4-4bcb-b7f5-5013ef9657c1"
    assert event.dedupe_key == "0ccc7b54-4df3-4bcb-a65a-3da1ecc997ee"
    assert event.occurred_at == "2018-02-02T22:25:27.521992Z"
    assert event.correlation["call_session_id"] == "428c31b6-abf3-4bcb-b6d1-5013ef9657c1"
    assert event.extras["sip_hangup_cause"] == "603"


def test_occurred_at_is_converted_to_utc() -> None:
    """An ``occurred_at`` with an offset is stored in UTC."""
    assert event_of(call_control("call.answered")).occurred_at == "2026-05-28T17:30:01.500000Z"


@pytest.mark.parametrize(
    ("cause", "expected"),
    [
        ("timeout", Trigger.NO_ANSWER),  # the dial's timeout_secs passed unanswered
        ("time_limit", Trigger.COMPLETED),  # an answered call reached its time limit
        ("unspecified", Trigger.FAILED),
        ("originator_cancel", Trigger.CANCELED),
    ],
)
def test_hangup_cause_rows(cause: str, expected: Trigger) -> None:
    """hangup_cause values whose canonical outcome is not spelled the same (providers.md §10.2)."""
    assert event_of(call_control("call.hangup", hangup_cause=cause)).event is expected


@pytest.mark.parametrize(
    ("event_type", "result", "answered_by"),
    [
        ("call.machine.detection.ended", "not_sure", "unknown"),
        ("call.machine.premium.detection.ended", "human_business", "human"),
        ("call.machine.premium.detection.ended", "silence", "machine"),
        ("call.machine.premium.detection.ended", "fax_detected", "fax"),
    ],
)
def test_machine_detection_results(event_type: str, result: str, answered_by: str) -> None:
    """Machine detection (standard and premium) is an annotation with a canonical answered_by."""
    event = event_of(call_control(event_type, result=result))
    assert event.event is Trigger.ANNOTATION
    assert event.extras["answered_by"] == answered_by
    assert event.extras["annotation"] == "machine_detection"


def test_unknown_events_and_causes_are_unknown() -> None:
    """call.playback.started and a hangup cause outside the SDK's set are unknown events (dead-lettered)."""
    with pytest.raises(UnknownEvent):
        event_of(call_control("call.playback.started"))
    with pytest.raises(UnknownEvent):
        event_of(call_control("call.hangup", hangup_cause="solar_flare"))


def test_texml_callback_is_read_like_twilio_with_an_iso_timestamp() -> None:
    """TeXML form callbacks: CallSid / CallStatus / SequenceNumber, Timestamp in its ISO spelling."""
    fields = {
        "CallSid": "v3:abc",
        "CallStatus": "no-answer",
        "SequenceNumber": "2",
        "Timestamp": "2021-04-28 21:51:18.731479Z",
        "ConnectionId": "1684641123236054244",
    }
    event = event_of(urllib.parse.urlencode(fields).encode(), FORM)
    assert event.event is Trigger.NO_ANSWER
    assert event.dedupe_key == "v3:abc:2"
    assert event.occurred_at == "2021-04-28T21:51:18.731479Z"
    assert event.correlation["connection_id"] == "1684641123236054244"


def legacy(event_type: str, **payload: Any) -> bytes:
    """A legacy API v1 webhook as developers.telnyx.com/docs/api/v1/call-control/Call-Webhooks shows it: no data
    wrapper, the event type spelled with underscores, created_at."""
    return orjson.dumps(
        {
            "record_type": "event",
            "id": "0ccc7b54-4df3-4bca-a65a-3da1ecc777f0",
            "event_type": event_type,
            "created_at": "2018-02-02T22:25:27.521992Z",
            "payload": {"call_leg_id": "428c31b6-7af4-4bcb-b7f5-5013ef9657c1", **payload},
        }
    )


@pytest.mark.parametrize(
    ("event_type", "payload", "expected"),
    [
        ("call_initiated", {"direction": "incoming", "state": "parked"}, Trigger.DIALING),
        ("call_answered", {"state": "answered"}, Trigger.ANSWERED),
        ("call_hangup", {"hangup_cause": "normal_clearing"}, Trigger.COMPLETED),
        ("call_hangup", {"hangup_cause": "user_busy"}, Trigger.BUSY),
        ("call_machine_detection_ended", {"result": "machine"}, Trigger.ANNOTATION),
        ("call_bridged", {}, Trigger.ANNOTATION),
    ],
)
def test_legacy_v1_webhooks_are_read_as_their_v2_events(
    event_type: str, payload: dict[str, Any], expected: Trigger
) -> None:
    """Same tables as v2; the webhook's id is the dedupe key and created_at its time."""
    event = event_of(legacy(event_type, **payload))
    assert event.event is expected
    assert event.provider_event == event_type.replace("_", ".")
    assert event.dedupe_key == "0ccc7b54-4df3-4bca-a65a-3da1ecc777f0"
    assert event.occurred_at == "2018-02-02T22:25:27.521992Z"


def test_a_legacy_event_not_in_the_tables_is_unknown() -> None:
    """call_speak_started (v1) is as unknown as call.speak.started: 202, dead-lettered."""
    with pytest.raises(UnknownEvent):
        event_of(legacy("call_speak_started"))
