"""Health and readiness as an orchestrator sees them."""

from __future__ import annotations

from collections.abc import Callable

from starlette.testclient import TestClient

from receiver.embedded import free_port
from tests.conftest import MakeSettings


def test_healthz_and_readyz_with_redis(make_client: Callable[..., TestClient]) -> None:
    client = make_client()
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})


def test_readyz_is_503_while_redis_is_unreachable(
    make_client: Callable[..., TestClient], make_settings: MakeSettings
) -> None:
    """Nothing listens on the configured port: the process is healthy but not ready, and neither answer
    names the Redis address."""
    port = free_port()
    settings = make_settings(redis_url=f"redis://127.0.0.1:{port}/0", redis_timeout_s=0.5)
    client = make_client(settings)
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["error"]["code"] == "redis_unavailable"
    webhook = client.post(
        "/webhooks/vobiz",
        content=b"Event=Ring&CallUUID=c-1&CallStatus=ringing",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert webhook.status_code == 503
    assert webhook.json()["error"]["code"] == "redis_unavailable"
    # Public answers do not say where Redis is.
    assert str(port) not in ready.text and str(port) not in webhook.text
    assert "127.0.0.1" not in ready.text + webhook.text
