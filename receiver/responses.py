"""JSON responses, and the error body every failed request gets."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import orjson
from starlette.responses import Response
from starlette.types import Send

from receiver.errors import ReceiverError, http_error

log = logging.getLogger("callstream.receiver")


def error_body(code: str, message: str, details: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The JSON body of every error answer: ``{"error": {"code", "message", ...details}}``."""
    return {"error": {"code": code, "message": message, **(details or {})}}


#: The body of a 500: nothing about the failure itself reaches the sender.
INTERNAL_ERROR = error_body("internal_error", "internal error")


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_content(error: ReceiverError) -> tuple[int, dict[str, Any]]:
    """The status from the error table and ``{"error": {"code", "message", ...details}}``."""
    status, code = http_error(error)
    details = {key: value for key, value in error.details.items() if isinstance(value, str | int)}
    return status, error_body(code, error.message, details)


def error_response(error: ReceiverError) -> JSONResponse:
    """`error_content` as a response."""
    status, content = error_content(error)
    return JSONResponse(content, status_code=status)


def unexpected_response(error: Exception) -> JSONResponse:
    """A 500 for an exception nothing expected; the exception is logged with its traceback."""
    log.exception("unexpected error", exc_info=error)
    return JSONResponse(INTERNAL_ERROR, status_code=500)


async def send_json(send: Send, content: Any, status: int = 200) -> None:
    """Send ``content`` as a JSON response from a plain ASGI app: the same messages, headers and bytes as a
    `JSONResponse`, without building one."""
    body = orjson.dumps(content)
    headers = [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def send_unexpected(send: Send, error: Exception) -> None:
    """`unexpected_response` from a plain ASGI app."""
    log.exception("unexpected error", exc_info=error)
    await send_json(send, INTERNAL_ERROR, 500)
