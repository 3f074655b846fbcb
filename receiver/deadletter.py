"""The dead-letter stream: requests that passed authentication but could not be processed.

Each entry keeps the reason, how the request was authenticated, and the request itself (method, URL,
headers, body), within bounds, so an operator can see what a provider sent and redrive it once the cause
is fixed. What is kept, and what is not:

- **Credentials never.** The values of the headers the signature check read (signatures, tokens, nonces),
  of headers named like credentials (``Authorization``, ``Cookie``, the operator's ``X-Callstream-Replay``,
  anything with ``secret``, ``token``, ``password``, ``api-key``, ``signature`` or ``nonce`` in its name), of
  any header holding one of the source's secrets, and of URL query parameters named like credentials, are
  stored as ``***``.
- **Unauthenticated headers are marked.** The entry records the scheme that authenticated the request and
  the headers it covered (``authenticated``); every other header was not authenticated: anyone relaying
  the request could have set it.
- **Bounded per entry.** The body is kept up to ``max_entry_bytes`` (the rest is dropped; its full size
  and SHA-256 are kept), headers up to `MAX_HEADER_BYTES` (headers beyond are dropped and counted), the
  URL up to `MAX_URL_BYTES` and the reason up to `MAX_REASON_BYTES`. An entry with anything dropped is
  marked ``truncated`` and is never redriven (it is not the request that was received).
- **Bounded per source.** A source's entries hold at most ``max_source_bytes``: keeping one more removes
  that source's oldest entries first. One source's flood never removes another source's entries.
- **Once per request.** A request whose method, URL and body equal those of an entry still kept (a
  provider's retry, or a captured request replayed with other unsigned headers) is not kept again; the
  reply names the existing entry.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis

from receiver.delivery import Delivery
from receiver.settings import DeadLetterLimits
from receiver.signatures.common import Verified, secrets_of
from statemachine.errors import StoreUnavailable
from statemachine.keys import Keys
from statemachine.store import UNAVAILABLE_ERRORS, as_text

#: Safety net over every source's own bound: the stream's approximate length.
DEADLETTER_MAXLEN = 100_000
MAX_HEADER_BYTES = 8 * 1024
MAX_URL_BYTES = 4 * 1024
MAX_REASON_BYTES = 1024
MASK = "***"
#: Header names (lower-case) whose values are credentials, and fragments that mark such names.
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-callstream-replay"})
SECRET_NAME_PARTS = ("secret", "token", "password", "api-key", "apikey", "signature", "nonce")


@dataclass(frozen=True, slots=True)
class Kept:
    """Where a request was kept: ``new`` is False when an entry for the same request was already there."""

    entry_id: str
    new: bool
    evicted: int = 0


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One dead-lettered request, as stored (credentials already masked)."""

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
    #: What authenticated it: the scheme, and the header names it covered. None: kept before this was recorded.
    scheme: str | None = None
    authenticated: tuple[str, ...] = ()
    verified: bool = False
    body_bytes: int = 0
    body_sha256: str = ""
    headers_dropped: int = 0
    truncated: bool = False

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
            "authentication": self.scheme if self.scheme is not None else "not recorded",
            "authenticated_headers": list(self.authenticated),
            "unauthenticated_headers": [name for name in self.headers if name not in self.authenticated],
            "headers": self.headers,
            "headers_dropped": self.headers_dropped,
            "body": self.body.decode("utf-8", errors="replace"),
            "body_bytes": self.body_bytes,
            "body_sha256": self.body_sha256,
            "truncated": self.truncated,
        }

    def not_redrivable(self) -> str | None:
        """Why this entry must not be run again as it is, or None."""
        if self.scheme is None:
            return "kept without a record of its authentication (an older release): not redriven"
        if self.truncated:
            return "kept truncated (over the dead-letter size limits): it is not the request received"
        return None


def sensitive_name(name: str) -> bool:
    """Whether a header or parameter name marks a credential."""
    lowered = name.lower()
    return lowered in SECRET_HEADERS or any(part in lowered for part in SECRET_NAME_PARTS)


def holds_secret(value: str, secrets: Sequence[str]) -> bool:
    """Whether any whitespace- or comma-separated word of ``value`` is one of ``secrets`` (constant time)."""
    words = value.replace(",", " ").split()
    return any(hmac.compare_digest(word.encode(), secret.encode()) for word in words for secret in secrets if secret)


def masked_headers(
    headers: Mapping[str, str], secrets: Sequence[str], credentials: Sequence[str] = ()
) -> dict[str, str]:
    """Headers with credential values replaced by ``***``: read by the signature check, named like one, or
    holding a secret."""
    masked = {name.lower() for name in credentials}
    return {
        name: MASK if name.lower() in masked or sensitive_name(name) or holds_secret(value, secrets) else value
        for name, value in headers.items()
    }


def masked_url(url: str) -> str:
    """The URL with the values of query parameters named like credentials replaced by ``***``."""
    parts = urllib.parse.urlsplit(url)
    if not parts.query:
        return url
    pairs = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    if not any(sensitive_name(name) for name, _ in pairs):
        return url
    query = urllib.parse.urlencode([(name, MASK if sensitive_name(name) else value) for name, value in pairs])
    return urllib.parse.urlunsplit(parts._replace(query=query))


def _cut(text: str, limit: int) -> tuple[str, bool]:
    raw = text.encode()
    if len(raw) <= limit:
        return text, False
    return raw[:limit].decode(errors="ignore"), True


def _bounded_headers(headers: Mapping[str, str]) -> tuple[dict[str, str], int]:
    """Headers in order until `MAX_HEADER_BYTES`; the number dropped."""
    kept: dict[str, str] = {}
    used = 0
    for name, value in headers.items():
        size = len(name.encode()) + len(value.encode()) + 4
        if used + size > MAX_HEADER_BYTES:
            return kept, len(headers) - len(kept)
        kept[name] = value
        used += size
    return kept, 0


def digest_of(delivery: Delivery) -> str:
    """What identifies a request among a source's dead letters: its method, URL and body."""
    digest = hashlib.sha256(f"{delivery.source.name}\n{delivery.method}\n{delivery.url}\n".encode())
    digest.update(delivery.body)
    return digest.hexdigest()[:32]


def record(delivery: Delivery, verified: Verified, code: str, reason: str, limits: DeadLetterLimits) -> dict[str, Any]:
    """The stream entry's fields for one request: masked, bounded, with its authentication."""
    secrets = secrets_of(delivery.source.secrets)
    headers, dropped = _bounded_headers(masked_headers(delivery.headers, secrets, verified.credentials))
    url, url_cut = _cut(masked_url(delivery.url), MAX_URL_BYTES)
    reason, _ = _cut(reason, MAX_REASON_BYTES)
    body = delivery.body[: limits.max_entry_bytes]
    truncated = url_cut or dropped > 0 or len(body) < len(delivery.body)
    return {
        "source": delivery.source.name,
        "provider": delivery.source.provider,
        "code": code,
        "reason": reason,
        "method": delivery.method,
        "url": url,
        "headers": orjson.dumps(headers),
        "headers_dropped": dropped,
        "verified": int(verified.checked),
        "scheme": verified.scheme,
        "authenticated": orjson.dumps(sorted(verified.authenticated)),
        "body": body,
        "body_bytes": len(delivery.body),
        "body_sha256": hashlib.sha256(delivery.body).hexdigest(),
        "truncated": int(truncated),
        "received_at": repr(delivery.received_at),
        "at": int(time.time() * 1000),
    }


# Keeps one entry and a source's bookkeeping in one step. KEYS: stream, the source's entries (list,
# newest first), digests (hash), bytes (string). ARGV: digest, entry bytes, source budget, stream maxlen,
# an entry id this one replaces ('' if none), then the entry's field/value pairs.
_KEEP = """
local stream, entries, digests, used_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local digest, size, budget = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local existing = redis.call('HGET', digests, digest)
if existing and existing ~= ARGV[5] and #redis.call('XRANGE', stream, existing, existing) > 0 then
  return {existing, 0, 0}
end
local used = tonumber(redis.call('GET', used_key) or '0')
local evicted = 0
while used + size > budget do
  local oldest = redis.call('RPOP', entries)
  if not oldest then break end
  local id, bytes, old_digest = string.match(oldest, '^(%S+) (%d+) (%S+)$')
  redis.call('XDEL', stream, id)
  if redis.call('HGET', digests, old_digest) == id then redis.call('HDEL', digests, old_digest) end
  used = used - tonumber(bytes)
  evicted = evicted + 1
end
if used < 0 then used = 0 end
local fields = {}
for i = 6, #ARGV do fields[#fields + 1] = ARGV[i] end
local id = redis.call('XADD', stream, 'MAXLEN', '~', ARGV[4], '*', unpack(fields))
redis.call('LPUSH', entries, id .. ' ' .. size .. ' ' .. digest)
redis.call('HSET', digests, digest, id)
redis.call('SET', used_key, used + size)
return {id, 1, evicted}
"""

# Removes one entry and its bookkeeping. KEYS as for _KEEP; ARGV: entry id, its bytes, its digest.
_REMOVE = """
local removed = redis.call('XDEL', KEYS[1], ARGV[1])
if ARGV[3] ~= '' and redis.call('LREM', KEYS[2], 1, ARGV[1] .. ' ' .. ARGV[2] .. ' ' .. ARGV[3]) > 0 then
  local used = tonumber(redis.call('GET', KEYS[4]) or '0') - tonumber(ARGV[2])
  if used < 0 then used = 0 end
  redis.call('SET', KEYS[4], used)
  if redis.call('HGET', KEYS[3], ARGV[3]) == ARGV[1] then redis.call('HDEL', KEYS[3], ARGV[3]) end
end
return removed
"""


def _size(fields: Mapping[str, Any]) -> int:
    return sum(
        len(name) + len(value if isinstance(value, bytes) else str(value).encode()) for name, value in fields.items()
    )


async def keep(
    redis: Redis,
    keys: Keys,
    delivery: Delivery,
    verified: Verified,
    code: str,
    reason: str,
    limits: DeadLetterLimits | None = None,
    *,
    replaces: str | None = None,
) -> Kept:
    """Keep a request (see the module docstring); ``replaces`` names the entry a redrive is about to remove,
    which does not count as the same request's entry. Raises `StoreUnavailable`."""
    limits = limits or DeadLetterLimits()
    fields = record(delivery, verified, code, reason, limits)
    digest = digest_of(delivery)
    fields["digest"] = digest
    size = _size(fields)
    fields["bytes"] = size
    args: list[Any] = [digest, size, limits.max_source_bytes, DEADLETTER_MAXLEN, replaces or ""]
    for name, value in fields.items():
        args += [name, value]
    try:
        reply: Any = await redis.register_script(_KEEP)(
            keys=[keys.deadletter(), *keys.deadletter_account(delivery.source.name)], args=args
        )
    except UNAVAILABLE_ERRORS as err:
        raise StoreUnavailable(str(err) or type(err).__name__) from err
    return Kept(entry_id=as_text(reply[0]), new=bool(int(reply[1])), evicted=int(reply[2]))


def _decode(entry_id: Any, raw: dict[Any, Any]) -> DeadLetter:
    fields = {as_text(key): value for key, value in raw.items()}

    def text(name: str) -> str:
        value = fields.get(name, b"")
        return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)

    body = fields.get("body", b"")
    body = body if isinstance(body, bytes) else str(body).encode()
    return DeadLetter(
        entry_id=as_text(entry_id),
        source=text("source"),
        provider=text("provider"),
        code=text("code"),
        reason=text("reason"),
        method=text("method"),
        url=text("url"),
        headers=orjson.loads(fields.get("headers", b"{}")),
        body=body,
        received_at=float(text("received_at") or 0),
        dead_lettered_at_ms=int(text("at") or 0),
        scheme=text("scheme") if "scheme" in fields else None,
        authenticated=tuple(orjson.loads(fields.get("authenticated", b"[]"))),
        verified=text("verified") == "1",
        body_bytes=int(text("body_bytes") or len(body)),
        body_sha256=text("body_sha256"),
        headers_dropped=int(text("headers_dropped") or 0),
        truncated=text("truncated") == "1",
    )


async def entries(redis: Redis, keys: Keys, start: str = "-", count: int = 100) -> list[DeadLetter]:
    """Dead letters, oldest first, from ``start`` (inclusive)."""
    rows: Any = await redis.xrange(keys.deadletter(), min=start, max="+", count=count)
    return [_decode(entry_id, fields) for entry_id, fields in rows]


async def entry(redis: Redis, keys: Keys, entry_id: str) -> DeadLetter | None:
    rows: Any = await redis.xrange(keys.deadletter(), min=entry_id, max=entry_id)
    return _decode(*rows[0]) if rows else None


async def remove(redis: Redis, keys: Keys, entry_id: str) -> None:
    """Delete one entry and its share of its source's bookkeeping."""
    rows: Any = await redis.xrange(keys.deadletter(), min=entry_id, max=entry_id)
    if not rows:
        return
    fields = {as_text(key): as_text(value) for key, value in rows[0][1].items() if as_text(key) != "body"}
    source = fields.get("source", "")
    await redis.register_script(_REMOVE)(
        keys=[keys.deadletter(), *keys.deadletter_account(source)],
        args=[entry_id, fields.get("bytes", "0"), fields.get("digest", "")],
    )
