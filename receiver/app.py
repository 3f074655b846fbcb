"""The ASGI application: assembles the routes, the Redis client and the error handlers."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from http import HTTPStatus
from re import Pattern
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from starlette.applications import Starlette
from starlette.convertors import Convertor, StringConvertor
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from receiver import redis_client, sweeper
from receiver.console import routes as console
from receiver.errors import ReceiverError
from receiver.metrics import Metrics
from receiver.observe import ObserveRequests
from receiver.pipeline import Pipeline
from receiver.responses import JSONResponse, error_body, error_response, unexpected_response
from receiver.routes import calls, health, metrics, openapi, webhooks
from receiver.routes.webhooks import DirectRoute
from receiver.settings import Settings
from statemachine.store import CallStore

log = logging.getLogger("callstream.receiver")

#: Route modules, each exposing ``routes(settings) -> list[Route]``. The webhook endpoint is dispatched ahead of
#: the router (`Receiver`); the console comes last.
ROUTE_MODULES = (webhooks, health, calls, metrics, openapi, console)


async def on_receiver_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ReceiverError)
    return error_response(exc)


async def on_http_exception(_request: Request, exc: Exception) -> Response:
    """Unknown paths and wrong methods answer JSON too, like every other error."""
    assert isinstance(exc, HTTPException)
    code = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_")
    return JSONResponse(error_body(code, exc.detail), status_code=exc.status_code, headers=exc.headers)


async def on_unexpected(_request: Request, exc: Exception) -> Response:
    return unexpected_response(exc)


class Receiver(Starlette):
    """Starlette, with the hot path taken out of its middleware stack.

    A request matching a `DirectRoute` (the webhook endpoint) goes straight to the route's ASGI app with
    only the request observer around it; Starlette's error and exception middleware, router, Request and
    Response objects cost more per request than verifying and normalizing a callback. Such an endpoint
    answers its own errors. Every other request (and any request under a ``root_path``, which Starlette's
    router resolves) takes Starlette's usual path, where the same route leads to the same endpoint.
    """

    def __init__(self, *, metrics: Metrics, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # A route's convertors are left out when all are plain strings (``{source}``): they convert nothing.
        self._direct: list[tuple[Pattern[str], dict[str, Convertor[Any]] | None, set[str] | None, Route, ASGIApp]] = [
            (
                route.path_regex,
                None
                if all(type(c) is StringConvertor for c in route.param_convertors.values())
                else route.param_convertors,
                route.methods,
                route,
                ObserveRequests(route.app, metrics),
            )
            for route in self.router.routes
            if isinstance(route, DirectRoute)
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            path = scope["path"]
            for regex, convertors, methods, route, observed in self._direct:
                # What `Route.matches` decides for a full match, without building its intermediate scopes.
                match = regex.match(path)
                if match is not None and (methods is None or scope["method"] in methods):
                    scope["app"] = self
                    scope["route"] = route
                    scope["endpoint"] = route.endpoint
                    params = match.groupdict()
                    if convertors is not None:
                        params = {name: convertors[name].convert(value) for name, value in params.items()}
                    scope["path_params"] = params
                    await observed(scope, receive, send)
                    return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings, *, redis: Redis | None = None) -> Receiver:
    """Build the receiver for ``settings``; pass ``redis`` to share a client (tests, embedding)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        client = redis if redis is not None else make_redis(settings)
        app.state.redis = client
        store = CallStore(
            client,
            settings.keys,
            settings.retention,
            wait_replicas=settings.redis_wait_replicas,
            wait_timeout_ms=settings.redis_wait_timeout_ms,
        )
        app.state.pipeline = Pipeline(store, app.state.metrics, settings.deadletters)
        try:
            async with (
                app.state.metrics.flushing(),
                sweeper.periodic(settings, app.state.pipeline.store),
                console.connection(app, settings, shared=redis is not None),
            ):
                yield
        finally:
            await store.aclose()
            if redis is None:
                await redis_client.close(client)

    observed = Metrics()
    app = Receiver(
        metrics=observed,
        routes=[route for module in ROUTE_MODULES for route in module.routes(settings)],
        middleware=[Middleware(ObserveRequests, metrics=observed)],
        exception_handlers={
            ReceiverError: on_receiver_error,
            HTTPException: on_http_exception,
            Exception: on_unexpected,
        },
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = observed
    return app


def make_redis(settings: Settings) -> Redis:
    """A client for ``settings.redis_url`` (one server, Sentinel or Cluster: see receiver/redis_client.py).

    A single server's pool queues callers beyond its size instead of failing them.
    """
    if not settings.redis_url:
        raise ValueError("settings.redis_url is not set")
    return redis_client.async_client(
        settings.redis_url,
        max_connections=settings.redis_max_connections,
        timeout_s=settings.redis_timeout_s,
        # A pooled connection that died with a restarted Redis fails on first use: try once more on a
        # fresh one. Safe: a step that did run is then reported as a duplicate. Timeouts are not retried.
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
    )
