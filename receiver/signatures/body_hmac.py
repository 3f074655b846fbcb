"""Lower-case hex HMAC-SHA256 of the raw body alone, in one header: Vobiz trunk webhooks.

There is no timestamp or nonce, so a captured request can be sent again unchanged; it then carries the
same provider event, which the call's dedupe marks make a duplicate. Any change to the body is refused.
Source: docs.vobiz.ai/trunks/webhook ("Verify the payload").
"""

from __future__ import annotations

from collections.abc import Sequence

from receiver.errors import SignatureError
from receiver.signatures.common import mac, matches_any


def signature(secret: str, body: bytes) -> str:
    """hex(HMAC-SHA256(secret, body))."""
    return mac(secret, body).hexdigest()


def verify(secrets: Sequence[str], body: bytes, provided: str, header: str) -> None:
    """Accept when any secret signs ``body`` to ``provided`` (compared lower-case, in constant time)."""
    candidates = [signature(secret, body) for secret in secrets]
    if not matches_any(candidates, [provided.strip().lower()]):
        raise SignatureError(f"{header} does not match the request", header=header)
