"""Twilio: base64 HMAC over the full URL followed by the POST parameters, sorted, as ``name + value``.

The full URL includes scheme, host, path and query. Parameters are sorted by name and each name's distinct
values sorted; there are no separators. Twilio's signing of the port is inconsistent, so the URL is
checked both with and without its default port (``:443`` / ``:80``), as the official SDK does. JSON
bodies are covered by a ``bodySHA256`` query parameter (hex SHA-256 of the body) and signed with no
parameters. The algorithm is HMAC-SHA1 unless ``X-Twilio-Webhooks-Signature-Settings`` names
``HMAC_SHA256`` (shared-key webhooks).
Sources: ../shared/providers.md §8; twilio-python ``twilio/request_validator.py``.
"""

from __future__ import annotations

import base64
import hashlib
import urllib.parse
from collections.abc import Iterable, Sequence
from functools import lru_cache

from receiver.errors import SignatureError
from receiver.signatures.common import mac, matches_any

#: Algorithm names as the settings header spells them → hashlib digest names.
ALGORITHMS: dict[str, str] = {"HMAC_SHA1": "sha1", "HMAC_SHA256": "sha256"}
DEFAULT_ALGORITHM = "HMAC_SHA1"
DEFAULT_PORTS = {"https": 443, "http": 80}
BODY_HASH_PARAMETER = "bodySHA256"


def algorithm_of(settings_header: str | None) -> str:
    """The algorithm named by ``algorithm=`` in the settings header; HMAC_SHA1 when absent."""
    for part in (settings_header or "").split(","):
        name, separator, value = part.partition("=")
        if separator and name.strip() == "algorithm" and value.strip():
            return value.strip().upper()
    return DEFAULT_ALGORITHM


# A source's public URL is fixed, so its variants are worked out once per URL, not once per request.
@lru_cache(maxsize=256)
def port_variants(url: str) -> tuple[str, str]:
    """The URL as given and with its port toggled: removed when present, the default added when absent."""
    parts = urllib.parse.urlsplit(url)
    if parts.port is not None:
        toggled = parts.netloc[: parts.netloc.rfind(":")]
    else:
        toggled = f"{parts.netloc}:{DEFAULT_PORTS.get(parts.scheme, 80)}"
    return url, urllib.parse.urlunsplit(parts._replace(netloc=toggled))


def params_text(params: Iterable[tuple[str, str]]) -> str:
    """Each parameter name and value, names sorted, each name's distinct values sorted: the part after the URL."""
    groups: dict[str, set[str]] = {}
    for name, value in params:
        groups.setdefault(name, set()).add(value)
    return "".join(name + value for name in sorted(groups) for value in sorted(groups[name]))


def signed_text(url: str, params: Iterable[tuple[str, str]]) -> str:
    """The URL followed by `params_text`."""
    return url + params_text(params)


def _mac(secret: str, text: str, algorithm: str) -> str:
    return base64.b64encode(mac(secret, text.encode(), ALGORITHMS[algorithm]).digest()).decode()


def signature(secret: str, url: str, params: Iterable[tuple[str, str]], algorithm: str = DEFAULT_ALGORITHM) -> str:
    """base64 HMAC of `signed_text` with ``secret`` (the account's auth token)."""
    return _mac(secret, signed_text(url, params), algorithm)


def body_hash(body: bytes) -> str:
    """The hex SHA-256 a JSON body's URL carries as ``bodySHA256``."""
    return hashlib.sha256(body).hexdigest()


def provided_body_hash(url: str) -> str | None:
    """The ``bodySHA256`` query parameter of a URL, if any."""
    values = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query).get(BODY_HASH_PARAMETER)
    return values[0] if values else None


def verify(
    secrets: Sequence[str],
    url: str,
    params: Sequence[tuple[str, str]],
    provided: str,
    header: str,
    algorithm: str = DEFAULT_ALGORITHM,
) -> None:
    """Accept when any secret signs the URL (with or without its default port) and params to ``provided``."""
    # The sorted parameter text is the costly part: built once, then MACed after each URL variant.
    tail = params_text(params)
    candidates = [_mac(secret, variant + tail, algorithm) for secret in secrets for variant in port_variants(url)]
    if not matches_any(candidates, [provided.strip()]):
        raise SignatureError(f"{header} does not match the request", header=header)


def verify_body_hash(url: str, body: bytes, header: str) -> None:
    """A JSON body must match the ``bodySHA256`` its signed URL carries."""
    provided = provided_body_hash(url)
    if provided is None or not matches_any([body_hash(body)], [provided.lower()]):
        raise SignatureError(f"{header} does not cover this body: bodySHA256 is missing or differs", header=header)
