"""``GET /calls/{source}/{call_id}``: a call's state and history, for operators only."""

from __future__ import annotations

from collections.abc import Callable

import redis.asyncio
from starlette.testclient import TestClient

from receiver.app import create_app
from receiver.embedded import free_port
from receiver.settings import Secret
from tests.conftest import MakeSettings

TOKEN = "operator-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
RING = b"CallUUID=c-42&From=14155551234&To=919876543210&Direction=outbound&Event=Ring&CallStatus=ringing"
ANSWER = b"CallUUID=c-42&From=14155551234&To=919876543210&Direction=outbound&Event=StartApp&CallStatus=in-progress"


def operator_client(make_client: Callable[..., TestClient], make_settings: MakeSettings) -> TestClient:
    return make_client(make_settings(operator_token=Secret(TOKEN)))


def test_lookup_shows_state_attempt_version_and_history(
    make_client: Callable[..., TestClient], make_settings: MakeSettings
) -> None:
    """After Ring then StartApp, the call is answered at version 2, with both transitions in order."""
    client = operator_client(make_client, make_settings)
    for body in (RING, ANSWER, RING):
        assert client.post("/webhooks/vobiz", content=body, headers=FORM).status_code == 200
    response = client.get("/calls/vobiz/c-42", headers=AUTH)
    assert response.status_code == 200
    call = response.json()
    assert {key: call[key] for key in ("source", "call_id", "provider", "state", "attempt", "version")} == {
        "source": "vobiz",
        "call_id": "c-42",
        "provider": "vobiz",
        "state": "answered",
        "attempt": 1,
        "version": 2,
    }
    assert [(entry["kind"], entry["from_state"], entry["to_state"], entry["version"]) for entry in call["history"]] == [
        ("transition", "new", "ringing", 1),
        ("transition", "ringing", "answered", 2),
    ]
    assert call["history"][1]["event"]["provider_event"] == "StartApp"
    assert call["expires_in_ms"] > 0


def test_call_ids_containing_slashes_can_be_looked_up(
    make_client: Callable[..., TestClient], make_settings: MakeSettings
) -> None:
    """A provider id with '/' in it is found under the same path segments."""
    client = operator_client(make_client, make_settings)
    body = b"CallUUID=trunk/7/abc&Event=Ring&CallStatus=ringing"
    assert client.post("/webhooks/vobiz", content=body, headers=FORM).status_code == 200
    response = client.get("/calls/vobiz/trunk/7/abc", headers=AUTH)
    assert response.status_code == 200
    assert (response.json()["call_id"], response.json()["state"]) == ("trunk/7/abc", "ringing")


def test_a_trailing_newline_is_part_of_the_id_looked_up(
    make_client: Callable[..., TestClient], make_settings: MakeSettings
) -> None:
    """``/calls/vobiz/c-42%0A`` names another id than ``c-42``: it is not answered with c-42's record."""
    client = operator_client(make_client, make_settings)
    assert client.post("/webhooks/vobiz", content=RING, headers=FORM).status_code == 200
    response = client.get("/calls/vobiz/c-42%0A", headers=AUTH)
    assert response.status_code == 404
    assert response.json()["error"]["call_id"] == "c-42\n"


def test_a_newline_inside_an_id_is_looked_up_as_written(
    make_client: Callable[..., TestClient], make_settings: MakeSettings
) -> None:
    """An id with a line break in it is a call id like any other: 404 unknown_call naming it, not a bare 404."""
    response = operator_client(make_client, make_settings).get("/calls/vobiz/a%0Ab", headers=AUTH)
    assert response.status_code == 404
    assert response.json()["error"] == {
        "code": "unknown_call",
        "message": "no call 'a\\nb' is known for source 'vobiz'",
        "source": "vobiz",
        "call_id": "a\nb",
    }


def test_unknown_call_is_404_naming_it(make_client: Callable[..., TestClient], make_settings: MakeSettings) -> None:
    """A call never seen answers 404 unknown_call, naming the call and the source."""
    response = operator_client(make_client, make_settings).get("/calls/vobiz/never-seen", headers=AUTH)
    assert response.status_code == 404
    assert response.json() == {
        "error": {
            "code": "unknown_call",
            "message": "no call 'never-seen' is known for source 'vobiz'",
            "source": "vobiz",
            "call_id": "never-seen",
        }
    }


def test_unknown_source_is_404(make_client: Callable[..., TestClient], make_settings: MakeSettings) -> None:
    """A source that is not configured answers 404 unknown_source."""
    response = operator_client(make_client, make_settings).get("/calls/no-such-source/c-1", headers=AUTH)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_source"
    assert response.json()["error"]["source"] == "no-such-source"


def test_missing_or_wrong_token_is_401_with_a_bearer_challenge(
    make_client: Callable[..., TestClient], make_settings: MakeSettings
) -> None:
    """No token, a wrong one, another scheme, or the token as a query parameter: 401, and the body never
    echoes what was sent; sources cannot be probed without the token either."""
    client = operator_client(make_client, make_settings)
    assert client.post("/webhooks/vobiz", content=RING, headers=FORM).status_code == 200
    attempts = {
        "no header": ("/calls/vobiz/c-42", {}),
        "wrong token": ("/calls/vobiz/c-42", {"Authorization": "Bearer not-the-token"}),
        "token prefix": ("/calls/vobiz/c-42", {"Authorization": f"Bearer {TOKEN[:-1]}"}),
        "basic scheme": ("/calls/vobiz/c-42", {"Authorization": f"Basic {TOKEN}"}),
        "empty bearer": ("/calls/vobiz/c-42", {"Authorization": "Bearer "}),
        "query string": (f"/calls/vobiz/c-42?token={TOKEN}", {}),
        "unknown source": ("/calls/no-such-source/c-42", {"Authorization": "Bearer not-the-token"}),
    }
    for name, (path, headers) in attempts.items():
        response = client.get(path, headers=headers)
        assert response.status_code == 401, name
        assert response.headers["www-authenticate"] == 'Bearer realm="callstream"', name
        assert response.json() == {
            "error": {
                "code": "unauthorized",
                "message": "call lookup needs the operator token: send Authorization: Bearer <operator token>",
            }
        }, name
        assert "not-the-token" not in response.text


def test_lookup_is_closed_when_no_operator_token_is_configured(make_client: Callable[..., TestClient]) -> None:
    """Never open by default: without [operator] token the lookup is 403 and says how to enable it."""
    client = make_client()
    assert client.post("/webhooks/vobiz", content=RING, headers=FORM).status_code == 200
    for headers in ({}, {"Authorization": "Bearer anything"}):
        response = client.get("/calls/vobiz/c-42", headers=headers)
        assert response.status_code == 403
        error = response.json()["error"]
        assert error["code"] == "operator_access_disabled"
        assert "set [operator] token in the configuration" in error["message"]


def test_lookup_with_redis_down_is_503(make_settings: MakeSettings) -> None:
    """Redis unreachable: 503 redis_unavailable, so the operator knows to retry, never a 500."""
    dead = redis.asyncio.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1)
    app = create_app(make_settings(operator_token=Secret(TOKEN)), redis=dead)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/calls/vobiz/c-42", headers=AUTH)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "redis_unavailable"
