"""JSON Web Tokens signed with HMAC-SHA256 (RFC 7519 / RFC 7515 compact form): Vonage's signed callbacks.

Only ``HS256`` is accepted; a token naming any other algorithm (``none`` included) is refused before
its signature is looked at, so a sender cannot choose how it is checked. Tokens are compared in their
canonical base64url form, in constant time, against one candidate per configured secret (rotation).
A verified token is then checked for freshness (``iat`` within the source's tolerance, ``exp`` not
passed, ``nbf`` reached) and, when it carries ``payload_hash``, for the SHA-256 of the raw body it was
issued for; one without ``payload_hash`` must carry a ``jti``, which the receiver spends on first use.
Sources: RFC 7515 §3.1, §7.1; Vonage webhook reference ("signed callbacks") and vonage-python-sdk
``jwt/src/vonage_jwt/verify_jwt.py`` (``jwt.decode(token, secret, algorithms='HS256')``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from receiver.errors import SignatureError
from receiver.signatures.common import Verified, mac, matches_any

ALGORITHM = "HS256"


def b64url(data: bytes) -> str:
    """base64url without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Inverse of `b64url`; raises ValueError on anything that is not base64url."""
    if not text or any(ch not in _B64URL for ch in text):
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as err:
        raise ValueError("not base64url") from err


_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def signature(secret: str, signing_input: str) -> str:
    """The base64url HMAC-SHA256 of ``header.payload``."""
    return b64url(mac(secret, signing_input.encode("ascii")).digest())


def encode(claims: Mapping[str, Any], secret: str) -> str:
    """A compact HS256 token for ``claims`` (for tests and replay)."""
    header = b64url(orjson.dumps({"alg": ALGORITHM, "typ": "JWT"}))
    payload = b64url(orjson.dumps(dict(claims)))
    signing_input = f"{header}.{payload}"
    return f"{signing_input}.{signature(secret, signing_input)}"


def _json_segment(segment: str, what: str, header: str) -> dict[str, Any]:
    try:
        value = orjson.loads(b64url_decode(segment))
    except (ValueError, orjson.JSONDecodeError):
        raise SignatureError(f"{header} token {what} is not base64url JSON", header=header) from None
    if not isinstance(value, dict):
        raise SignatureError(f"{header} token {what} is not a JSON object", header=header)
    return value


def decode(token: str, secrets: Sequence[str], header: str) -> dict[str, Any]:
    """The claims of a token signed HS256 with any of ``secrets``; SignatureError naming ``header`` otherwise."""
    parts = token.split(".")
    # Three base64url segments, or nothing of the token is looked at (a non-ASCII byte could not even be MACed).
    if len(parts) != 3 or any(not part or not _B64URL.issuperset(part) for part in parts):
        raise SignatureError(f"{header} is not a compact JWT", header=header)
    protected, payload, provided = parts
    if _json_segment(protected, "header", header).get("alg") != ALGORITHM:
        raise SignatureError(f"{header} token is not signed with {ALGORITHM}", header=header)
    signing_input = f"{protected}.{payload}"
    candidates = [signature(secret, signing_input) for secret in secrets]
    if not candidates or not matches_any(candidates, [provided]):
        raise SignatureError(f"{header} token signature does not match", header=header)
    return _json_segment(payload, "payload", header)


def _number(claims: Mapping[str, Any], name: str, header: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SignatureError(f"{header} token claim {name} is not a number", header=header)
    return float(value)


def check_claims(claims: Mapping[str, Any], body: bytes, now: float, tolerance_s: int, header: str) -> None:
    """``iat`` present and within ``tolerance_s`` of ``now``; ``exp`` not passed; ``nbf`` reached (with the same
    ``tolerance_s`` for clock skew as ``iat``); ``payload_hash`` matching; and the token bound to something:
    the body (``payload_hash``) or itself (``jti``, spent on first use). A token with neither would
    authenticate any body for as long as it is fresh."""
    issued = _number(claims, "iat", header)
    expires = _number(claims, "exp", header)
    not_before = _number(claims, "nbf", header)
    if issued is None:
        raise SignatureError(f"{header} token has no iat", header=header)
    if abs(now - issued) > tolerance_s:
        raise SignatureError(f"{header} token iat is outside the {tolerance_s} s tolerance", header=header)
    if expires is not None and now > expires:
        raise SignatureError(f"{header} token has expired", header=header)
    if not_before is not None and now + tolerance_s < not_before:
        raise SignatureError(f"{header} token is not valid yet (nbf)", header=header)
    expected_hash = claims.get("payload_hash")
    if expected_hash is not None:
        if not isinstance(expected_hash, str) or not matches_any([payload_hash(body)], [expected_hash.lower()]):
            raise SignatureError(f"{header} token payload_hash does not match the body", header=header)
    elif claims.get("jti") in (None, ""):
        raise SignatureError(f"{header} token has neither payload_hash nor jti: it binds no request", header=header)


def verify(
    secrets: Sequence[str], token: str, body: bytes, now: float, tolerance_s: int, header: str
) -> dict[str, Any]:
    """Signature, freshness and body hash of one token; its claims when all hold."""
    claims = decode(token, secrets, header)
    check_claims(claims, body, now, tolerance_s, header)
    return claims


#: Longest ``jti`` spent as a nonce; it becomes part of a Redis key.
MAX_JTI_LENGTH = 256


def verified(claims: Mapping[str, Any], tolerance_s: int, header: str) -> Verified:
    """What a verified token proves, with its ``jti`` to spend when it does not bind the body.

    A token with ``payload_hash`` can only ever authenticate its own body: a replay is the same event. One
    without it is single use: its ``jti`` is spent. A token is accepted while its ``iat`` is within
    ``tolerance_s`` of the receiver's clock, so from first sight it stays valid for at most twice that: the
    ``jti`` is remembered that long (plus a second), after which the token itself is stale.
    """
    if "payload_hash" in claims:
        return Verified(
            scheme=f"jwt-hs256: body (payload_hash), iat within {tolerance_s} s", credentials=(header.lower(),)
        )
    jti = claims.get("jti")
    nonces: tuple[str, ...] = ()
    if jti not in (None, ""):
        if not isinstance(jti, str | int) or isinstance(jti, bool) or not _usable_jti(str(jti)):
            raise SignatureError(f"{header} token jti is not a usable id", header=header)
        nonces = (str(jti),)
    return Verified(
        scheme=f"jwt-hs256: no body, single use (jti), iat within {tolerance_s} s",
        credentials=(header.lower(),),
        nonces=nonces,
        nonce_ttl_s=2 * tolerance_s + 1,
    )


def _usable_jti(text: str) -> bool:
    return 0 < len(text) <= MAX_JTI_LENGTH and text.isprintable() and not any(ch.isspace() for ch in text)


def payload_hash(body: bytes) -> str:
    """The ``payload_hash`` claim for a body: lower-case hex SHA-256 of the raw bytes."""
    return hashlib.sha256(body).hexdigest()
