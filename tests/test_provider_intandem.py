"""inTandem VoiceCall records: bearer-token authentication and the status mapping, through the real app
and a real Redis."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import orjson
import pytest
import redis
from starlette.testclient import TestClient

from statemachine.keys import Keys
from statemachine.store import entry_fields
from tests.conftest import MakeSettings, signed_source

TOKEN = "intandem-app-token-2f9c"
JSON = {"Content-Type": "application/json"}


def record(status: str, **fields: Any) -> bytes:
    """A VoiceCall in the create/update shape of developers.intandem.tech (voicecallscontroller_create)."""
    document = {
        "staff_uid": "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b",
        "client_uid": "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
        "business_uid": "d290f1ee-6c54-4b01-90e6-d701748f0851",
        "from_number": "+14155550148",
        "to_number": "+14155550901",
        "direction": "INBOUND",
        "status": status,
        "rate": "0.05",
        "provider": "VONAGE",
        "source_identifier": "call-src-001",
        "external_unique_id": "ext-call-001",
        **fields,
    }
    return orjson.dumps({key: value for key, value in document.items() if value is not None})


def published(r: redis.Redis, keys: Keys) -> list[dict[str, Any]]:
    entries = cast(list[tuple[bytes, dict[bytes, bytes]]], r.xrange(keys.transitions()))
    return [entry_fields(fields) for _id, fields in entries]


def test_bearer_token_of_either_secret_is_accepted(
    make_client: Callable[..., TestClient], make_settings: MakeSettings, r: redis.Redis, keys: Keys
) -> None:
    """During rotation the old and the new token both authenticate (scheme name in any case)."""
    client = make_client(make_settings({"it": signed_source("it", "intandem", "old-token", TOKEN)}))
    ringing = client.post(
        "/webhooks/it", content=record("INCOMING_CALL"), headers={**JSON, "Authorization": "Bearer old-token"}
    )
    answered = client.post(
        "/webhooks/it", content=record("ANSWERED_BY_STAFF"), headers={**JSON, "Authorization": f"bearer {TOKEN}"}
    )
    assert (ringing.status_code, answered.status_code) == (200, 200)
    assert [entry["to_state"] for entry in published(r, keys)] == ["ringing", "answered"]


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer not-the-token", f"Basic {TOKEN}", "Bearer ", f"Bearer {TOKEN}x"],
    ids=["missing", "wrong", "basic", "empty", "longer"],
)
def test_bad_bearer_is_401_naming_authorization(
    authorization: str | None,
    make_client: Callable[..., TestClient],
    make_settings: MakeSettings,
    r: redis.Redis,
    keys: Keys,
) -> None:
    """Missing, wrong, not a bearer, empty or merely prefixed by the token: 401, header named, nothing kept."""
    client = make_client(make_settings({"it": signed_source("it", "intandem", TOKEN)}))
    headers = dict(JSON) if authorization is None else {**JSON, "Authorization": authorization}
    response = client.post("/webhooks/it", content=record("INCOMING_CALL"), headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["header"] == "Authorization"
    assert TOKEN not in response.text
    assert r.xlen(keys.transitions()) == 0


@pytest.mark.parametrize(
    ("body", "to_state", "extras"),
    [
        (record("answered by vonage"), "answered", {"answered_by": "provider"}),
        (record("ANSWERED_BY_CALLS_PROVIDER"), "answered", {"answered_by": "provider"}),
        (
            record("ANSWERED_BY_STAFF", duration=155, price="0.13"),
            "completed",
            {"answered_by": "staff", "duration_s": 155, "price": "0.13"},
        ),
        (record("MISSED", duration=0), "no_answer", {"duration_s": 0}),
    ],
    ids=["object-page-prose", "provider-ivr", "answered-with-duration", "missed"],
)
def test_status_rows(
    body: bytes,
    to_state: str,
    extras: dict[str, Any],
    make_client: Callable[..., TestClient],
    r: redis.Redis,
    keys: Keys,
) -> None:
    """Statuses in either documented spelling reach their state; rate and provider always come along."""
    assert make_client().post("/webhooks/intandem", content=body, headers=JSON).status_code == 200
    [entry] = published(r, keys)
    assert entry["to_state"] == to_state
    assert entry["event"]["extras"] == {"rate": "0.05", "voice_provider": "VONAGE", **extras}
    assert entry["event"]["direction"] == "inbound"
    assert entry["event"]["correlation"]["business_uid"] == "d290f1ee-6c54-4b01-90e6-d701748f0851"


def test_external_id_under_either_name(make_client: Callable[..., TestClient], r: redis.Redis, keys: Keys) -> None:
    """The external unique id's field name is uncertain: external_id is read when external_unique_id is absent."""
    body = record("INCOMING_CALL", external_unique_id=None, external_id="ext-call-xyz")
    assert make_client().post("/webhooks/intandem", content=body, headers=JSON).status_code == 200
    assert [entry["call_id"] for entry in published(r, keys)] == ["ext-call-xyz"]


def test_record_without_external_id_is_refused(
    make_client: Callable[..., TestClient], r: redis.Redis, keys: Keys
) -> None:
    """No external id at all: 422 missing_field, kept in the dead-letter stream."""
    response = make_client().post(
        "/webhooks/intandem", content=record("INCOMING_CALL", external_unique_id=None), headers=JSON
    )
    assert (response.status_code, response.json()["error"]["code"]) == (422, "missing_field")
    assert r.xlen(keys.deadletter()) == 1


def test_voicemail_is_no_answer_and_an_annotation(
    make_client: Callable[..., TestClient], r: redis.Redis, keys: Keys
) -> None:
    """VOICEMAIL_RECEIVED ends the call as no_answer and publishes a voicemail annotation with the recording."""
    body = record("VOICEMAIL_RECEIVED", recording_url="https://example.com/v.mp3")
    response = make_client().post("/webhooks/intandem", content=body, headers=JSON)
    assert [result["outcome"] for result in response.json()["results"]] == ["applied", "annotation"]
    transition, annotation = published(r, keys)
    assert (transition["to_state"], transition["event"]["extras"]["voicemail"]) == ("no_answer", True)
    assert (annotation["kind"], annotation["name"]) == ("annotation", "voicemail")
    assert annotation["event"]["extras"]["recording_url"] == "https://example.com/v.mp3"


def test_unknown_status_is_dead_lettered(make_client: Callable[..., TestClient], r: redis.Redis, keys: Keys) -> None:
    """A status outside the documented enum is kept, not applied."""
    response = make_client().post("/webhooks/intandem", content=record("ON_HOLD"), headers=JSON)
    assert (response.status_code, response.json()["error"]["code"]) == (202, "unknown_event")
    assert (r.xlen(keys.deadletter()), r.xlen(keys.transitions())) == (1, 0)
