"""Hex HMAC-SHA256 over ``timestamp + "." + raw body``: MiniVoice (``v1=``) and CallingBox (``t=…,v1=…``).

Sources: doc.minivoice.eu/docs/webhooks/signatures; docs.callingbox.io/guides/webhook-security.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from receiver.errors import SignatureError
from receiver.signatures.common import matches_any


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """Lower-case hex HMAC-SHA256 of ``timestamp.body``."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify(secrets: Sequence[str], timestamp: str, body: bytes, provided: Sequence[str], header: str) -> None:
    """Accept when any secret's signature equals any provided ``v1`` value."""
    candidates = [signature(secret, timestamp, body) for secret in secrets]
    if not provided or not matches_any(candidates, provided):
        raise SignatureError(f"{header} does not match the request", header=header)


def v1_values(header_value: str) -> list[str]:
    """The ``v1=`` values of a signature header (``v1=…`` or ``t=…,v1=…,v1=…``)."""
    values = []
    for part in header_value.split(","):
        name, _, value = part.strip().partition("=")
        if name == "v1" and value:
            values.append(value)
    return values


def t_value(header_value: str) -> str | None:
    """The ``t=`` value of a ``t=…,v1=…`` signature header (CallingBox), or None when it has none."""
    for part in header_value.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value:
            return value
    return None
