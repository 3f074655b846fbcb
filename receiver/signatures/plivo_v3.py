"""Plivo V3: HMAC-SHA256 over the callback URL, its sorted query, the sorted POST parameters and a nonce.

For a POST with parameters the signed text is ``base + "?" + Q + ("." if Q) + "".join(name + value)``,
where ``base`` is ``scheme://host/path``, ``Q`` the URL's own query as sorted ``name=value`` pairs joined
by ``&``, and the POST parameters are sorted by name (repeated values sorted too) with no separators.
Without POST parameters it is ``base`` plus ``"?" + Q`` when there is a query. The signature is
``base64(HMAC-SHA256(auth token, text + "." + nonce))``; the header may carry several comma-separated
values. Unlike V2, the body is signed.
Sources: ../shared/providers.md §1.6; plivo-python ``plivo/utils/signature_v3.py``
(``validate_v3_signature``), docs.plivo.com/docs/voice/xml/request/validation.
"""

from __future__ import annotations

import base64
import urllib.parse
from collections.abc import Iterable, Sequence

from receiver.errors import SignatureError
from receiver.signatures.common import mac, matches_any
from receiver.signatures.url_nonce import base_url


def _grouped(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for name, value in pairs:
        groups.setdefault(name, []).append(value)
    return groups


def signed_text(url: str, params: Sequence[tuple[str, str]]) -> str:
    """The text a POST callback's V3 signature covers, before the nonce."""
    query = urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query, keep_blank_values=True)
    sorted_query = "&".join(
        f"{name}={value}" for name, values in sorted(_grouped(query).items()) for value in sorted(values)
    )
    text = base_url(url)
    if not params:
        return text + ("?" + sorted_query if sorted_query else "")
    body = "".join(name + value for name, values in sorted(_grouped(params).items()) for value in sorted(values))
    return text + "?" + sorted_query + ("." if sorted_query else "") + body


def signature(secret: str, url: str, params: Sequence[tuple[str, str]], nonce: str) -> str:
    """base64(HMAC-SHA256(secret, signed text + "." + nonce))."""
    message = (signed_text(url, params) + "." + nonce).encode()
    return base64.b64encode(mac(secret, message).digest()).decode()


def verify(
    secrets: Sequence[str],
    url: str,
    params: Sequence[tuple[str, str]],
    nonce: str,
    provided: Sequence[str],
    header: str,
) -> None:
    """Accept when any secret produces any of the comma-separated signatures in any ``provided`` header."""
    candidates = [signature(secret, url, params, nonce) for secret in secrets]
    values = [value.strip() for header_value in provided for value in header_value.split(",")]
    if not matches_any(candidates, values):
        raise SignatureError(f"{header} does not match the request", header=header)
