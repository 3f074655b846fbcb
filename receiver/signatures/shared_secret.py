"""A secret sent as it is: in a header of its own (Goodbox preset, generic sources) or as a bearer token
(inTandem). Nothing of the request is signed, so such a scheme proves who sent a request, not what it
said: anyone who holds a captured request can resend its secret with another body. Prefer a signing
family where the sender offers one.
"""

from __future__ import annotations

from collections.abc import Sequence

from receiver.errors import SignatureError
from receiver.signatures.common import Verified, matches_any

BEARER = "bearer"


def verify(secrets: Sequence[str], provided: str, header: str) -> None:
    """Accept when ``provided`` equals any configured secret, compared in constant time."""
    if not secrets or not matches_any(secrets, [provided]):
        raise SignatureError(f"{header} does not match", header=header)


def parse_bearer(header_value: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value (scheme name case-insensitive), or
    None when the value is not a bearer token."""
    scheme, _, token = header_value.strip().partition(" ")
    if scheme.lower() != BEARER or not token.strip():
        return None
    return token.strip()


def bearer_token(header_value: str, header: str) -> str:
    """`parse_bearer` for a signature header: SignatureError naming ``header`` when it is not a bearer token."""
    token = parse_bearer(header_value)
    if token is None:
        raise SignatureError(f"{header} is not a bearer token", header=header)
    return token


def verified(header: str) -> Verified:
    """What a matching secret in ``header`` proves: the sender knew it; nothing of the request is signed."""
    return Verified(
        scheme="shared secret: the sender only; nothing of the request is signed", credentials=(header.lower(),)
    )
