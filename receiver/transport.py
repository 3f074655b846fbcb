"""The HTTP/1.1 connection handling of ``callstream serve``: uvicorn's httptools protocol with limits that
protect one process from a hostile client, and a lingering close so that an early error reaches the client.

uvicorn itself bounds none of these: with httptools, header bytes are buffered without limit, a connection
that sends nothing (or one byte at a time) is held for ever, and any number of connections is accepted.
`GuardedHttpToolsProtocol` adds, per connection, with `TransportLimits`:

- **header bytes**: a request line plus headers over ``max_header_bytes`` is answered 431 and closed;
- **header time**: a connection must complete a request's headers within ``header_timeout_s`` of opening
  (or of that request's first byte): else it is closed (408 when part of a request had arrived);
- **body time**: the whole body must arrive within ``body_timeout_s`` of the headers: else 408 and close;
- **connections**: beyond ``max_connections`` open connections in this process, a new one gets 503 and
  is closed at once.

**Lingering close.** When the answer is complete before the request is (a 413 for a body over the limit,
sent as soon as the Content-Length is read), closing the socket with unread data in it makes the kernel
send a reset, which can destroy the answer before the client reads it. Instead the connection is
half-closed after the answer (FIN: nothing more will be sent) and whatever the client still sends is read
and discarded, up to `DRAIN_BYTES` or ``body_timeout_s``, until the client closes; then it is closed.

**One write per answer.** uvicorn writes a response's status line and headers, then its body, as two
writes: two system calls and two TCP segments for every answer. Here the head of a response with a
Content-Length is held until its body is written (or the response ends, or the connection closes) and goes
out with it in one write. Streaming (chunked) responses and ``100 Continue`` are written at once.

**Timers only when waiting.** The header and body timers are armed when a read ends with part of a request
still to come, not for every request: a request that arrives whole in one read costs no timer.

`serve` passes the limits to its worker processes in the environment (`LIMITS_ENV`), read once per process.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Mapping, MutableMapping
from dataclasses import asdict
from itertools import chain
from typing import Any

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from receiver.errors import (
    HeadersTooLarge,
    IncompleteBody,
    MalformedRequest,
    ReceiverError,
    TooManyConnections,
    http_error,
)
from receiver.responses import error_content
from receiver.settings import TransportLimits

log = logging.getLogger("callstream.transport")

LIMITS_ENV = "CALLSTREAM_TRANSPORT_LIMITS"
#: Most bytes read and discarded from a client after its answer was sent early (lingering close).
DRAIN_BYTES = 16 * 1024 * 1024
#: How a response head starts, and the header line that marks a response whose body follows in full.
_RESPONSE_HEAD = b"HTTP/1.1 "
_LENGTH_HEADER = b"\r\ncontent-length: "


def limits_to_env(limits: TransportLimits, environ: MutableMapping[str, str]) -> None:
    """Hand the limits to the worker processes `serve` starts."""
    environ[LIMITS_ENV] = json.dumps(asdict(limits))


def limits_from_env(environ: Mapping[str, str]) -> TransportLimits:
    """The limits `serve` set, or the defaults (a server started by other means)."""
    text = environ.get(LIMITS_ENV)
    return TransportLimits(**json.loads(text)) if text else TransportLimits()


def refusal(error: ReceiverError) -> bytes:
    """A complete HTTP/1.1 answer for ``error`` (status and code from `HTTP_ERRORS`) with the JSON error body
    every error gets, closing the connection."""
    status, content = error_content(error)
    body = orjson.dumps(content)
    head = (
        b"content-type: application/json\r\ncontent-length: "
        + str(len(body)).encode()
        + b"\r\nconnection: close\r\n\r\n"
    )
    return STATUS_LINE[status] + head + body


class _Refused(Exception):
    """Raised from a parser callback after the request was answered, to stop parsing it."""


class _LingeringTransport:
    """What a request's response cycle writes through: its writes go through the protocol (one write per
    answer), and closing it before the request was fully received lingers instead of resetting the
    connection (see the module docstring)."""

    def __init__(self, protocol: GuardedHttpToolsProtocol, transport: asyncio.Transport) -> None:
        self._protocol = protocol
        self._transport = transport
        self.write = protocol.write

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def close(self) -> None:
        self._protocol.flush()
        if self._protocol.message_complete or self._transport.is_closing():
            self._transport.close()
        else:
            self._protocol.linger()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with `TransportLimits` and a lingering close (module docstring)."""

    _limits: TransportLimits | None = None

    @classmethod
    def limits(cls) -> TransportLimits:
        if cls._limits is None:
            cls._limits = limits_from_env(os.environ)
        return cls._limits

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.message_complete = True  # no request in progress
        self._in_headers = True
        self._header_bytes = 0
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._lingering = False
        self._drained = 0
        self._held = b""  # a response head waiting for its body
        self._cycle_transport: _LingeringTransport | None = None  # one per connection, given to each cycle

    # -- connection --------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        limits = self.limits()
        if len(self.connections) > limits.max_connections:
            log.warning(
                "refused a connection: %d open, the limit is %d", len(self.connections) - 1, limits.max_connections
            )
            message = f"this process already holds {limits.max_connections} connections; retry later"
            transport.write(refusal(TooManyConnections(message)))
            transport.close()
            return
        self._cycle_transport = _LingeringTransport(self, transport)
        self._header_timer = self.loop.call_later(limits.header_timeout_s, self._header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        self._held = b""
        self._cycle_transport = None  # it refers back to this protocol
        super().connection_lost(exc)

    def write(self, data: bytes) -> None:
        """Write for a response cycle: a response head with a Content-Length is held for its body. (Held bytes
        go out before anything else is written, so a body that merely looks like a head is delayed at most
        until the response's next write or its end, never reordered.)"""
        if self._held:
            data = self._held + data
            self._held = b""
        elif data.startswith(_RESPONSE_HEAD) and _LENGTH_HEADER in data:
            self._held = data
            return
        self.transport.write(data)

    def flush(self) -> None:
        """Write a held response head now (the response ended without a body write, or is being closed)."""
        if self._held:
            held, self._held = self._held, b""
            self.transport.write(held)

    def data_received(self, data: bytes) -> None:
        """uvicorn's, plus the header byte count, draining while lingering, and JSON for a malformed request."""
        if self._lingering:
            self._drain(data)
            return
        self._unset_keepalive_if_required()
        if self._in_headers:
            self._header_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            if not self._lingering:  # else a callback below refused the request and stopped the parser
                self._refuse(MalformedRequest("the request is not valid HTTP/1.1"))
            return
        if self.message_complete or self.transport.is_closing():
            return
        # Part of a request is still to come: from here on its headers, or its body, are timed.
        if self._in_headers:
            limit = self.limits().max_header_bytes
            if self._header_bytes > limit:
                self._refuse(HeadersTooLarge(f"request headers are over {limit} bytes"))
            elif self._header_timer is None:
                self._header_timer = self.loop.call_later(self.limits().header_timeout_s, self._header_timeout)
        elif self._body_timer is None:
            self._body_timer = self.loop.call_later(self.limits().body_timeout_s, self._body_timeout)

    # -- parser callbacks --------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.message_complete = False
        self._in_headers = True

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._header_bytes = 0
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        parsed = len(self.url) + len(b"".join(chain.from_iterable(self.headers))) + 4 * len(self.headers)
        limit = self.limits().max_header_bytes
        if parsed > limit:
            self._refuse(HeadersTooLarge(f"request headers are over {limit} bytes"))
            raise _Refused  # stops the parser: nothing more of this request is read
        super().on_headers_complete()
        if self.cycle is not None and self._cycle_transport is not None:
            self.cycle.transport = self._cycle_transport  # type: ignore[assignment]

    def on_message_complete(self) -> None:
        self.message_complete = True
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        super().on_message_complete()

    def on_response_complete(self) -> None:
        self.flush()
        super().on_response_complete()
        if not self.message_complete and not self.transport.is_closing():
            self.linger()  # answered before the request ended (keep-alive case): end the connection cleanly

    # -- timeouts ----------------------------------------------------------------------------------

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or self._lingering:
            return
        if self.message_complete and self._header_bytes == 0:
            self.transport.close()  # nothing of a request arrived: nobody to answer
            return
        timeout = self.limits().header_timeout_s
        self._refuse(IncompleteBody(f"request headers were not received within {timeout:g} s"))

    def _body_timeout(self) -> None:
        self._body_timer = None
        if self.transport.is_closing() or self.message_complete or self._lingering:
            return
        cycle = self.cycle
        if cycle is not None and cycle.response_started:
            self.transport.close()
            return
        if cycle is not None:  # the app sees the client gone; anything it sends now is dropped
            cycle.disconnected = True
            cycle.message_event.set()
        timeout = self.limits().body_timeout_s
        self._refuse(IncompleteBody(f"request body was not received within {timeout:g} s"))

    # -- refusing and lingering --------------------------------------------------------------------

    def _refuse(self, error: ReceiverError) -> None:
        """Answer ``error`` on the spot and end the connection, lingering so the answer is read."""
        status, code = http_error(error)
        log.info("refused a request: %s", error.message, extra={"status": status, "error": code})
        self.flush()
        self.transport.write(refusal(error))
        self.linger()

    def linger(self) -> None:
        """Half-close (nothing more will be sent) and discard what the client still sends, within bounds."""
        if self._lingering or self.transport.is_closing():
            return
        self._lingering = True
        self._cancel_timers()
        self.flush()
        self._unset_keepalive_if_required()
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.flow.resume_reading()
        self._body_timer = self.loop.call_later(self.limits().body_timeout_s, self.transport.close)

    def _drain(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        self._drained += len(data)
        if self._drained > DRAIN_BYTES:
            self.transport.close()

    def _cancel_timers(self) -> None:
        for timer in (self._header_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._header_timer = self._body_timer = None
