"""The ASGI application: ``POST /webhooks/{source}``, health and readiness."""

from __future__ import annotations

import contextlib
import hmac
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from redis.asyncio import BlockingConnectionPool, Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from receiver.delivery import Delivery
from receiver.errors import BodyTooLarge, ReceiverError, UnknownSource, http_error
from receiver.pipeline import Pipeline
from receiver.settings import Settings, Source
from statemachine.store import UNAVAILABLE_ERRORS, CallStore

log = logging.getLogger("callstream.receiver")

REPLAY_HEADER = "x-callstream-replay"


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_response(error: ReceiverError) -> JSONResponse:
    status, code = http_error(error)
    body: dict[str, Any] = {"code": code, "message": error.message}
    body.update({key: value for key, value in error.details.items() if isinstance(value, str | int)})
    return JSONResponse({"error": body}, status_code=status)


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused with 413 as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"body of {declared} bytes is over the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"body is over the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def public_url(request: Request, source: Source) -> str:
    """The URL the provider called, which URL-signing schemes sign."""
    if source.public_url is None:
        return str(request.url)
    query = request.scope.get("query_string", b"")
    if query and "?" not in source.public_url:
        return f"{source.public_url}?{query.decode('latin-1')}"
    return source.public_url


def header_map(request: Request) -> dict[str, str]:
    return {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in request.scope["headers"]}


def create_app(settings: Settings, *, redis: Redis | None = None) -> Starlette:
    """Build the receiver for ``settings``; pass ``redis`` to share a client (tests, embedding)."""
    state: dict[str, Any] = {}

    def is_operator_replay(headers: dict[str, str], source: Source) -> bool:
        """Replays skip provider dedupe, so only an operator may ask for one (or anyone on an unverified source)."""
        value = headers.get(REPLAY_HEADER)
        if not value:
            return False
        if settings.operator_token is not None:
            return hmac.compare_digest(value.encode(), settings.operator_token.reveal().encode())
        return not source.verify

    async def webhook(request: Request) -> Response:
        name = request.path_params["source"]
        source = settings.sources.get(name)
        if source is None:
            raise UnknownSource(f"no source named {name!r} is configured", source=name)
        body = await read_body(request, settings.max_body_bytes)
        headers = header_map(request)
        now = time.time()
        delivery = Delivery(source, body, headers, public_url(request, source), now, request.method)
        results = await state["pipeline"].process(delivery, now, replay=is_operator_replay(headers, source))
        return JSONResponse({"source": name, "results": results})

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_request: Request) -> Response:
        try:
            await state["redis"].ping()
        except UNAVAILABLE_ERRORS as err:
            return JSONResponse(
                {"status": "unavailable", "error": {"code": "redis_unavailable", "message": str(err)}},
                status_code=503,
            )
        return JSONResponse({"status": "ready"})

    async def on_receiver_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ReceiverError)
        return error_response(exc)

    async def on_unexpected(_request: Request, exc: Exception) -> Response:
        log.exception("unexpected error", exc_info=exc)
        return JSONResponse({"error": {"code": "internal_error", "message": "internal error"}}, status_code=500)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        client = redis
        if client is None:
            client = make_redis(settings)
        state["redis"] = client
        state["pipeline"] = Pipeline(CallStore(client, settings.keys, settings.retention))
        try:
            yield
        finally:
            if redis is None:
                await client.aclose()

    return Starlette(
        routes=[
            Route("/webhooks/{source}", webhook, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
        ],
        exception_handlers={ReceiverError: on_receiver_error, Exception: on_unexpected},
        lifespan=lifespan,
    )


def make_redis(settings: Settings) -> Redis:
    """A client whose pool queues callers beyond its size instead of failing them."""
    if not settings.redis_url:
        raise ValueError("settings.redis_url is not set")
    pool = BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_timeout_s,
        socket_timeout=settings.redis_timeout_s,
        socket_connect_timeout=settings.redis_timeout_s,
    )
    return Redis(connection_pool=pool)
