"""Helpers shared by every signature family."""

from __future__ import annotations

import functools
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from receiver.errors import SignatureError
from receiver.settings import Secret


@functools.lru_cache(maxsize=256)
def _keyed(secret: str, algorithm: str) -> hmac.HMAC:
    return hmac.new(secret.encode(), digestmod=algorithm)


def mac(secret: str, message: bytes, algorithm: str = "sha256") -> hmac.HMAC:
    """HMAC of ``message`` under ``secret``. The keyed state is worked out once per secret and copied for
    each message, which costs about half of keying a new HMAC every time."""
    keyed = _keyed(secret, algorithm).copy()
    keyed.update(message)
    return keyed


@dataclass(frozen=True, slots=True)
class Verified:
    """What a passed signature check established about a request: every adapter's ``verify`` returns one.

    ``scheme`` names what was checked and what it binds (shown with dead letters). ``credentials`` are the
    (lower-case) names of the headers whose values proved the request (signatures, tokens, nonces): they
    are authenticated, and never stored or shown in clear. ``covered`` are other headers the signature
    covers (timestamps). Every other header was not authenticated: anyone relaying the request could have
    set it. ``nonces`` must authenticate this request only: the receiver spends them in Redis before it
    acts on the request (schemes whose signature does not cover the body, and single-use token ids).
    ``nonce_ttl_s`` is how long a spent nonce must be remembered: None for as long as
    ``retention.nonce_seconds`` (a signature without a timestamp never goes stale), else the time after
    which the signature would be refused as stale anyway.
    """

    scheme: str
    credentials: tuple[str, ...] = ()
    covered: tuple[str, ...] = ()
    nonces: tuple[str, ...] = ()
    nonce_ttl_s: int | None = None
    #: False only for a source with verification off (`UNVERIFIED`).
    checked: bool = True

    @property
    def authenticated(self) -> frozenset[str]:
        """Every header name the check covered (lower-case)."""
        return frozenset(self.credentials) | frozenset(self.covered)


#: A source with verification off: nothing about its requests is authenticated.
UNVERIFIED = Verified(scheme="none: the source does not verify signatures", checked=False)


def matches_any(candidates: Iterable[str | bytes], provided: Iterable[str | bytes]) -> bool:
    """Whether any provided signature equals any candidate, compared in constant time.

    Several candidates cover secret rotation (one per secret); several provided values cover providers
    that send more than one signature at once. Every pair is compared, so timing reveals nothing.
    """
    matched = False
    provided_list = [value.encode() if isinstance(value, str) else value for value in provided]
    for candidate in candidates:
        expected = candidate.encode() if isinstance(candidate, str) else candidate
        for value in provided_list:
            matched |= hmac.compare_digest(expected, value)
    return matched


def required_header(headers: Mapping[str, str], name: str) -> str:
    """A header the scheme needs; its absence is a signature failure naming the header."""
    value = headers.get(name.lower())
    if not value:
        raise SignatureError(f"missing signature header {name}", header=name)
    return value


def check_timestamp(timestamp: str, now: float, tolerance_s: int, header: str) -> int:
    """A unix-seconds timestamp header within ``tolerance_s`` of ``now``."""
    try:
        seconds = int(timestamp)
    except ValueError:
        raise SignatureError(f"{header} is not a unix timestamp", header=header) from None
    if abs(now - seconds) > tolerance_s:
        raise SignatureError(f"{header} is outside the {tolerance_s} s tolerance", header=header)
    return seconds


def secrets_of(secrets: Iterable[Secret]) -> list[str]:
    """Secret values, revealed only here, at the moment of comparison."""
    return [secret.reveal() for secret in secrets]
