"""The pool-matched yardstick: the shared yardstick with the receiver's former kind of Redis connection pool.

The yardstick itself (`bench/yardstick_app.py`, a byte-for-byte copy of the shared one) uses redis-py's
default pool. This variant runs that very code, loaded from the same file, with one thing changed: its
client ``r`` is built on a `BlockingConnectionPool` of 64 connections (hiredis parser), which alone makes
it 20-25 % slower. It is reported only as a second, labelled line; every verdict is against the unmodified
yardstick.

Run: ``REDIS_URL=redis://127.0.0.1:6379/15 uvicorn bench.yardstick_pooled:app --no-access-log``
"""

from __future__ import annotations

import importlib.util
import os

import redis.asyncio as redis

from bench.procs import yardstick_file

_spec = importlib.util.spec_from_file_location("yardstick_app", yardstick_file())
assert _spec is not None and _spec.loader is not None
_yardstick = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_yardstick)

# The one difference: the handler looks its client up in the module when called, so replacing it is enough.
_yardstick.r = redis.Redis(
    connection_pool=redis.BlockingConnectionPool.from_url(
        os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15"), max_connections=64, timeout=2.0
    )
)
app = _yardstick.app
