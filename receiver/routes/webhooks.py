"""``POST /webhooks/{source}`` (and ``GET``, for providers that can call with it): where a provider's callback
enters.

The endpoint is a plain ASGI app, not a Starlette request handler: it reads the body and headers from the
ASGI messages and scope and sends its JSON answer itself, with no Request or Response objects on the way.
`receiver.app` also dispatches it ahead of Starlette's middleware stack (`DirectRoute`), with only the
request observer around it. What a sender sees is the same either way: the same statuses, JSON bodies
and headers as every other route's.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.datastructures import URL
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from receiver.delivery import Delivery
from receiver.errors import BodyTooLarge, IncompleteBody, PayloadError, ReceiverError, UnknownSource
from receiver.operator import token_matches
from receiver.pipeline import Pipeline
from receiver.responses import error_content, send_json, send_unexpected
from receiver.settings import Settings, Source

REPLAY_HEADER = "x-callstream-replay"


class DirectRoute(Route):
    """A route whose endpoint is a plain ASGI app, dispatched by `receiver.app` before the middleware stack.

    It is also an ordinary route of the router, so matching (path and methods) is Starlette's either way.
    """


async def receive_body(receive: Receive, declared: str | None, limit: int) -> bytes:
    """The raw body from the ASGI messages, refused with 413 as soon as it is known to exceed ``limit`` bytes
    (``declared`` is the Content-Length header, when sent)."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"body of {declared} bytes is over the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            # The client went away (or the server timed the body out): nobody will read an answer.
            raise IncompleteBody(f"the connection ended after {size} bytes of the body")
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(f"body is over the {limit}-byte limit")
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def read_body(request: Request, limit: int) -> bytes:
    """`receive_body` for a Starlette request handler."""
    return await receive_body(request.receive, request.headers.get("content-length"), limit)


def public_url(scope: Scope, source: Source) -> str:
    """The URL the provider called, which URL-signing schemes sign.

    A GET callback's fields are its query, so a GET always keeps the query it arrived with.
    """
    query = scope.get("query_string", b"")
    if scope["method"] == "GET" and query:
        try:
            text = query.decode("utf-8")
        except UnicodeDecodeError as err:
            raise PayloadError(f"query string is not valid UTF-8 at byte {err.start}") from err
        base = source.public_url or str(URL(scope={**scope, "query_string": b""}))
        return configured_url(base, "GET", text)
    if source.public_url is None:
        return str(URL(scope=scope))
    return configured_url(source.public_url, scope["method"], query.decode("latin-1"))


def configured_url(public_url: str, method: str, query: str) -> str:
    """A source's ``public_url`` as the provider signs it for a request carrying ``query``: a GET's query
    replaces any the URL has (it is the callback's fields); another method's is added when it has none."""
    if method == "GET" and query:
        return f"{public_url.split('?', 1)[0]}?{query}"
    if query and "?" not in public_url:
        return f"{public_url}?{query}"
    return public_url


def header_map(scope: Scope) -> dict[str, str]:
    return {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}


def is_operator_replay(settings: Settings, headers: dict[str, str], source: Source) -> bool:
    """Replays skip provider dedupe, so only an operator may ask for one (or anyone on an unverified source)."""
    value = headers.get(REPLAY_HEADER)
    if not value:
        return False
    if settings.operator_token is not None:
        return token_matches(settings, value)
    return not source.verify


class WebhookEndpoint:
    """The ASGI app behind ``/webhooks/{source}``: 200 with one result per event, or the error's JSON body.

    An unexpected exception answers 500 ``internal_error`` (logged) and is raised again for the server,
    as Starlette's error middleware does for every other route.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            content = await self.process(scope, receive)
        except ReceiverError as err:
            status, error = error_content(err)
            await send_json(send, error, status)
            return
        except Exception as err:
            await send_unexpected(send, err)
            raise
        await send_json(send, content)

    async def process(self, scope: Scope, receive: Receive) -> dict[str, Any]:
        settings = self.settings
        name = scope["path_params"]["source"]
        source = settings.sources.get(name)
        if source is None:
            raise UnknownSource(f"no source named {name!r} is configured", source=name)
        headers = header_map(scope)
        body = await receive_body(receive, headers.get("content-length"), settings.max_body_bytes)
        now = time.time()
        delivery = Delivery(source, body, headers, public_url(scope, source), now, scope["method"])
        pipeline: Pipeline = scope["app"].state.pipeline
        results = await pipeline.process(delivery, now, replay=is_operator_replay(settings, headers, source))
        return {"source": name, "results": results}


def routes(settings: Settings) -> list[Route]:
    # GET too: Twilio, Plivo, Vobiz and Vonage can be configured to call with GET (each adapter lists the
    # methods its provider uses; any other is answered 405 before authentication).
    return [DirectRoute("/webhooks/{source}", WebhookEndpoint(settings), methods=["POST", "GET"])]
