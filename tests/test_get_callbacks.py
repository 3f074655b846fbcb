"""GET callbacks: Twilio (``StatusCallbackMethod=GET``), Plivo and Vobiz (``*_method=GET``) and Vonage
(``event_method=GET``) send a callback's fields in the query string. Through the real app and a real Redis:
each is accepted unsigned on an unverified source and signed the way its provider signs a GET (computed
with the official SDK where one exists), refused when altered; providers that never call with GET answer
405 before anything is read."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import urllib.parse
from collections.abc import Callable

import jwt
import orjson
import pytest
import redis
from plivo.utils.signature_v3 import construct_get_url, get_signature_v3, validate_v3_signature
from starlette.testclient import TestClient
from twilio.request_validator import RequestValidator
from vonage_jwt.verify_jwt import verify_signature  # type: ignore[import-untyped]

from receiver.providers import PROVIDERS, OutgoingRequest
from statemachine.keys import Keys
from tests.conftest import MakeSettings, signed_source

BASE = "http://testserver"
TOKEN = "get-callback-auth-token-0123456789abcdef"

#: Twilio's status callback parameters for a completed call (twilio.com/docs/voice/api/call-resource,
#: "StatusCallback" parameters), as Twilio appends them to a GET's URL.
TWILIO_FIELDS = {
    "AccountSid": "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
    "CallSid": "CA9aa1b2c3d4e5f60718293a4b5c6d7e8f",
    "CallStatus": "completed",
    "CallDuration": "17",
    "Direction": "outbound-api",
    "From": "+15017122661",
    "To": "+15558675310",
    "SequenceNumber": "3",
    "Timestamp": "Mon, 16 Aug 2010 03:45:01 +0000",
    "CallbackSource": "call-progress-events",
}

#: A Plivo Hangup as the XML request page lists its parameters (docs.plivo.com/docs/voice/xml/request).
PLIVO_FIELDS = {
    "CallUUID": "6f1d2c3a-8e4b-11ef-9c1a-02420a00ge01",
    "Event": "Hangup",
    "From": "14155551234",
    "To": "14155559876",
    "Direction": "outbound",
    "CallStatus": "completed",
    "HangupCause": "NORMAL_CLEARING",
    "HangupCauseCode": "4000",
    "HangupCauseName": "Normal Hangup",
    "AnswerTime": "2026-05-29 17:30:09",
    "Duration": "42",
    "BillDuration": "42",
}

VOBIZ_FIELDS = {**PLIVO_FIELDS, "CallUUID": "8a9c1b52-3d4c-11ef-bef9-0242ac11ge01"}

#: A Vonage ``completed`` event (developer.vonage.com/en/voice/voice-api/webhook-reference), as GET sends it.
VONAGE_FIELDS = {
    "from": "447700900000",
    "to": "447700900001",
    "uuid": "63f61863-4a51-4f6b-86e1-46edebcf9356",
    "conversation_uuid": "CON-f972836a-550f-45fa-956c-12a2ab5b7d22",
    "status": "completed",
    "direction": "outbound",
    "timestamp": "2026-05-29T12:00:05.000Z",
    "duration": "20",
    "price": "0.00333333",
}

NONCE = "05429567804466091622"


def target(source: str, fields: dict[str, str], extra_query: str = "") -> str:
    return f"/webhooks/{source}?{extra_query}{urllib.parse.urlencode(fields)}"


def twilio_headers(url: str) -> dict[str, str]:
    """The signature twilio-python computes for a GET: the full URL with its query, no parameters."""
    return {"X-Twilio-Signature": RequestValidator(TOKEN).compute_signature(url, {})}


def plivo_headers(url: str, nonce: str = NONCE) -> dict[str, str]:
    """The V3 signature plivo-python computes for a GET (``construct_get_url``)."""
    signed_url = construct_get_url(url, {}).decode()
    signature = get_signature_v3(TOKEN.encode(), signed_url, nonce.encode()).decode()
    assert validate_v3_signature("GET", url, nonce, TOKEN, signature)
    return {"X-Plivo-Signature-V3": signature, "X-Plivo-Signature-V3-Nonce": nonce}


def vobiz_headers(url: str, nonce: str = NONCE) -> dict[str, str]:
    """V3 as docs.vobiz.ai/concepts/validating-callbacks writes it: base64(HMAC-SHA256(token, baseURL + "." +
    nonce)), the base URL being the callback URL with its query stripped."""
    base_url = url.split("?", 1)[0]
    digest = hmac.new(TOKEN.encode(), f"{base_url}.{nonce}".encode(), hashlib.sha256).digest()
    return {"X-Vobiz-Signature-V3": base64.b64encode(digest).decode(), "X-Vobiz-Signature-V3-Nonce": nonce}


def vonage_headers(url: str) -> dict[str, str]:
    """A token as Vonage signs a GET callback: payload_hash over the query parameters as compact JSON."""
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    claims = {
        "iat": int(time.time()),
        "jti": "0d9c5a8e-0a8c-4f3e-9d55-6e1d7b6b9f0a",
        "api_key": "abcd1234",
        "payload_hash": hashlib.sha256(orjson.dumps(query)).hexdigest(),
    }
    token = jwt.encode(claims, TOKEN, algorithm="HS256")
    assert verify_signature(token, TOKEN)
    return {"Authorization": f"Bearer {token}"}


SIGNERS: dict[str, tuple[dict[str, str], Callable[[str], dict[str, str]], str]] = {
    "twilio": (TWILIO_FIELDS, twilio_headers, "CallSid"),
    "plivo": (PLIVO_FIELDS, plivo_headers, "CallUUID"),
    "vobiz": (VOBIZ_FIELDS, vobiz_headers, "CallUUID"),
    "vonage": (VONAGE_FIELDS, vonage_headers, "uuid"),
}


def call_state(r: redis.Redis, keys: Keys, provider: str, call_id: str) -> str:
    return (r.hget(keys.call(provider, call_id), "state") or b"new").decode()


@pytest.mark.parametrize("provider", sorted(SIGNERS))
def test_unsigned_get_callback_is_applied(
    provider: str, make_client: Callable[..., TestClient], r: redis.Redis, keys: Keys
) -> None:
    """On an unverified source a GET callback is read from its query: each of these ends the call completed."""
    fields, _, id_field = SIGNERS[provider]
    response = make_client().get(target(provider, fields))
    assert response.status_code == 200, response.text
    [result] = response.json()["results"]
    assert (result["outcome"], result["to_state"]) == ("applied", "completed")
    assert call_state(r, keys, provider, fields[id_field]) == "completed"


@pytest.mark.parametrize("provider", sorted(SIGNERS))
def test_signed_get_callback_is_applied(
    provider: str, make_client: Callable[..., TestClient], make_settings: MakeSettings, r: redis.Redis, keys: Keys
) -> None:
    """Signed as the provider signs a GET (SDK-computed for Twilio, Plivo and Vonage), it is accepted."""
    fields, headers_for, id_field = SIGNERS[provider]
    client = make_client(make_settings({provider: signed_source(provider, provider, "previous-token", TOKEN)}))
    path = target(provider, fields)
    response = client.get(path, headers=headers_for(BASE + path))
    assert response.status_code == 200, response.text
    assert call_state(r, keys, provider, fields[id_field]) == "completed"


@pytest.mark.parametrize("provider", ["twilio", "plivo", "vonage"])
def test_get_callback_with_an_altered_query_is_refused(
    provider: str, make_client: Callable[..., TestClient], make_settings: MakeSettings, r: redis.Redis, keys: Keys
) -> None:
    """These providers sign the query of a GET: a status changed in transit is refused, nothing published."""
    fields, headers_for, _ = SIGNERS[provider]
    client = make_client(make_settings({provider: signed_source(provider, provider, TOKEN)}))
    headers = headers_for(BASE + target(provider, fields))
    status_field = {"twilio": "CallStatus", "plivo": "HangupCauseName", "vonage": "status"}[provider]
    altered = {**fields, status_field: "busy"}
    response = client.get(target(provider, altered), headers=headers)
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "invalid_signature"
    assert r.xlen(keys.transitions()) == 0


def test_vobiz_get_nonce_cannot_carry_a_second_query(
    make_client: Callable[..., TestClient], make_settings: MakeSettings, r: redis.Redis, keys: Keys
) -> None:
    """Vobiz signs only the URL without its query and a nonce, so a GET's fields are not signed: the nonce
    authenticates one callback, and the same headers on another query are refused as a replay."""
    client = make_client(make_settings({"vobiz": signed_source("vobiz", "vobiz", TOKEN)}))
    headers = vobiz_headers(BASE + target("vobiz", VOBIZ_FIELDS))
    assert client.get(target("vobiz", VOBIZ_FIELDS), headers=headers).status_code == 200
    forged = {**VOBIZ_FIELDS, "CallUUID": "forged-call", "BillDuration": "0", "AnswerTime": ""}
    response = client.get(target("vobiz", forged), headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "replayed_request"
    assert r.exists(keys.call("vobiz", "forged-call")) == 0


def test_get_signature_covers_a_configured_public_url_with_its_own_query(
    make_client: Callable[..., TestClient], make_settings: MakeSettings, r: redis.Redis, keys: Keys
) -> None:
    """Behind a proxy: the callback URL configured at Twilio has a query of its own, and Twilio appends the
    fields to it; the signature covers the public URL with the whole query as received."""
    public = "https://hooks.example.com/webhooks/twilio?tenant=acme"
    source = signed_source("twilio", "twilio", TOKEN, public_url=public)
    client = make_client(make_settings({"twilio": source}))
    query = "tenant=acme&" + urllib.parse.urlencode(TWILIO_FIELDS)
    response = client.get(f"/webhooks/twilio?{query}", headers=twilio_headers(f"{public}&{query[12:]}"))
    assert response.status_code == 200, response.text
    assert call_state(r, keys, "twilio", TWILIO_FIELDS["CallSid"]) == "completed"


@pytest.mark.parametrize("provider", sorted(SIGNERS))
def test_our_get_signature_is_the_providers(provider: str) -> None:
    """``sign`` for a GET produces what the provider's own algorithm (and SDK) produces for that URL."""
    fields, _, _ = SIGNERS[provider]
    url = BASE + target(provider, fields)
    headers = PROVIDERS[provider].sign(OutgoingRequest(url=url, body=b"", content_type="", method="GET"), TOKEN, 0.0)
    if provider == "twilio":
        assert RequestValidator(TOKEN).validate(url, {}, headers["X-Twilio-Signature"])
    elif provider == "plivo":
        nonce = headers["X-Plivo-Signature-V3-Nonce"]
        assert validate_v3_signature("GET", url, nonce, TOKEN, headers["X-Plivo-Signature-V3"])
    elif provider == "vobiz":
        nonce = headers["X-Vobiz-Signature-V3-Nonce"]
        assert headers["X-Vobiz-Signature-V3"] == vobiz_headers(url, nonce)["X-Vobiz-Signature-V3"]
    else:
        token = headers["Authorization"].removeprefix("Bearer ")
        assert verify_signature(token, TOKEN)
        claims = jwt.decode(token, TOKEN, algorithms=["HS256"])
        assert claims["payload_hash"] == hashlib.sha256(orjson.dumps(fields)).hexdigest()


@pytest.mark.parametrize("provider", sorted(set(PROVIDERS) - set(SIGNERS)))
def test_providers_that_never_get_answer_405(
    provider: str, make_client: Callable[..., TestClient], r: redis.Redis, keys: Keys
) -> None:
    """A GET (or HEAD) to a provider that only POSTs is 405 naming the method, and nothing is kept."""
    client = make_client()
    for method in ("GET", "HEAD"):
        response = client.request(method, f"/webhooks/{provider}?call_id=c1&status=completed")
        assert response.status_code == 405, (method, response.text)
        if method == "GET":
            assert response.json()["error"]["code"] == "method_not_allowed"
            assert "POST" in response.json()["error"]["message"]
    assert r.exists(keys.deadletter()) == 0
    assert r.xlen(keys.transitions()) == 0


def test_get_with_an_undecodable_query_is_400_and_kept(
    make_client: Callable[..., TestClient], r: redis.Redis, keys: Keys
) -> None:
    """Percent-escapes that are not UTF-8 in a GET's fields: 400 naming the query, kept in the dead letters."""
    response = make_client().get("/webhooks/twilio?CallSid=CA1&CallStatus=%ff")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_body"
    assert "query string" in response.json()["error"]["message"]
    assert r.xlen(keys.deadletter()) == 1
