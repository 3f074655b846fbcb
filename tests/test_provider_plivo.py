"""Plivo: V3 and V2 signatures cross-checked against the official plivo SDK, the app's answers to signed and
badly signed callbacks, and the normalization rows that are not obvious from the fixtures."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable

import pytest
from plivo.utils import validate_signature
from plivo.utils.signature_v3 import construct_post_url, get_signature_v3, validate_v3_signature
from starlette.testclient import TestClient

from receiver.delivery import FORM, JSON, Delivery
from receiver.errors import SignatureError, UnknownEvent, UnsupportedContentType
from receiver.providers.base import OutgoingRequest
from receiver.providers.plivo import ADAPTER
from receiver.signatures import url_nonce
from statemachine.states import Trigger
from tests.conftest import MakeSettings, signed_source

TOKEN = "MAUTHTOKENPLIVO0123456789abcdefghijklmnop"
MAIN_TOKEN = "MAINACCOUNTTOKEN9876543210zyxwvutsrqponm"
URL = "https://hooks.example.com/plivo/hangup?tenant=acme&b=2&b=1"
PARAMS = {
    "CallUUID": "6f1d2c3a-8e4b-11ef-9c1a-02420a000001",
    "Event": "Hangup",
    "From": "14155551234",
    "To": "14155559876",
    "CallStatus": "completed",
    "HangupCause": "NORMAL_CLEARING",
    "AnswerTime": "2026-05-29 17:30:09",
    "BillDuration": "42",
}
BODY = urllib.parse.urlencode(PARAMS).encode()
NONCE = "05429567804466091622"


BOTH_VERSIONS = {"signature_versions": ["v3", "v2"]}
V2_NONCE = "12345678901234567890"


def delivery(
    headers: dict[str, str], body: bytes = BODY, url: str = URL, *secrets: str, options: dict[str, object] | None = None
) -> Delivery:
    source = signed_source("plivo", "plivo", *(secrets or (TOKEN,)), options=options or {})
    lowered = {"content-type": FORM, **{name.lower(): value for name, value in headers.items()}}
    return Delivery(source, body, lowered, url, 1_780_000_000.0)


def sdk_v3(token: str, url: str = URL, params: dict[str, str] = PARAMS, nonce: str = NONCE) -> str:
    """The V3 signature as the plivo SDK computes it."""
    signature: bytes = get_signature_v3(token.encode(), construct_post_url(url, dict(params)).decode(), nonce.encode())
    return signature.decode()


def test_sdk_published_v2_vector_matches_and_v2_verifies_where_accepted() -> None:
    """plivo-python's own test vector (tests/resources/test_signature.py) is what the V2 signature computes;
    a V2 request (with a nonce of the documented 20-digit shape) verifies at a source that accepts V2."""
    vector = "ehV3IKhLysWBxC1sy8INm0qGoQYdYsHwuoKjsX7FsXc="
    assert validate_signature("https://answer.url", "12345", vector, "my_auth_token")
    assert url_nonce.signature("my_auth_token", "https://answer.url", "12345", "") == vector
    signature = url_nonce.signature("my_auth_token", "https://answer.url", V2_NONCE, "")
    assert validate_signature("https://answer.url", V2_NONCE, signature, "my_auth_token")
    headers = {"X-Plivo-Signature-V2": signature, "X-Plivo-Signature-V2-Nonce": V2_NONCE}
    request = delivery(headers, b"", "https://answer.url", "my_auth_token", options=BOTH_VERSIONS)
    assert ADAPTER.verify(request, 0.0).nonces == (V2_NONCE,)


def test_v2_is_refused_unless_the_source_accepts_it() -> None:
    """The default is the strongest version Plivo sends (V3): a V2 signature, valid as it is, is refused."""
    signature = url_nonce.signature("my_auth_token", "https://answer.url", V2_NONCE, "")
    headers = {"X-Plivo-Signature-V2": signature, "X-Plivo-Signature-V2-Nonce": V2_NONCE}
    with pytest.raises(SignatureError) as raised:
        ADAPTER.verify(delivery(headers, b"", "https://answer.url", "my_auth_token"), 0.0)
    assert raised.value.details["header"] == "X-Plivo-Signature-V2"
    assert "does not accept" in raised.value.message


def test_v2_ignores_query_but_not_path() -> None:
    """V2 signs scheme, host and path only: a query on the URL is not signed, another path is refused."""
    signature = url_nonce.signature("my_auth_token", "https://answer.url", V2_NONCE, "")
    headers = {"X-Plivo-Signature-V2": signature, "X-Plivo-Signature-V2-Nonce": V2_NONCE}
    request = delivery(headers, b"", "https://answer.url?x=1", "my_auth_token", options=BOTH_VERSIONS)
    assert ADAPTER.verify(request, 0.0).nonces == (V2_NONCE,)
    with pytest.raises(SignatureError) as raised:
        ADAPTER.verify(delivery(headers, b"", "https://answer.url/other", "my_auth_token", options=BOTH_VERSIONS), 0.0)
    assert raised.value.details["header"] == "X-Plivo-Signature-V2"


def test_sdk_signed_v3_request_is_accepted() -> None:
    """A V3 signature computed by the SDK verifies, and its nonce is returned to be spent."""
    headers = {"X-Plivo-Signature-V3": sdk_v3(TOKEN), "X-Plivo-Signature-V3-Nonce": NONCE}
    verified = ADAPTER.verify(delivery(headers), 0.0)
    assert verified.nonces == (NONCE,)
    assert set(verified.credentials) == {"x-plivo-signature-v3", "x-plivo-signature-v3-nonce"}


def test_our_v3_signature_is_accepted_by_the_sdk() -> None:
    """``sign`` produces headers that the SDK's validate_v3_signature accepts."""
    headers = ADAPTER.sign(OutgoingRequest(url=URL, body=BODY, content_type=FORM), TOKEN, 0.0)
    nonce = headers["X-Plivo-Signature-V3-Nonce"]
    assert len(nonce) == 20 and nonce.isdigit()
    assert validate_v3_signature("POST", URL, nonce, TOKEN, headers["X-Plivo-Signature-V3"], dict(PARAMS))


@pytest.mark.parametrize(
    ("url", "params", "token", "nonce"),
    [
        (URL.replace("hangup", "ring"), PARAMS, TOKEN, NONCE),
        (URL.replace("tenant=acme", "tenant=other"), PARAMS, TOKEN, NONCE),
        (URL, {**PARAMS, "BillDuration": "43"}, TOKEN, NONCE),
        (URL, {**PARAMS, "Extra": "1"}, TOKEN, NONCE),
        (URL, PARAMS, "another-auth-token", NONCE),
        (URL, PARAMS, TOKEN, "05429567804466091623"),
    ],
    ids=["path", "query", "param-value", "added-param", "secret", "nonce"],
)
def test_v3_rejects_any_change(url: str, params: dict[str, str], token: str, nonce: str) -> None:
    """A V3 signature the SDK made for something else (URL, query, params, token, nonce) is refused."""
    headers = {"X-Plivo-Signature-V3": sdk_v3(token, url, params, nonce), "X-Plivo-Signature-V3-Nonce": NONCE}
    with pytest.raises(SignatureError) as raised:
        ADAPTER.verify(delivery(headers), 0.0)
    assert raised.value.details["header"] == "X-Plivo-Signature-V3"


def test_v3_accepts_one_of_several_values_and_the_main_account_header() -> None:
    """The header may hold several comma-separated signatures; Ma-V3 is signed with the main account token."""
    several = {"X-Plivo-Signature-V3": "bm90LWl0," + sdk_v3(TOKEN), "X-Plivo-Signature-V3-Nonce": NONCE}
    assert ADAPTER.verify(delivery(several), 0.0).nonces == (NONCE,)
    both = {
        "X-Plivo-Signature-V3": sdk_v3(TOKEN),
        "X-Plivo-Signature-Ma-V3": sdk_v3(MAIN_TOKEN),
        "X-Plivo-Signature-V3-Nonce": NONCE,
    }
    assert ADAPTER.verify(delivery(both, BODY, URL, MAIN_TOKEN), 0.0).nonces == (NONCE,)


def test_missing_headers_are_named() -> None:
    """No signature at all names the V3 header; a V3 signature without its nonce names the nonce header."""
    with pytest.raises(SignatureError) as raised:
        ADAPTER.verify(delivery({}), 0.0)
    assert raised.value.details["header"] == "X-Plivo-Signature-V3"
    with pytest.raises(SignatureError) as raised:
        ADAPTER.verify(delivery({"X-Plivo-Signature-V3": sdk_v3(TOKEN)}), 0.0)
    assert raised.value.details["header"] == "X-Plivo-Signature-V3-Nonce"


def test_app_answers_signed_200_and_bad_signature_401(
    make_client: Callable[..., TestClient], make_settings: MakeSettings
) -> None:
    """Through the app: a V3-signed hangup is applied; a wrong signature is 401 naming the header, no value."""
    client = make_client(make_settings({"plivo": signed_source("plivo", "plivo", TOKEN)}))
    url = "http://testserver/webhooks/plivo"
    good = {"Content-Type": FORM, "X-Plivo-Signature-V3": sdk_v3(TOKEN, url), "X-Plivo-Signature-V3-Nonce": NONCE}
    response = client.post("/webhooks/plivo", content=BODY, headers=good)
    assert response.status_code == 200
    assert response.json()["results"][0]["to_state"] == "completed"
    bad = {**good, "X-Plivo-Signature-V3": sdk_v3("wrong-token", url), "X-Plivo-Signature-V3-Nonce": V2_NONCE}
    response = client.post("/webhooks/plivo", content=BODY, headers=bad)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_signature"
    assert response.json()["error"]["header"] == "X-Plivo-Signature-V3"
    assert TOKEN not in response.text


def test_app_refuses_a_v2_nonce_reused_for_another_callback(
    make_client: Callable[..., TestClient], make_settings: MakeSettings
) -> None:
    """V2 does not sign the body: a captured signature replayed with another body is refused as a replay."""
    client = make_client(make_settings({"plivo": signed_source("plivo", "plivo", TOKEN, options=BOTH_VERSIONS)}))
    headers = {
        "Content-Type": FORM,
        "X-Plivo-Signature-V2": "HCfCT/UELYCiGweJNm359X9bBshH027IHSKVpEyJPvY=",
        "X-Plivo-Signature-V2-Nonce": NONCE,
    }
    # Computed once by hand (HMAC-SHA256 of URL + nonce); the SDK confirms it.
    assert validate_signature("http://testserver/webhooks/plivo", NONCE, headers["X-Plivo-Signature-V2"], TOKEN)
    first = client.post("/webhooks/plivo", content=BODY, headers=headers)
    assert first.status_code == 200
    other = BODY.replace(b"Event=Hangup", b"Event=Ring")
    replayed = client.post("/webhooks/plivo", content=other, headers=headers)
    assert replayed.status_code == 401
    assert replayed.json()["error"]["code"] == "replayed_request"


def normalize(fields: dict[str, str], content_type: str = FORM) -> Trigger:
    request = delivery({"Content-Type": content_type}, urllib.parse.urlencode(fields).encode())
    (event,) = ADAPTER.normalize(request)
    return event.event


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"CallStatus": "timeout"}, Trigger.FAILED),  # carrier/network timeout, not a ring timeout
        ({"CallStatus": "no-answer"}, Trigger.NO_ANSWER),
        ({"CallStatus": "cancel"}, Trigger.CANCELED),
        ({"HangupCause": "CALL_REJECTED", "CallStatus": "completed"}, Trigger.REJECTED),
        ({"HangupCauseCode": "1000", "CallStatus": "completed"}, Trigger.CANCELED),  # Canceled via API
        ({"HangupCause": "USER_BUSY", "BillDuration": "12"}, Trigger.COMPLETED),  # billed: it was answered
    ],
    ids=["timeout-is-failed", "no-answer", "cancel", "call-rejected", "code-1000", "answered-beats-cause"],
)
def test_hangup_outcome_rows(fields: dict[str, str], expected: Trigger) -> None:
    """Plivo Hangup rows whose outcome is not obvious (providers.md §1.2–1.3, §10.2)."""
    assert normalize({"CallUUID": "c-1", "Event": "Hangup", **fields}) == expected


def test_machine_detection_false_is_human() -> None:
    """``Machine=false`` annotates the call as answered by a human."""
    request = delivery({}, b"CallUUID=c-1&Event=MachineDetection&Machine=false&CallStatus=in-progress")
    (event,) = ADAPTER.normalize(request)
    assert event.event is Trigger.ANNOTATION
    assert event.extras["answered_by"] == "human"
    assert event.dedupe_key == "c-1:MachineDetection"


def test_unknown_event_and_json_body_are_refused() -> None:
    """An event Plivo does not document is unknown; Plivo sends form bodies only."""
    with pytest.raises(UnknownEvent):
        normalize({"CallUUID": "c-1", "Event": "Transfer"})
    with pytest.raises(UnsupportedContentType):
        ADAPTER.normalize(delivery({"Content-Type": JSON}, b'{"CallUUID": "c-1", "Event": "Ring"}'))
