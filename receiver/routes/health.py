"""``GET /healthz`` (the process answers) and ``GET /readyz`` (Redis answers too)."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from receiver.errors import RedisUnavailable
from receiver.responses import JSONResponse, error_body
from receiver.settings import Settings
from statemachine.store import UNAVAILABLE_ERRORS

log = logging.getLogger("callstream.health")


async def healthz(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    try:
        await request.app.state.redis.ping()
    except UNAVAILABLE_ERRORS as err:
        # Which Redis, and why, is for the log: a probe's answer is public.
        log.info("not ready: Redis is unavailable: %s", err)
        return JSONResponse(
            {"status": "unavailable", **error_body("redis_unavailable", RedisUnavailable.MESSAGE)},
            status_code=503,
        )
    return JSONResponse({"status": "ready"})


def routes(_settings: Settings) -> list[Route]:
    return [Route("/healthz", healthz, methods=["GET"]), Route("/readyz", readyz, methods=["GET"])]
