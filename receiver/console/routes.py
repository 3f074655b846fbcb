"""``/console``: the operator console's routes, mounted after every other route of the app.

The console adds no middleware and costs ``POST /webhooks/*`` nothing: a webhook request is dispatched to
its endpoint ahead of the router (`receiver.app.Receiver`) and never meets any console code. The console reads Redis
through a client of its own (`connection`), so its scans and the live view's polling never take a
connection from the webhooks' pool.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any
from urllib.parse import quote

from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from receiver import redis_client
from receiver.console import pages
from receiver.console.access import COOKIE, PATH, SESSION_SECONDS, Access, Visitor, console_token
from receiver.console.live import events
from receiver.console.render import HEADERS, page
from receiver.delivery import parse_form
from receiver.operator import ENABLE_HINT
from receiver.queries import REDIS_DOWN
from receiver.routes.webhooks import read_body
from receiver.settings import Settings

#: The console's own Redis pool: a few operators at a time.
CONSOLE_CONNECTIONS = 8
FORM_LIMIT = 64 * 1024
STATIC = os.path.join(os.path.dirname(__file__), "static")

Page = Callable[[Request, Visitor, "Context"], Awaitable[Response]]


class Context:
    """What every page handler needs: the settings, the access rules, and the console's Redis client."""

    def __init__(self, settings: Settings, access: Access) -> None:
        self.settings = settings
        self.access = access

    @staticmethod
    def redis(request: Request) -> Redis:
        client: Redis = request.app.state.console_redis
        return client

    async def form(self, request: Request) -> dict[str, list[str]]:
        """A posted urlencoded form, each name with its values."""
        body = await read_body(request, FORM_LIMIT)
        fields: dict[str, list[str]] = {}
        try:
            pairs = parse_form(body.decode("utf-8"))
        except ValueError:  # UnicodeDecodeError included
            pairs = []
        for name, value in pairs:
            fields.setdefault(name, []).append(value)
        return fields

    async def checked_form(self, request: Request, visitor: Visitor) -> dict[str, list[str]] | None:
        """A posted form carrying this visitor's CSRF token; None when the token is missing or wrong."""
        fields = await self.form(request)
        return fields if self.access.csrf_ok(visitor, (fields.get("csrf") or [""])[0]) else None


@contextlib.asynccontextmanager
async def connection(app: Starlette, settings: Settings, *, shared: bool) -> AsyncIterator[None]:
    """While the app runs: the console's Redis client, or the app's own when it was given one (``shared``).

    Creating a client connects nothing: an app whose console is never opened never uses it.
    """
    own = not shared and bool(settings.redis_url)
    app.state.console_redis = (
        redis_client.async_client(settings.redis_url or "", max_connections=CONSOLE_CONNECTIONS, timeout_s=5.0)
        if own
        else app.state.redis
    )
    try:
        yield
    finally:
        if own:
            await redis_client.close(app.state.console_redis)


def safe_next(value: str | None) -> str:
    """Where to go after logging in: only a console path (never another site)."""
    if value and value.startswith(PATH) and not value.startswith("//") and "\\" not in value:
        return value
    return PATH


def problem(status: int, title: str, message: str, context: dict[str, Any] | None = None) -> Response:
    return page("problem.html", {"title": title, "message": message, **(context or {})}, status_code=status)


def guarded(ctx: Context, handler: Page) -> Callable[[Request], Awaitable[Response]]:
    """``handler`` behind the console token: 403 while the console is off; without credentials a page
    redirects to the login form and anything else answers 401; Redis trouble is a 503 page."""

    async def endpoint(request: Request) -> Response:
        if not ctx.access.enabled:
            return console_off()
        visitor = ctx.access.visitor(request)
        if visitor is None:
            if request.method == "GET" and "text/event-stream" not in request.headers.get("accept", ""):
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"{PATH}/login?next={quote(target, safe='')}", 303, headers=HEADERS)
            response = problem(401, "Log in", "This needs the console token: log in, or send Authorization: Bearer.")
            response.headers["WWW-Authenticate"] = 'Bearer realm="callstream"'
            return response
        try:
            return await handler(request, visitor, ctx)
        except REDIS_DOWN as err:
            return problem(503, "Redis unavailable", f"Redis did not answer ({type(err).__name__}); try again.")

    return endpoint


def console_off() -> Response:
    return problem(403, "Console off", f"The console is off: no operator token is configured. {ENABLE_HINT}.")


async def login(request: Request, ctx: Context) -> Response:
    """The login form (GET), its submission (POST), and the URL ``serve`` prints (GET with ``token``)."""
    if not ctx.access.enabled:
        return console_off()
    next_page = safe_next(request.query_params.get("next"))
    token = request.query_params.get("token")
    if request.method == "POST":
        fields = await ctx.form(request)
        token = (fields.get("token") or [""])[0]
        next_page = safe_next((fields.get("next") or [""])[0])
    context: dict[str, Any] = {"title": "Log in", "next": next_page, "error": None, "logged_out": False}
    if token is None:
        context["logged_out"] = request.query_params.get("out") == "1"
        return page("login.html", context)
    if not ctx.access.token_matches(token):
        context["error"] = "That is not the console token."
        return page("login.html", context, status_code=401)
    response = RedirectResponse(next_page, 303, headers=HEADERS)
    response.set_cookie(
        COOKIE,
        ctx.access.new_session(),
        max_age=SESSION_SECONDS,
        path=PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


async def logout(request: Request, visitor: Visitor, ctx: Context) -> Response:
    if await ctx.checked_form(request, visitor) is None:
        return problem(403, "Form expired", "The form's CSRF token is missing or wrong: reload the page.")
    response = RedirectResponse(f"{PATH}/login?out=1", 303, headers=HEADERS)
    response.delete_cookie(COOKIE, path=PATH, httponly=True, samesite="strict")
    return response


def routes(settings: Settings) -> list[BaseRoute]:
    ctx = Context(settings, Access(console_token(settings, os.environ)))
    return [
        Mount(
            PATH,
            routes=[
                Route("/", guarded(ctx, pages.live), methods=["GET"]),
                Route("/login", partial(login, ctx=ctx), methods=["GET", "POST"]),
                Route("/logout", guarded(ctx, logout), methods=["POST"]),
                Route("/live/events", guarded(ctx, events), methods=["GET"]),
                Route("/calls", guarded(ctx, pages.calls), methods=["GET"]),
                Route("/calls/{source}/{call_id:text}", guarded(ctx, pages.call), methods=["GET"]),
                Route("/deadletters", guarded(ctx, pages.deadletters), methods=["GET"]),
                Route("/deadletters/redrive", guarded(ctx, pages.redrive), methods=["POST"]),
                Route("/deadletters/{entry_id}", guarded(ctx, pages.deadletter_page), methods=["GET"]),
                Route("/health", guarded(ctx, pages.health), methods=["GET"]),
                Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
            ],
        ),
        # `/console` without the slash, as serve prints it.
        Route(PATH, guarded(ctx, pages.live), methods=["GET"]),
    ]
