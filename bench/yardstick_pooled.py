"""The pool-matched yardstick: the shared yardstick with the receiver's kind of Redis connection pool.

The yardstick itself (`bench/yardstick_app.py`, a byte-for-byte copy of the shared one) uses redis-py's
default pool. This variant is the same code but for one line: its client is built like the receiver's
(a `BlockingConnectionPool` of 64 connections, hiredis parser), which alone makes it 20-25 % slower. It
is reported only as a second, labelled line; every verdict is against the unmodified yardstick.

Run: ``REDIS_URL=redis://127.0.0.1:6379/15 uvicorn bench.yardstick_pooled:app --no-access-log``
"""

from __future__ import annotations

import os
import urllib.parse
from typing import Any

import orjson
import redis.asyncio as redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

# The one difference from the yardstick.
r = redis.Redis(
    connection_pool=redis.BlockingConnectionPool.from_url(
        os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15"), max_connections=64, timeout=2.0
    )
)


async def hook(request: Request) -> Response:
    body = await request.body()
    doc: Any
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        doc = dict(urllib.parse.parse_qsl(body.decode()))
    else:
        doc = orjson.loads(body)
    await r.xadd("baseline:events", {"p": orjson.dumps(doc)}, maxlen=100000, approximate=True)
    return Response(b'{"ok":true}', media_type="application/json")


app = Starlette(routes=[Route("/hook", hook, methods=["POST"]), Route("/webhooks/{source}", hook, methods=["POST"])])
