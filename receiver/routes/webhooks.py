"""``POST /webhooks/{source}`` (and ``GET``, for providers that can call with it): where a provider's callback
enters."""

from __future__ import annotations

import time

from starlette.datastructures import URL
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from receiver.delivery import Delivery
from receiver.errors import BodyTooLarge, PayloadError, UnknownSource
from receiver.operator import token_matches
from receiver.pipeline import Pipeline
from receiver.responses import JSONResponse
from receiver.settings import Settings, Source

REPLAY_HEADER = "x-callstream-replay"


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
    """The URL the provider called, which URL-signing schemes sign.

    A GET callback's fields are its query, so a GET always keeps the query it arrived with.
    """
    query = request.scope.get("query_string", b"")
    if request.method == "GET" and query:
        try:
            text = query.decode("utf-8")
        except UnicodeDecodeError as err:
            raise PayloadError(f"query string is not valid UTF-8 at byte {err.start}") from err
        base = source.public_url or str(URL(scope={**request.scope, "query_string": b""}))
        return f"{base.split('?', 1)[0]}?{text}"
    if source.public_url is None:
        return str(request.url)
    if query and "?" not in source.public_url:
        return f"{source.public_url}?{query.decode('latin-1')}"
    return source.public_url


def header_map(request: Request) -> dict[str, str]:
    return {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in request.scope["headers"]}


def is_operator_replay(settings: Settings, headers: dict[str, str], source: Source) -> bool:
    """Replays skip provider dedupe, so only an operator may ask for one (or anyone on an unverified source)."""
    value = headers.get(REPLAY_HEADER)
    if not value:
        return False
    if settings.operator_token is not None:
        return token_matches(settings, value)
    return not source.verify


def routes(settings: Settings) -> list[Route]:
    async def webhook(request: Request) -> Response:
        name = request.path_params["source"]
        source = settings.sources.get(name)
        if source is None:
            raise UnknownSource(f"no source named {name!r} is configured", source=name)
        body = await read_body(request, settings.max_body_bytes)
        headers = header_map(request)
        now = time.time()
        delivery = Delivery(source, body, headers, public_url(request, source), now, request.method)
        pipeline: Pipeline = request.app.state.pipeline
        results = await pipeline.process(delivery, now, replay=is_operator_replay(settings, headers, source))
        return JSONResponse({"source": name, "results": results})

    # GET too: Twilio, Plivo, Vobiz and Vonage can be configured to call with GET (each adapter lists the
    # methods its provider uses; any other is answered 405 before authentication).
    return [Route("/webhooks/{source}", webhook, methods=["POST", "GET"])]
