"""Hostile transport against `callstream serve` as deployed (real processes, real sockets): header floods,
slow or silent connections, too many connections, and an oversized body whose 413 must reach the client.

Each test fails against a server without the limits of receiver/transport.py: there the header flood is
buffered whole and never answered, slow and silent connections are held for ever, every connection is
accepted, and a client still sending an oversized body often meets a reset instead of the 413.
"""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import redis

from tests.conftest import delete_prefix, new_prefix
from tests.support.processes import ServedReceiver

pytestmark = pytest.mark.slow

HEAD = b"POST /webhooks/vobiz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
#: Short limits so that the tests take seconds: one worker, 1 s to send headers and body, 6 connections.
LIMITS = "header_timeout_seconds = 1\nbody_timeout_seconds = 1\nmax_connections = 6\nmax_header_bytes = 8192\n"


@pytest.fixture(scope="module")
def module_prefix(redis_url: str) -> Iterator[str]:
    name = new_prefix()
    yield name
    delete_prefix(redis_url, name)


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory, redis_url: str, module_prefix: str) -> Iterator[ServedReceiver]:
    """One worker with short limits."""
    work = tmp_path_factory.mktemp("guarded")
    with ServedReceiver(work, redis_url, module_prefix, workers=1, server_config=LIMITS).start() as receiver:
        yield receiver


def connect(receiver: ServedReceiver) -> socket.socket:
    return socket.create_connection(("127.0.0.1", receiver.port), timeout=10)


def answer(sock: socket.socket, timeout_s: float = 10) -> bytes:
    """Everything the server sends until it closes (or ``timeout_s`` passes: then what came so far)."""
    sock.settimeout(timeout_s)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except TimeoutError:
        return data + b"<still open>"
    except ConnectionResetError:
        return data + b"<reset>"
    return data


def trickle(sock: socket.socket, data: bytes, every_s: float = 0.1, for_s: float = 6) -> None:
    """Send ``data`` a byte at a time until it is all sent, the server stops reading, or ``for_s`` pass."""
    started = time.monotonic()
    for byte in data[:-1]:
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            return
        time.sleep(every_s)
        if time.monotonic() - started > for_s:
            return


def status_and_error(data: bytes) -> tuple[int, str]:
    """The answer's status and error code; (0, what came instead) when there was no answer."""
    if not data.startswith(b"HTTP/1.1 "):
        return 0, data[-40:].decode(errors="replace")
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), orjson.loads(body)["error"]["code"]


def test_header_flood_is_refused_at_the_limit(guarded: ServedReceiver) -> None:
    """Headers past max_header_bytes: 431 with a JSON error, read by the client after it sent 2 MiB more."""
    with connect(guarded) as sock:
        sock.sendall(HEAD)
        filler = b"X-Filler: " + b"a" * 1000 + b"\r\n"
        for _ in range(2048):
            sock.sendall(filler)
        assert status_and_error(answer(sock)) == (431, "headers_too_large")


def test_silent_connection_is_closed_after_the_header_timeout(guarded: ServedReceiver) -> None:
    """A connection that sends nothing is closed once header_timeout_seconds (1 s) have passed."""
    with connect(guarded) as sock:
        started = time.monotonic()
        assert answer(sock, timeout_s=8) == b""
        assert time.monotonic() - started < 6


def test_trickled_headers_get_408(guarded: ServedReceiver) -> None:
    """Headers sent a byte at a time never finish within the header timeout: 408, then the connection ends."""
    with connect(guarded) as sock:
        trickle(sock, HEAD)
        assert status_and_error(answer(sock, timeout_s=2)) == (408, "request_timeout")


def test_trickled_body_gets_408_and_changes_nothing(guarded: ServedReceiver) -> None:
    """A body sent a byte at a time outlasts the body timeout: 408, and nothing reaches Redis."""
    body = b"Event=Hangup&CallUUID=trickle-call&HangupCause=USER_BUSY"
    with connect(guarded) as sock:
        sock.sendall(HEAD + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
        trickle(sock, body)
        assert status_and_error(answer(sock, timeout_s=2)) == (408, "request_timeout")
    with redis.Redis.from_url(guarded.redis_url) as client:
        assert client.keys("*trickle-call*") == []


def test_connections_beyond_the_limit_get_503(guarded: ServedReceiver) -> None:
    """With max_connections = 6, a seventh connection is answered 503 and closed; once some close, requests
    are served again."""
    held = [connect(guarded) for _ in range(6)]
    time.sleep(0.2)
    with connect(guarded) as extra:
        assert status_and_error(answer(extra, timeout_s=3)) == (503, "too_many_connections")
    for sock in held:
        sock.close()
    time.sleep(0.2)
    connection = http.client.HTTPConnection("127.0.0.1", guarded.port, timeout=5)
    connection.request("GET", "/healthz")
    assert connection.getresponse().status == 200
    connection.close()


@pytest.fixture(scope="module")
def two_workers(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str, module_prefix: str
) -> Iterator[ServedReceiver]:
    work = tmp_path_factory.mktemp("two-workers")
    with ServedReceiver(work, redis_url, module_prefix, workers=2).start() as receiver:
        yield receiver


@pytest.mark.parametrize("mebibytes", [3, 8])
def test_oversized_body_413_reaches_the_client_under_two_workers(two_workers: ServedReceiver, mebibytes: int) -> None:
    """A client that sends its whole body before reading (as http.client does), asking to close: every one
    of ten reads the 413 and its JSON error, none meets a reset."""
    outcomes = []
    for _ in range(10):
        connection = http.client.HTTPConnection("127.0.0.1", two_workers.port, timeout=30)
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Connection": "close"}
        try:
            connection.request("POST", "/webhooks/vobiz", body=b"x" * (mebibytes << 20), headers=headers)
            response = connection.getresponse()
            outcomes.append((response.status, orjson.loads(response.read())["error"]["code"]))
        except OSError as err:
            outcomes.append((0, type(err).__name__))
        finally:
            connection.close()
    assert outcomes == [(413, "body_too_large")] * 10


def test_limits_are_read_from_the_configuration(tmp_path: Path) -> None:
    """The [server] keys reach the settings; a bad value is refused naming the key."""
    from receiver.settings import ConfigError, Settings

    settings = Settings.from_toml(
        f"[server]\n{LIMITS}\n[sources.v]\nprovider = 'vobiz'\nverify = false\n", {}, ["vobiz"]
    )
    assert (settings.transport.header_timeout_s, settings.transport.max_connections) == (1.0, 6)
    with pytest.raises(ConfigError, match="body_timeout_seconds"):
        Settings.from_toml(
            "[server]\nbody_timeout_seconds = 0\n[sources.v]\nprovider='vobiz'\nverify=false\n", {}, ["vobiz"]
        )
