"""The webhook endpoint as a sender sees it: the answer's exact headers and JSON body, on success and on
every kind of failure, including one nothing expected (a key of the wrong type in Redis)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import orjson
import pytest
import redis
from starlette.testclient import TestClient

from statemachine.keys import Keys

RING = b"Event=Ring&CallUUID=c-1&CallStatus=ringing&From=14155551234&To=14155555678"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def test_accepted_callback_answers_json_with_length_type_and_request_id(make_client: Callable[..., TestClient]) -> None:
    response = make_client().post("/webhooks/vobiz", content=RING, headers={**FORM, "X-Request-Id": "req-1"})
    assert response.status_code == 200
    assert [(name, value) for name, value in response.headers.items()] == [
        ("content-length", str(len(response.content))),
        ("content-type", "application/json"),
        ("x-request-id", "req-1"),
    ]
    body = orjson.loads(response.content)
    assert body["source"] == "vobiz"
    assert [(r["call_id"], r["outcome"], r["from_state"], r["to_state"]) for r in body["results"]] == [
        ("c-1", "applied", "new", "ringing")
    ]


@pytest.mark.parametrize(
    ("path", "content", "headers", "status", "code"),
    [
        ("/webhooks/nobody", RING, FORM, 404, "unknown_source"),
        ("/webhooks/vobiz", b"Event=Ring", FORM, 422, "missing_field"),
        ("/webhooks/vobiz", b"{}", {"Content-Type": "text/plain"}, 415, "unsupported_content_type"),
        ("/webhooks/vobiz", b"x" * 2_000_000, FORM, 413, "body_too_large"),
    ],
)
def test_refused_callback_answers_the_error_table(
    make_client: Callable[..., TestClient], path: str, content: bytes, headers: dict[str, str], status: int, code: str
) -> None:
    response = make_client().post(path, content=content, headers=headers)
    assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    assert response.headers["content-type"] == "application/json"
    assert "x-request-id" in response.headers


def test_other_methods_get_the_routers_json_405(make_client: Callable[..., TestClient]) -> None:
    response = make_client().put("/webhooks/vobiz", content=RING, headers=FORM)
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert set(response.headers["allow"].split(", ")) == {"POST", "GET", "HEAD"}


def test_unexpected_failure_answers_500_and_is_logged(
    make_client: Callable[..., TestClient], r: redis.Redis, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    """A call key that is not a hash (another program wrote it) makes the step fail in a way nothing expects:
    the sender gets the generic 500 body, never a 2xx, and the traceback goes to the log."""
    r.set(keys.call_of("vobiz", "c-1"), "not a hash")
    client = make_client()
    with caplog.at_level(logging.ERROR, logger="callstream.receiver"):
        response = client.post("/webhooks/vobiz", content=RING, headers=FORM)
    assert response.status_code == 500
    assert response.json() == {"error": {"code": "internal_error", "message": "internal error"}}
    assert [record.getMessage() for record in caplog.records if record.name == "callstream.receiver"] == [
        "unexpected error"
    ]
    assert 'callstream_http_requests_total{method="POST",route="/webhooks/{source}",status="500"} 1.0' in (
        client.get("/metrics").text
    )


def test_mounted_under_a_root_path_the_router_reaches_the_same_endpoint(
    make_client: Callable[..., TestClient],
) -> None:
    """With a root path (an app mounted under a prefix) Starlette's router resolves the route: same answer."""
    response = make_client(root_path="/hooks").post("/hooks/webhooks/vobiz", content=RING, headers=FORM)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json()["results"][0]["outcome"] == "applied"
