"""The real app against a real Redis: the smallest end-to-end path."""

from __future__ import annotations

from collections.abc import Callable

import redis
from starlette.testclient import TestClient

from statemachine.keys import Keys


def test_vobiz_ring_is_applied_and_published(
    make_client: Callable[..., TestClient], r: redis.Redis, keys: Keys
) -> None:
    """A Ring callback moves an unknown call to ringing and appends one transition entry."""
    client = make_client()
    response = client.post(
        "/webhooks/vobiz",
        content=b"Event=Ring&CallUUID=c-1&CallStatus=ringing&From=14155551234&To=14155555678",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    assert response.json()["results"][0]["outcome"] == "applied"
    entries = r.xrange(keys.transitions())
    assert [(e[1][b"call_id"], e[1][b"from_state"], e[1][b"to_state"]) for e in entries] == [
        (b"c-1", b"new", b"ringing")
    ]
