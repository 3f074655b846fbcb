"""``GET /healthz`` (the process answers) and ``GET /readyz`` (Redis answers too)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from receiver.responses import JSONResponse
from receiver.settings import Settings
from statemachine.store import UNAVAILABLE_ERRORS


async def healthz(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    try:
        await request.app.state.redis.ping()
    except UNAVAILABLE_ERRORS as err:
        return JSONResponse(
            {"status": "unavailable", "error": {"code": "redis_unavailable", "message": str(err)}},
            status_code=503,
        )
    return JSONResponse({"status": "ready"})


def routes(_settings: Settings) -> list[Route]:
    return [Route("/healthz", healthz, methods=["GET"]), Route("/readyz", readyz, methods=["GET"])]
