"""HMAC-SHA256 over the callback URL (query stripped) and a nonce: Vobiz V2/V3 and Plivo V2.

The body is not signed, so the nonce is returned to the caller, which remembers it in Redis in the same
atomic step as the event: a captured request replayed with an altered body is refused.
Sources: docs.vobiz.ai/concepts/validating-callbacks; plivo-python ``plivo/utils/__init__.py``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import urllib.parse
from collections.abc import Sequence

from receiver.errors import SignatureError
from receiver.signatures.common import matches_any


def base_url(url: str) -> str:
    """``scheme://host/path`` of a URL: query string and fragment are not signed."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def signature(secret: str, url: str, nonce: str, separator: str) -> str:
    """base64(HMAC-SHA256(secret, base_url + separator + nonce)); V2 uses no separator, V3 uses '.'."""
    message = (base_url(url) + separator + nonce).encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def verify(secrets: Sequence[str], url: str, nonce: str, provided: str, separator: str, header: str) -> None:
    """Accept when any secret produces any of the comma-separated signatures in ``provided``."""
    candidates = [signature(secret, url, nonce, separator) for secret in secrets]
    if not matches_any(candidates, [value.strip() for value in provided.split(",")]):
        raise SignatureError(f"{header} does not match the request", header=header)
