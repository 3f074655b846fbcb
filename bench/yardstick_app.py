"""The yardstick: the least an ASGI webhook receiver can do per request on this stack.

Reads the body, parses it (orjson for JSON; the standard library's form parser for form bodies, which
orjson cannot read), appends it to one Redis stream with one XADD and answers 200. No signature check,
no normalization, no state. Its Redis client is built like the receiver's (a `BlockingConnectionPool`
of the same size, hiredis parser), so the two differ only in the work they do per request.

Run: ``REDIS_URL=redis://127.0.0.1:6379/15 uvicorn bench.yardstick_app:app --no-access-log``
"""

from __future__ import annotations

import os
import urllib.parse
from typing import Any

import orjson
from redis.asyncio import BlockingConnectionPool, Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")
redis = Redis(
    connection_pool=BlockingConnectionPool.from_url(
        REDIS_URL,
        max_connections=int(os.environ.get("YARDSTICK_REDIS_CONNECTIONS", "64")),
        timeout=2.0,
        socket_timeout=2.0,
        socket_connect_timeout=2.0,
    )
)


async def hook(request: Request) -> Response:
    body = await request.body()
    document: Any
    if request.headers.get("content-type", "").startswith("application/json"):
        document = orjson.loads(body)
    else:
        document = dict(urllib.parse.parse_qsl(body.decode()))
    await redis.xadd("baseline:events", {"p": orjson.dumps(document)}, maxlen=100_000, approximate=True)
    return Response(b'{"ok":true}', media_type="application/json")


app = Starlette(routes=[Route("/webhooks/{source}", hook, methods=["POST"]), Route("/hook", hook, methods=["POST"])])
