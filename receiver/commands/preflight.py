"""Checks ``callstream serve`` makes before it starts anything, so a mistake is one clear line instead of a
traceback or a server that says "startup complete" and then exits."""

from __future__ import annotations

import errno
import socket

import redis

from receiver import redis_client
from statemachine.store import UNAVAILABLE_ERRORS

#: What a PING can raise when Redis does not answer (or answers with an error, e.g. a wrong password).
REDIS_FAILURES: tuple[type[Exception], ...] = (redis.exceptions.RedisError, *UNAVAILABLE_ERRORS)
#: How long the start-up PING waits for Redis before serve warns and goes on.
PING_TIMEOUT_S = 1.0


def listen_problem(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on (a port in use, an address this machine lacks), else None.

    Binds a probe socket the way uvicorn does (``SO_REUSEADDR``, so a port left in TIME_WAIT is no problem)
    and closes it again at once.
    """
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as err:
        return f"cannot listen on {host}:{port}: {err.strerror}"
    for family, kind, proto, _name, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as err:
                if err.errno == errno.EADDRINUSE:
                    return (
                        f"port {port} on {host} is already in use (another callstream serve?): "
                        "stop that process or choose another port with --port"
                    )
                return f"cannot listen on {host}:{port}: {err.strerror}"
    return None


def redis_problem(url: str) -> str | None:
    """Why the Redis at ``url`` does not answer a PING right now, else None."""
    try:
        client = redis_client.sync_client(url, timeout_s=PING_TIMEOUT_S)
        try:
            client.ping()
        finally:
            client.close()
    except REDIS_FAILURES as err:
        # Sentinel's message ends in a repr of its client: the first part says it.
        return str(err).split(" : <", 1)[0] or type(err).__name__
    return None
