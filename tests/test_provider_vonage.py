"""Vonage: the signed-callback JWT (HS256, checked against PyJWT and Vonage's own verify_jwt both ways),
its freshness and body hash, and the status mapping, through the real app and a real Redis."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any, cast

import jwt
import orjson
import pytest
import redis
from starlette.testclient import TestClient
from vonage_jwt.verify_jwt import verify_signature  # type: ignore[import-untyped]

from receiver.delivery import Delivery
from receiver.errors import SignatureError
from receiver.providers import vonage
from receiver.settings import Secret, Source
from receiver.signatures import jwt_hs256
from statemachine.keys import Keys
from statemachine.store import entry_fields
from tests.conftest import MakeSettings, signed_source

# PyJWT warns about HMAC keys under 32 bytes; Vonage signature secrets are longer anyway.
SECRET = "vonage-signature-secret-0123456789abcdef"
OLD_SECRET = "vonage-signature-secret-previous-000000"
LEG = "63f61863-4a51-4f6b-86e1-46edebcf9356"


def event(status: str, **fields: Any) -> bytes:
    """An event webhook as the Vonage webhook reference documents it."""
    document = {
        "from": "447700900000",
        "to": "447700900001",
        "uuid": LEG,
        "conversation_uuid": "CON-f972836a-550f-45fa-956c-12a2ab5b7d22",
        "status": status,
        "direction": "outbound",
        "timestamp": "2026-05-29T12:00:05.000Z",
        **fields,
    }
    return orjson.dumps(document)


def claims_for(body: bytes, **extra: Any) -> dict[str, Any]:
    return {
        "iat": int(time.time()),
        "jti": "6b1e4e4e-7c0f-4b7e-9a6e-0f5d2b1c3a4e",
        "api_key": "abcd1234",
        "payload_hash": hashlib.sha256(body).hexdigest(),
        **extra,
    }


def delivery(token: str, body: bytes, *secrets: str) -> Delivery:
    source = Source(name="vg", provider="vonage", secrets=tuple(Secret(s) for s in secrets))
    return Delivery(source, body, {"authorization": f"Bearer {token}"}, "http://testserver/webhooks/vg", 0.0)


def test_our_tokens_verify_with_pyjwt_and_vonage_verify_jwt() -> None:
    """A token we sign is accepted by PyJWT and by vonage_jwt's verify_signature, and refused by both
    under another secret."""
    body = event("answered")
    token = jwt_hs256.encode(claims_for(body), SECRET)
    assert jwt.decode(token, SECRET, algorithms=["HS256"])["payload_hash"] == hashlib.sha256(body).hexdigest()
    assert verify_signature(token, SECRET) is True
    assert verify_signature(token, OLD_SECRET) is False


def test_pyjwt_tokens_verify_with_our_decoder() -> None:
    """A token PyJWT signs (as Vonage's SDK does) is accepted, with its claims, and refused under another secret."""
    body = event("answered")
    token = jwt.encode(claims_for(body), SECRET, algorithm="HS256")
    now = time.time()
    assert vonage.verify(delivery(token, body, SECRET), now).nonces == ()  # payload_hash binds the body
    with pytest.raises(SignatureError) as caught:
        vonage.verify(delivery(token, body, OLD_SECRET), now)
    assert caught.value.details["header"] == "Authorization"
    assert SECRET not in caught.value.message


def test_rotation_accepts_either_secret() -> None:
    """With the old and the new secret configured, tokens signed with either verify."""
    body = event("ringing")
    now = time.time()
    for secret in (OLD_SECRET, SECRET):
        token = jwt.encode(claims_for(body), secret, algorithm="HS256")
        assert vonage.verify(delivery(token, body, OLD_SECRET, SECRET), now).checked


def none_token(claims: dict[str, Any]) -> str:
    header = jwt_hs256.b64url(orjson.dumps({"alg": "none", "typ": "JWT"}))
    return f"{header}.{jwt_hs256.b64url(orjson.dumps(claims))}."


@pytest.mark.parametrize(
    "make_token",
    [
        lambda claims: none_token(claims),
        lambda claims: jwt.encode(claims, SECRET + SECRET, algorithm="HS512"),
        lambda claims: jwt.encode({**claims, "iat": int(time.time()) - 301}, SECRET, algorithm="HS256"),
        lambda claims: jwt.encode({**claims, "iat": int(time.time()) + 301}, SECRET, algorithm="HS256"),
        lambda claims: jwt.encode({**claims, "exp": int(time.time()) - 1}, SECRET, algorithm="HS256"),
        lambda claims: jwt.encode({k: v for k, v in claims.items() if k != "iat"}, SECRET, algorithm="HS256"),
        lambda claims: jwt.encode({**claims, "payload_hash": "0" * 64}, SECRET, algorithm="HS256"),
        lambda claims: jwt.encode(claims, SECRET, algorithm="HS256")[:-2] + "AA",
        lambda claims: "not-a-jwt",
    ],
    ids=["alg-none", "alg-hs512", "stale-iat", "future-iat", "expired", "no-iat", "payload-hash", "sig", "shape"],
)
def test_refused_tokens_name_the_authorization_header(make_token: Callable[[dict[str, Any]], str]) -> None:
    """alg none or other than HS256, iat outside 300 s or missing, exp passed, another body's hash, an altered
    signature, not a JWT: each is refused naming Authorization."""
    body = event("answered")
    with pytest.raises(SignatureError) as caught:
        vonage.verify(delivery(make_token(claims_for(body)), body, SECRET, SECRET + SECRET), time.time())
    assert caught.value.details["header"] == "Authorization"


def published(r: redis.Redis, keys: Keys) -> list[dict[str, Any]]:
    entries = cast(list[tuple[bytes, dict[bytes, bytes]]], r.xrange(keys.transitions()))
    return [entry_fields(fields) for _id, fields in entries]


def bearer(token: str) -> dict[str, str]:
    return {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}


def test_app_accepts_signed_and_refuses_tampered_body(
    make_client: Callable[..., TestClient], make_settings: MakeSettings, r: redis.Redis, keys: Keys
) -> None:
    """Signed → 200 and published; the same token with a changed body → 401 naming Authorization."""
    client = make_client(make_settings({"vg": signed_source("vg", "vonage", SECRET)}))
    body = event("answered")
    token = jwt.encode(claims_for(body), SECRET, algorithm="HS256")
    assert client.post("/webhooks/vg", content=body, headers=bearer(token)).status_code == 200
    tampered = event("completed", duration="42")
    response = client.post("/webhooks/vg", content=tampered, headers=bearer(token))
    assert response.status_code == 401
    assert response.json()["error"]["header"] == "Authorization"
    assert [entry["to_state"] for entry in published(r, keys)] == ["answered"]


def test_token_without_payload_hash_authenticates_one_event_only(
    make_client: Callable[..., TestClient], make_settings: MakeSettings, r: redis.Redis, keys: Keys
) -> None:
    """Without payload_hash the body is not signed: the token's jti is remembered, so its reuse for another
    body is refused as a replay while its provider retry stays a duplicate."""
    client = make_client(make_settings({"vg": signed_source("vg", "vonage", SECRET)}))
    body = event("ringing")
    claims = {key: value for key, value in claims_for(body).items() if key != "payload_hash"}
    token = jwt.encode(claims, SECRET, algorithm="HS256")
    assert client.post("/webhooks/vg", content=body, headers=bearer(token)).json()["results"][0]["outcome"] == (
        "applied"
    )
    retry = client.post("/webhooks/vg", content=body, headers=bearer(token))
    assert retry.json()["results"][0]["outcome"] == "duplicate"
    reused = client.post("/webhooks/vg", content=event("completed"), headers=bearer(token))
    assert (reused.status_code, reused.json()["error"]["code"]) == (401, "replayed_request")
    assert [entry["to_state"] for entry in published(r, keys)] == ["ringing"]


@pytest.mark.parametrize(
    ("body", "to_state", "extras"),
    [
        (event("rejected"), "failed", {"reason": "platform_rejected"}),
        (event("timeout"), "no_answer", {"reason": "ring_timeout"}),
        (event("unanswered", detail="unavailable"), "no_answer", {"detail": "unavailable"}),
        (event("started"), "dialing", {}),
        (
            event(
                "completed",
                start_time="2026-05-29T12:00:05.000Z",
                end_time="2026-05-29T12:00:47.000Z",
                duration="42",
                rate="0.01270000",
                price="0.00889000",
                network="GB-FIXED",
            ),
            "completed",
            {
                "start_time": "2026-05-29T12:00:05Z",
                "end_time": "2026-05-29T12:00:47Z",
                "duration_s": 42,
                "rate": "0.01270000",
                "price": "0.00889000",
                "network": "GB-FIXED",
            },
        ),
    ],
    ids=["rejected", "timeout", "unanswered", "started", "completed"],
)
def test_status_rows(
    body: bytes,
    to_state: str,
    extras: dict[str, Any],
    make_client: Callable[..., TestClient],
    r: redis.Redis,
    keys: Keys,
) -> None:
    """The §10.2 rows that are not one-to-one: each reaches its state with the facts it carries."""
    response = make_client().post("/webhooks/vonage", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 200
    [entry] = published(r, keys)
    assert entry["to_state"] == to_state
    assert entry["event"]["extras"] == extras
    assert entry["event"]["correlation"] == {"conversation_uuid": "CON-f972836a-550f-45fa-956c-12a2ab5b7d22"}


def test_machine_detection_uses_call_uuid(make_client: Callable[..., TestClient], r: redis.Redis, keys: Keys) -> None:
    """human/machine carry call_uuid, not uuid: the annotation lands on the same call with answered_by."""
    client = make_client()
    headers = {"Content-Type": "application/json"}
    client.post("/webhooks/vonage", content=event("answered"), headers=headers)
    machine = orjson.dumps(
        {"call_uuid": LEG, "conversation_uuid": "CON-1", "status": "machine", "timestamp": "2026-05-29T12:00:07.000Z"}
    )
    assert client.post("/webhooks/vonage", content=machine, headers=headers).json()["results"][0]["outcome"] == (
        "annotation"
    )
    annotation = published(r, keys)[-1]
    assert (annotation["kind"], annotation["call_id"], annotation["to_state"]) == ("annotation", LEG, "answered")
    assert annotation["event"]["extras"] == {"annotation": "machine_detection", "answered_by": "machine"}


def test_non_status_event_is_dead_lettered(make_client: Callable[..., TestClient], r: redis.Redis, keys: Keys) -> None:
    """A record event (no status) is kept in the dead-letter stream, not applied."""
    record = orjson.dumps(
        {
            "start_time": "2026-05-29T12:00:05Z",
            "recording_url": "https://api.nexmo.com/v1/files/x",
            "conversation_uuid": "CON-1",
            "timestamp": "2026-05-29T12:00:30.000Z",
        }
    )
    response = make_client().post("/webhooks/vonage", content=record, headers={"Content-Type": "application/json"})
    assert (response.status_code, response.json()["error"]["code"]) == (202, "unknown_event")
    assert r.xlen(keys.deadletter()) == 1
