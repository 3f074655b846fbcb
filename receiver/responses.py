"""JSON responses, and the error body every failed request gets."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from receiver.errors import ReceiverError, http_error


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_response(error: ReceiverError) -> JSONResponse:
    """``{"error": {"code", "message", ...details}}`` with the status from the error table."""
    status, code = http_error(error)
    body: dict[str, Any] = {"code": code, "message": error.message}
    body.update({key: value for key, value in error.details.items() if isinstance(value, str | int)})
    return JSONResponse({"error": body}, status_code=status)
