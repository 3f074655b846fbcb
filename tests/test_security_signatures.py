"""An attacker holding one captured, validly signed request (signed with the official SDKs: plivo, PyJWT
as Vonage's SDK uses it) tries to make it say something else. Through the real app and a real Redis, each
attempt is refused and the victim call's state and stream are untouched.

Against a receiver without these defences every test here fails: a V3 signature passed as V2 for the
nonce ``"." + n`` (Vobiz) or ``"?" + params + "." + n`` (Plivo) authenticated any body; a nonce (or Vonage
``jti``) was spent only when its request became an event, so the headers of a dead-lettered request
authenticated another body; the weaker version's nonce stayed unspent beside the stronger one's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import urllib.parse
import uuid
from collections.abc import Callable
from typing import Any

import jwt
import orjson
import pytest
import redis
from plivo.utils import validate_signature
from plivo.utils.signature_v3 import construct_post_url, get_signature_v3
from starlette.testclient import TestClient
from vonage_jwt.errors import VonageVerifyJwtError
from vonage_jwt.verify_jwt import verify_signature

from statemachine.keys import Keys
from tests.conftest import MakeSettings, signed_source

Client = Callable[..., TestClient]
TOKEN = "VOBIZAUTHTOKEN0123456789abcdefghijklmno"
VICTIM = "victim-call-1"
FORM = "application/x-www-form-urlencoded"
RING = f"Event=Ring&CallUUID={VICTIM}&CallStatus=ringing".encode()
FORGED_BUSY = f"Event=Hangup&CallUUID={VICTIM}&HangupCause=USER_BUSY&CallStatus=busy".encode()


def nonce() -> str:
    return str(uuid.uuid4().int)[:20].rjust(20, "0")


def vobiz_v3(url: str, token: str = TOKEN, value: str | None = None) -> dict[str, str]:
    """Vobiz V3 headers as Vobiz sends them: base64 HMAC-SHA256 of ``base_url + "." + nonce``, which is what
    plivo's ``get_signature_v3`` computes for a URL without parameters."""
    value = value or nonce()
    return {"X-Vobiz-Signature-V3": get_signature_v3(token, url, value).decode(), "X-Vobiz-Signature-V3-Nonce": value}


def state(r: redis.Redis, keys: Keys, source: str, call_id: str = VICTIM) -> tuple[bytes | None, list[bytes]]:
    """The call's state and every published transition's destination."""
    transitions = [fields[b"to_state"] for _id, fields in r.xrange(keys.transitions())]
    return r.hget(keys.call(source, call_id), "state"), transitions


def error_code(response: Any) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


@pytest.fixture
def vobiz(make_client: Client, make_settings: MakeSettings) -> TestClient:
    """Two Vobiz sources with one token: ``vobiz`` accepts V3 only (the default), ``vobiz2`` V3 and V2."""
    sources = {
        "vobiz": signed_source("vobiz", "vobiz", TOKEN),
        "vobiz2": signed_source("vobiz2", "vobiz", TOKEN, options={"signature_versions": ["v3", "v2"]}),
    }
    return make_client(make_settings(sources))


def ring_victim(client: TestClient, source: str) -> dict[str, str]:
    """The victim call rings (a genuine V3 request); returns that request's headers, as captured."""
    headers = {"Content-Type": FORM, **vobiz_v3(f"http://testserver/webhooks/{source}")}
    response = client.post(f"/webhooks/{source}", content=RING, headers=headers)
    assert response.json()["results"][0]["to_state"] == "ringing"
    return headers


@pytest.mark.parametrize("source", ["vobiz", "vobiz2"])
def test_vobiz_v3_signature_passed_off_as_v2_is_refused(
    source: str, vobiz: TestClient, r: redis.Redis, keys: Keys
) -> None:
    """The captured V3 signature is a valid V2 signature for the nonce ``"." + n`` (plivo's own V2 validator
    says so): sent as V2 with a forged hangup, it is refused whether or not the source accepts V2."""
    captured = ring_victim(vobiz, source)
    url = f"http://testserver/webhooks/{source}"
    signature, captured_nonce = captured["X-Vobiz-Signature-V3"], captured["X-Vobiz-Signature-V3-Nonce"]
    assert validate_signature(url, "." + captured_nonce, signature, TOKEN)
    forged = {
        "Content-Type": FORM,
        "X-Vobiz-Signature-V2": signature,
        "X-Vobiz-Signature-V2-Nonce": "." + captured_nonce,
    }
    assert vobiz.post(f"/webhooks/{source}", content=FORGED_BUSY, headers=forged).status_code == 401
    assert state(r, keys, source) == (b"ringing", [b"ringing"])


def test_plivo_v3_signature_passed_off_as_v2_is_refused(
    make_client: Client, make_settings: MakeSettings, r: redis.Redis, keys: Keys
) -> None:
    """Plivo V3 signs ``base + "?" + sorted params + "." + nonce``: as V2 it is valid for the nonce made of
    everything after the base URL. With V2 accepted too, that nonce is refused for its shape."""
    options = {"signature_versions": ["v3", "v2"]}
    client = make_client(make_settings({"plivo": signed_source("plivo", "plivo", TOKEN, options=options)}))
    url = "http://testserver/webhooks/plivo"
    params = dict(urllib.parse.parse_qsl(RING.decode()))
    captured_nonce = nonce()
    signed = construct_post_url(url, params).decode()
    signature = get_signature_v3(TOKEN, signed, captured_nonce).decode()
    genuine = {"Content-Type": FORM, "X-Plivo-Signature-V3": signature, "X-Plivo-Signature-V3-Nonce": captured_nonce}
    assert client.post("/webhooks/plivo", content=RING, headers=genuine).status_code == 200
    v2_nonce = signed[len(url) :] + "." + captured_nonce
    assert validate_signature(url, v2_nonce, signature, TOKEN)
    forged = {"Content-Type": FORM, "X-Plivo-Signature-V2": signature, "X-Plivo-Signature-V2-Nonce": v2_nonce}
    assert client.post("/webhooks/plivo", content=FORGED_BUSY, headers=forged).status_code == 401
    assert state(r, keys, "plivo") == (b"ringing", [b"ringing"])


def test_request_stripped_to_its_weaker_version_is_a_replay(vobiz: TestClient, r: redis.Redis, keys: Keys) -> None:
    """Vobiz sends V3 and V2 together. With both accepted, the genuine request spends both nonces, so the
    captured headers stripped to V2 (which does not sign the body) cannot carry a forged hangup; at the
    V3-only source, V2 is not accepted at all."""
    url = "http://testserver/webhooks/vobiz2"
    v2_nonce = nonce()
    v2 = {"X-Vobiz-Signature-V2": v2_signature(url, v2_nonce), "X-Vobiz-Signature-V2-Nonce": v2_nonce}
    genuine = {"Content-Type": FORM, **vobiz_v3(url), **v2}
    assert vobiz.post("/webhooks/vobiz2", content=RING, headers=genuine).status_code == 200
    stripped = {"Content-Type": FORM, **v2}
    assert error_code(vobiz.post("/webhooks/vobiz2", content=FORGED_BUSY, headers=stripped)) == (
        401,
        "replayed_request",
    )
    assert state(r, keys, "vobiz2") == (b"ringing", [b"ringing"])
    other = nonce()
    v2_only = {
        "Content-Type": FORM,
        "X-Vobiz-Signature-V2": v2_signature("http://testserver/webhooks/vobiz", other),
        "X-Vobiz-Signature-V2-Nonce": other,
    }
    assert vobiz.post("/webhooks/vobiz", content=FORGED_BUSY, headers=v2_only).status_code == 401
    assert r.hget(keys.call("vobiz", VICTIM), "state") is None


def v2_signature(url: str, value: str) -> str:
    """A V2 signature (base64 HMAC-SHA256 of URL + nonce), checked with plivo's V2 validator before use."""
    signature = base64.b64encode(hmac.new(TOKEN.encode(), (url + value).encode(), hashlib.sha256).digest()).decode()
    assert validate_signature(url, value, signature, TOKEN)
    return signature


@pytest.mark.parametrize(
    ("content_type", "body", "status"),
    [
        (FORM, f"Event=StartStream&CallUUID={VICTIM}".encode(), 202),
        ("text/plain", RING, 415),
        (FORM, b"Event=Ring&CallUUID", 400),
        (FORM, b"Event=Ring&CallStatus=ringing", 422),
    ],
    ids=["unknown-event", "content-type", "malformed", "missing-id"],
)
def test_nonce_of_a_dead_lettered_request_cannot_sign_another(
    content_type: str, body: bytes, status: int, vobiz: TestClient, r: redis.Redis, keys: Keys
) -> None:
    """A genuine request that is dead-lettered spends its nonce all the same: its captured headers with a
    forged body are a replay (401 ``replayed_request``), and the call does not change."""
    url = "http://testserver/webhooks/vobiz"
    ring_victim(vobiz, "vobiz")
    captured = vobiz_v3(url)
    assert vobiz.post(
        "/webhooks/vobiz", content=body, headers={"Content-Type": content_type, **captured}
    ).status_code == (status)
    forged = vobiz.post("/webhooks/vobiz", content=FORGED_BUSY, headers={"Content-Type": FORM, **captured})
    assert error_code(forged) == (401, "replayed_request")
    assert state(r, keys, "vobiz") == (b"ringing", [b"ringing"])
    assert r.xlen(keys.deadletter()) == 1


def test_replayed_nonce_with_an_unprocessable_body_is_refused_not_kept(
    vobiz: TestClient, r: redis.Redis, keys: Keys
) -> None:
    """Captured headers with a body that cannot be processed: 401 ``replayed_request``, and nothing is kept
    as a dead letter (which ``deadletter redrive`` would later run as if authenticated)."""
    captured = ring_victim(vobiz, "vobiz")
    unknown = f"Event=StartStream&CallUUID={VICTIM}".encode()
    assert error_code(vobiz.post("/webhooks/vobiz", content=unknown, headers=captured)) == (401, "replayed_request")
    assert r.xlen(keys.deadletter()) == 0


def test_retry_of_the_same_request_is_still_a_duplicate(vobiz: TestClient, r: redis.Redis, keys: Keys) -> None:
    """The genuine request again, byte for byte (a provider's retry), is not a replay: it is a duplicate."""
    captured = ring_victim(vobiz, "vobiz")
    again = vobiz.post("/webhooks/vobiz", content=RING, headers=captured)
    assert again.json()["results"][0]["outcome"] == "duplicate"
    mark = r.pttl(keys.nonce("vobiz", captured["X-Vobiz-Signature-V3-Nonce"]))
    assert 3 * 24 * 3600 * 1000 - 60_000 < mark <= 3 * 24 * 3600 * 1000  # retention.nonce_seconds


@pytest.mark.parametrize("value", ["12345", "1234567890123456789a", ".12345678901234567890", "1" * 21])
def test_nonce_of_another_shape_is_refused(value: str, vobiz: TestClient, r: redis.Redis, keys: Keys) -> None:
    """Only the documented nonce (20 decimal digits) is accepted, even with a matching signature."""
    headers = {"Content-Type": FORM, **vobiz_v3("http://testserver/webhooks/vobiz", value=value)}
    response = vobiz.post("/webhooks/vobiz", content=RING, headers=headers)
    assert (error_code(response), response.json()["error"]["header"]) == (
        (401, "invalid_signature"),
        "X-Vobiz-Signature-V3-Nonce",
    )
    assert state(r, keys, "vobiz") == (None, [])


def test_nonce_is_spent_in_its_own_partition(
    make_client: Client, make_settings: MakeSettings, r: redis.Redis, keys: Keys
) -> None:
    """With four partitions, a dead-lettered request's nonce is spent in the nonce's partition: its headers
    with another call's body (another partition) are a replay."""
    client = make_client(make_settings({"vobiz": signed_source("vobiz", "vobiz", TOKEN)}, partitions=4))
    captured = vobiz_v3("http://testserver/webhooks/vobiz")
    unknown = f"Event=StartStream&CallUUID={VICTIM}".encode()
    assert (
        client.post("/webhooks/vobiz", content=unknown, headers={"Content-Type": FORM, **captured}).status_code == 202
    )
    for call in ("other-call-1", "other-call-2", "other-call-3"):
        forged = f"Event=Hangup&CallUUID={call}&HangupCause=USER_BUSY".encode()
        response = client.post("/webhooks/vobiz", content=forged, headers={"Content-Type": FORM, **captured})
        assert error_code(response) == (401, "replayed_request")
    assert [key for key in r.scan_iter(match=f"{keys.prefix}:*:call:*")] == []


# -- Vonage ----------------------------------------------------------------------------------------

VONAGE_SECRET = "vonage-signature-secret-0123456789abcdef"


def vonage_event(status: str, call_id: str = VICTIM, timestamp: str = "2026-05-29T12:00:05.000Z") -> bytes:
    return orjson.dumps({"uuid": call_id, "status": status, "timestamp": timestamp, "direction": "outbound"})


def vonage_token(claims: dict[str, Any]) -> dict[str, str]:
    """A bearer token as Vonage's SDK signs and checks them (PyJWT HS256; vonage_jwt verifies it, and refuses
    it too when it is not valid yet)."""
    token = jwt.encode(claims, VONAGE_SECRET, algorithm="HS256")
    if claims.get("nbf", 0) > time.time():
        with pytest.raises(VonageVerifyJwtError, match="nbf"):
            verify_signature(token, VONAGE_SECRET)
    else:
        assert verify_signature(token, VONAGE_SECRET) is True
    return {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}


@pytest.fixture
def vonage(make_client: Client, make_settings: MakeSettings) -> TestClient:
    client = make_client(make_settings({"vg": signed_source("vg", "vonage", VONAGE_SECRET)}))
    body = vonage_event("ringing")
    headers = vonage_token({"iat": int(time.time()), "jti": str(uuid.uuid4()), "payload_hash": sha(body)})
    assert client.post("/webhooks/vg", content=body, headers=headers).json()["results"][0]["to_state"] == "ringing"
    return client


def sha(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def test_vonage_jti_of_a_dead_lettered_request_cannot_sign_another(
    vonage: TestClient, r: redis.Redis, keys: Keys
) -> None:
    """A token without payload_hash on a request that is dead-lettered (an unknown status) spends its jti:
    the same token with a forged ``completed`` is a replay."""
    headers = vonage_token({"iat": int(time.time()), "jti": str(uuid.uuid4())})
    assert vonage.post("/webhooks/vg", content=vonage_event("record"), headers=headers).status_code == 202
    forged = vonage.post("/webhooks/vg", content=vonage_event("completed"), headers=headers)
    assert error_code(forged) == (401, "replayed_request")
    assert state(r, keys, "vg") == (b"ringing", [b"ringing"])
    assert (
        0
        < r.pttl(keys.nonce("vg", jwt.decode(headers["Authorization"][7:], options={"verify_signature": False})["jti"]))
        <= 601_000
    )


@pytest.mark.parametrize(
    "claims",
    [
        {"iat": "now"},  # neither payload_hash nor jti: binds nothing
        {"iat": "now", "jti": "j-1", "nbf": "later"},  # not valid yet
    ],
    ids=["unbound", "future-nbf"],
)
def test_vonage_tokens_that_bind_nothing_or_are_not_valid_yet_are_refused(
    claims: dict[str, Any], vonage: TestClient, r: redis.Redis, keys: Keys
) -> None:
    now = int(time.time())
    claims = {
        key: now if value == "now" else now + 3600 if value == "later" else value for key, value in claims.items()
    }
    response = vonage.post("/webhooks/vg", content=vonage_event("completed"), headers=vonage_token(claims))
    assert (error_code(response), response.json()["error"]["header"]) == ((401, "invalid_signature"), "Authorization")
    assert state(r, keys, "vg") == (b"ringing", [b"ringing"])


def test_vonage_token_with_a_non_ascii_segment_is_401_not_500(vonage: TestClient, r: redis.Redis, keys: Keys) -> None:
    """A bearer token whose payload segment is not base64url (here: non-ASCII) is refused as a signature
    failure, with a JSON error and no traceback."""
    header = jwt.encode({"iat": 1}, VONAGE_SECRET, algorithm="HS256").split(".")[0]
    token = f"{header}.eyJpYXQiOjF9é.c2lnbmF0dXJl"
    response = vonage.post(
        "/webhooks/vg",
        content=vonage_event("completed"),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}".encode()},
    )
    assert error_code(response) == (401, "invalid_signature")
    assert state(r, keys, "vg") == (b"ringing", [b"ringing"])


# -- CallingBox ------------------------------------------------------------------------------------


def test_callingbox_event_type_comes_from_the_signed_body_only(
    make_client: Client, make_settings: MakeSettings, r: redis.Redis, keys: Keys
) -> None:
    """The signature covers the body, not the headers: a signed envelope without ``type`` is not made a
    ``call.completed`` by a ``CallingBox-Event-Type`` header (it is an unknown event, kept as a dead letter)."""
    from receiver.signatures import timestamped_hmac

    secret = "whsec_callingbox_secret"
    client = make_client(make_settings({"cb": signed_source("cb", "callingbox", secret)}))
    body = orjson.dumps({"id": "evt-1", "created": int(time.time()), "data": {"call": {"id": VICTIM}}})
    now = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "CallingBox-Signature": f"t={now},v1={timestamped_hmac.signature(secret, str(now), body)}",
        "CallingBox-Event-Type": "call.completed",
    }
    assert client.post("/webhooks/cb", content=body, headers=headers).status_code == 202
    assert state(r, keys, "cb") == (None, [])


@pytest.mark.parametrize(
    ("versions", "accepted"),
    [(None, True), ('["v3", "v2"]', True), ('["v2"]', True), ('["v4"]', False), ("[]", False), ('"v3"', False)],
)
def test_signature_versions_are_checked_when_the_configuration_loads(versions: str | None, accepted: bool) -> None:
    """``signature_versions`` is a non-empty list of the provider's versions; anything else stops the load
    with the key named."""
    from receiver.providers import PROVIDERS
    from receiver.settings import ConfigError, Settings

    option = "" if versions is None else f"signature_versions = {versions}\n"
    text = f'[sources.v]\nprovider = "vobiz"\nsecrets = ["s"]\n{option}'
    if accepted:
        assert Settings.from_toml(text, {}, list(PROVIDERS)).sources["v"].provider == "vobiz"
    else:
        with pytest.raises(ConfigError, match="sources.v.signature_versions"):
            Settings.from_toml(text, {}, list(PROVIDERS))
