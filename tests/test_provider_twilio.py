"""Twilio: ``X-Twilio-Signature`` cross-checked against the official twilio SDK's RequestValidator in both
directions, the app's answers, and the status and AMD normalization rows."""

from __future__ import annotations

import hashlib
import urllib.parse
from collections.abc import Callable

import pytest
from starlette.testclient import TestClient
from twilio.request_validator import RequestValidator

from receiver.delivery import FORM, JSON, Delivery
from receiver.errors import SignatureError, UnknownEvent
from receiver.providers.base import OutgoingRequest
from receiver.providers.twilio import ADAPTER
from statemachine.states import Trigger
from tests.conftest import MakeSettings, signed_source

TOKEN = "12345678901234567890123456789012"
OLD_TOKEN = "abcdefabcdefabcdefabcdefabcdefab"
URL = "https://hooks.example.com/twilio/status?tenant=acme"
PARAMS = {
    "AccountSid": "AC0123456789abcdef0123456789abcdef",
    "CallSid": "CA5f3c9e1b7d2a4c6e8f0a1b2c3d4e0001",
    "CallStatus": "completed",
    "CallDuration": "42",
    "From": "+14155551234",
    "To": "+14155559876",
    "SequenceNumber": "3",
    "Timestamp": "Mon, 16 Aug 2010 03:45:01 +0000",
}
BODY = urllib.parse.urlencode(PARAMS).encode()
SDK = RequestValidator(TOKEN)


def delivery(
    headers: dict[str, str], body: bytes = BODY, url: str = URL, content_type: str = FORM, *secrets: str
) -> Delivery:
    source = signed_source("twilio", "twilio", *(secrets or (TOKEN,)))
    lowered = {"content-type": content_type, **{name.lower(): value for name, value in headers.items()}}
    return Delivery(source, body, lowered, url, 1_780_000_000.0)


def test_sdk_signed_request_is_accepted() -> None:
    """A signature from the SDK's compute_signature verifies, with either configured token."""
    signature = SDK.compute_signature(URL, PARAMS)
    assert ADAPTER.verify(delivery({"X-Twilio-Signature": signature}, BODY, URL, FORM, OLD_TOKEN, TOKEN), 0).checked


def test_our_signature_is_accepted_by_the_sdk() -> None:
    """``sign`` produces a header the SDK's RequestValidator.validate accepts."""
    headers = ADAPTER.sign(OutgoingRequest(url=URL, body=BODY, content_type=FORM), TOKEN, 0.0)
    assert SDK.validate(URL, PARAMS, headers["X-Twilio-Signature"])


@pytest.mark.parametrize(
    ("url", "params", "token"),
    [
        (URL.replace("status", "voice"), PARAMS, TOKEN),
        (URL.replace("acme", "other"), PARAMS, TOKEN),
        ("http" + URL.removeprefix("https"), PARAMS, TOKEN),
        (URL, {**PARAMS, "CallStatus": "busy"}, TOKEN),
        (URL, {**PARAMS, "Extra": ""}, TOKEN),
        (URL, PARAMS, OLD_TOKEN),
    ],
    ids=["path", "query", "scheme", "param-value", "added-param", "secret"],
)
def test_any_change_is_rejected(url: str, params: dict[str, str], token: str) -> None:
    """An SDK signature for another URL, other parameters or another token is refused, naming the header."""
    signature = RequestValidator(token).compute_signature(url, params)
    with pytest.raises(SignatureError) as raised:
        ADAPTER.verify(delivery({"X-Twilio-Signature": signature}), 0)
    assert raised.value.details["header"] == "X-Twilio-Signature"


@pytest.mark.parametrize(
    ("signed_url", "received_url"),
    [
        ("https://hooks.example.com:443/twilio/status?tenant=acme", URL),
        (URL, "https://hooks.example.com:443/twilio/status?tenant=acme"),
        ("http://hooks.example.com:80/cb", "http://hooks.example.com/cb"),
        ("http://hooks.example.com/cb", "http://hooks.example.com:80/cb"),
    ],
    ids=["signed-443", "received-443", "signed-80", "received-80"],
)
def test_default_port_variants_are_accepted(signed_url: str, received_url: str) -> None:
    """Twilio signs the URL with or without the default port; both verify, as in the SDK."""
    signature = SDK.compute_signature(signed_url, PARAMS)
    assert SDK.validate(received_url, PARAMS, signature)
    assert ADAPTER.verify(delivery({"X-Twilio-Signature": signature}, BODY, received_url), 0).checked


def test_a_non_default_port_is_not_interchangeable() -> None:
    """A signature for port 8443 does not verify the URL on port 443."""
    signature = SDK.compute_signature("https://hooks.example.com:8443/cb", PARAMS)
    with pytest.raises(SignatureError):
        ADAPTER.verify(delivery({"X-Twilio-Signature": signature}, BODY, "https://hooks.example.com:443/cb"), 0)


def test_repeated_parameters_are_signed_sorted() -> None:
    """A repeated form field: its values are signed sorted, as the SDK does for multi-valued params."""
    body = b"CallSid=CA1&CallStatus=ringing&StirStatus=B&StirStatus=A"

    class MultiDict(dict[str, list[str]]):
        def getall(self, name: str) -> list[str]:
            return self[name]

    params = MultiDict({"CallSid": ["CA1"], "CallStatus": ["ringing"], "StirStatus": ["B", "A"]})
    signature = SDK.compute_signature(URL, params)
    assert ADAPTER.verify(delivery({"X-Twilio-Signature": signature}, body), 0).checked


def test_json_body_is_covered_by_body_sha256() -> None:
    """A JSON body: the URL's bodySHA256 must match the body, and the URL alone is signed."""
    body = b'{"CallSid":"CA1","CallStatus":"completed"}'
    url = f"{URL}&bodySHA256={hashlib.sha256(body).hexdigest()}"
    signature = SDK.compute_signature(url, {})
    assert SDK.validate(url, body.decode(), signature)
    assert ADAPTER.verify(delivery({"X-Twilio-Signature": signature}, body, url, JSON), 0).checked
    with pytest.raises(SignatureError):
        ADAPTER.verify(delivery({"X-Twilio-Signature": signature}, body + b" ", url, JSON), 0)
    unhashed = SDK.compute_signature(URL, {})
    with pytest.raises(SignatureError):
        ADAPTER.verify(delivery({"X-Twilio-Signature": unhashed}, body, URL, JSON), 0)


def test_hmac_sha256_when_the_settings_header_names_it() -> None:
    """Shared-key webhooks name HMAC_SHA256 in X-Twilio-Webhooks-Signature-Settings."""
    signature = SDK.compute_signature(URL, PARAMS, algorithm="HMAC_SHA256")
    settings = {"X-Twilio-Webhooks-Signature-Settings": "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256"}
    assert ADAPTER.verify(delivery({"X-Twilio-Signature": signature, **settings}), 0).checked
    with pytest.raises(SignatureError):
        ADAPTER.verify(delivery({"X-Twilio-Signature": signature}), 0)
    unsupported = {"X-Twilio-Webhooks-Signature-Settings": "algorithm=HMAC_MD5"}
    with pytest.raises(SignatureError) as raised:
        ADAPTER.verify(delivery({"X-Twilio-Signature": signature, **unsupported}), 0)
    assert raised.value.details["header"] == "X-Twilio-Webhooks-Signature-Settings"


def test_app_answers_signed_200_and_bad_signature_401(
    make_client: Callable[..., TestClient], make_settings: MakeSettings
) -> None:
    """Through the app: an SDK-signed callback is applied; a wrong one is 401 naming the header."""
    client = make_client(make_settings({"twilio": signed_source("twilio", "twilio", TOKEN)}))
    url = "http://testserver/webhooks/twilio"
    good = {"Content-Type": FORM, "X-Twilio-Signature": SDK.compute_signature(url, PARAMS)}
    response = client.post("/webhooks/twilio", content=BODY, headers=good)
    assert response.status_code == 200
    assert response.json()["results"][0]["to_state"] == "completed"
    bad = {**good, "X-Twilio-Signature": RequestValidator(OLD_TOKEN).compute_signature(url, PARAMS)}
    response = client.post("/webhooks/twilio", content=BODY, headers=bad)
    assert response.status_code == 401
    assert response.json()["error"] == {
        "code": "invalid_signature",
        "message": "X-Twilio-Signature does not match the request",
        "header": "X-Twilio-Signature",
    }


def normalized(fields: dict[str, str]) -> tuple[Trigger, str, dict[str, object], str | None]:
    (event,) = ADAPTER.normalize(delivery({}, urllib.parse.urlencode(fields).encode()))
    return event.event, event.dedupe_key, event.extras, event.occurred_at


def test_timestamp_rfc2822_becomes_occurred_at_utc() -> None:
    """``Timestamp`` (RFC 2822, the documented example) is the event time in UTC; other zones are converted."""
    assert normalized(PARAMS)[3] == "2010-08-16T03:45:01Z"
    assert normalized({**PARAMS, "Timestamp": "Mon, 16 Aug 2010 05:45:01 +0200"})[3] == "2010-08-16T03:45:01Z"


def test_dedupe_key_is_sequence_number_else_status() -> None:
    """``CallSid:SequenceNumber``; without a sequence number, ``CallSid:CallStatus``."""
    assert normalized(PARAMS)[1] == "CA5f3c9e1b7d2a4c6e8f0a1b2c3d4e0001:3"
    without = {key: value for key, value in PARAMS.items() if key != "SequenceNumber"}
    assert normalized(without)[1] == "CA5f3c9e1b7d2a4c6e8f0a1b2c3d4e0001:completed"


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("queued", Trigger.QUEUED),
        ("initiated", Trigger.DIALING),
        ("in-progress", Trigger.ANSWERED),
        ("no-answer", Trigger.NO_ANSWER),
        ("canceled", Trigger.CANCELED),
    ],
)
def test_call_status_rows(status: str, expected: Trigger) -> None:
    """CallStatus values whose canonical name differs from Twilio's."""
    assert normalized({**PARAMS, "CallStatus": status})[0] == expected


@pytest.mark.parametrize(
    ("answered_by", "expected"),
    [("machine_end_silence", "machine"), ("machine_start", "machine"), ("fax", "fax"), ("human", "human")],
)
def test_async_amd_callback_is_an_annotation(answered_by: str, expected: str) -> None:
    """AsyncAmdStatusCallback (AnsweredBy, no CallStatus) annotates the call with who answered."""
    fields = {"AccountSid": "AC1", "CallSid": "CA1", "AnsweredBy": answered_by, "MachineDetectionDuration": "2100"}
    trigger, dedupe, extras, _ = normalized(fields)
    assert trigger is Trigger.ANNOTATION
    assert dedupe == "CA1:AnsweredBy"
    assert extras["answered_by"] == expected
    assert extras["annotation"] == "machine_detection"
    assert extras["machine_detection_duration_ms"] == 2100


def test_answered_by_on_a_status_callback_rides_along() -> None:
    """AnsweredBy together with CallStatus: the status decides the transition, answered_by is an extra."""
    trigger, _, extras, _ = normalized({**PARAMS, "CallStatus": "in-progress", "AnsweredBy": "human"})
    assert trigger is Trigger.ANSWERED
    assert extras["answered_by"] == "human"
    assert "annotation" not in extras


def test_unknown_status_and_empty_callback_are_unknown_events() -> None:
    """A CallStatus Twilio does not document, or neither CallStatus nor AnsweredBy: unknown event."""
    with pytest.raises(UnknownEvent):
        normalized({**PARAMS, "CallStatus": "transferring"})
    with pytest.raises(UnknownEvent):
        normalized({"CallSid": "CA1"})
