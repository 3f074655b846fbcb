"""The dead-letter stream: requests that passed authentication but could not be processed.

Each entry keeps the reason and the whole raw request (headers, URL, body), so nothing a provider sent
is lost and the request can be redriven through the pipeline once the cause is fixed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis

from receiver.delivery import Delivery
from statemachine.errors import StoreUnavailable
from statemachine.keys import Keys
from statemachine.store import UNAVAILABLE_ERRORS, as_text

DEADLETTER_MAXLEN = 100_000


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One dead-lettered request."""

    entry_id: str
    source: str
    provider: str
    code: str
    reason: str
    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    received_at: float
    dead_lettered_at_ms: int

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.entry_id,
            "source": self.source,
            "provider": self.provider,
            "code": self.code,
            "reason": self.reason,
            "received_at": self.received_at,
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.summary(),
            "method": self.method,
            "url": self.url,
            "headers": self.headers,
            "body": self.body.decode("utf-8", errors="replace"),
        }


async def keep(redis: Redis, keys: Keys, delivery: Delivery, code: str, reason: str) -> str:
    """Append a request to the dead-letter stream; returns the entry id. Raises `StoreUnavailable`."""
    fields: dict[Any, Any] = {
        "source": delivery.source.name,
        "provider": delivery.source.provider,
        "code": code,
        "reason": reason,
        "method": delivery.method,
        "url": delivery.url,
        "headers": orjson.dumps(dict(delivery.headers)),
        "body": delivery.body,
        "received_at": repr(delivery.received_at),
        "at": int(time.time() * 1000),
    }
    try:
        entry_id = await redis.xadd(keys.deadletter(), fields, maxlen=DEADLETTER_MAXLEN, approximate=True)
    except UNAVAILABLE_ERRORS as err:
        raise StoreUnavailable(str(err) or type(err).__name__) from err
    return as_text(entry_id)


def _decode(entry_id: Any, raw: dict[Any, Any]) -> DeadLetter:
    fields = {as_text(key): value for key, value in raw.items()}

    def text(name: str) -> str:
        value = fields.get(name, b"")
        return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)

    body = fields.get("body", b"")
    return DeadLetter(
        entry_id=as_text(entry_id),
        source=text("source"),
        provider=text("provider"),
        code=text("code"),
        reason=text("reason"),
        method=text("method"),
        url=text("url"),
        headers=orjson.loads(fields.get("headers", b"{}")),
        body=body if isinstance(body, bytes) else str(body).encode(),
        received_at=float(text("received_at") or 0),
        dead_lettered_at_ms=int(text("at") or 0),
    )


async def entries(redis: Redis, keys: Keys, start: str = "-", count: int = 100) -> list[DeadLetter]:
    """Dead letters, oldest first, from ``start`` (inclusive)."""
    rows: Any = await redis.xrange(keys.deadletter(), min=start, max="+", count=count)
    return [_decode(entry_id, fields) for entry_id, fields in rows]


async def entry(redis: Redis, keys: Keys, entry_id: str) -> DeadLetter | None:
    rows: Any = await redis.xrange(keys.deadletter(), min=entry_id, max=entry_id)
    return _decode(*rows[0]) if rows else None


async def remove(redis: Redis, keys: Keys, entry_id: str) -> None:
    await redis.xdel(keys.deadletter(), entry_id)
