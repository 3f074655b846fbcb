"""HMAC-SHA256 over the callback URL and a nonce: Vobiz V2/V3 and Plivo V2; the version rules of the family.

V2 signs ``base_url + nonce``; Vobiz V3 signs ``base_url + "." + nonce`` (Plivo V3, which also signs the
parameters, is `receiver.signatures.plivo_v3`). Neither V2 nor Vobiz V3 covers the body, and the versions
overlap: a V3 signature over ``base_url + "." + n`` *is* a V2 signature for the nonce ``"." + n``. So:

- a source accepts exactly the versions it is configured for (``signature_versions``, default the
  strongest the provider sends), and when a request carries a stronger version's headers, only that
  version is checked, never a weaker one;
- a nonce must have the documented shape (20 decimal digits), so no V3 text can pose as a V2 nonce;
- the nonces of every accepted version present are returned, to be spent before the request is acted on:
  the headers of one captured request then authenticate no other body.

Sources: docs.vobiz.ai/concepts/validating-callbacks ("Random 20-digit nonce"); Plivo's signature pages
(nonce ``05429567804466091622``); plivo-python ``plivo/utils/__init__.py``.
"""

from __future__ import annotations

import base64
import re
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from secrets import choice
from typing import TYPE_CHECKING, Any

from receiver.errors import SignatureError
from receiver.settings import ConfigError
from receiver.signatures.common import Verified, mac, matches_any, required_header, secrets_of

if TYPE_CHECKING:
    from receiver.delivery import Delivery

#: The documented nonce: 20 decimal digits. Nothing else reaches a signature check or a Redis key.
NONCE_SHAPE = re.compile(r"[0-9]{20}")
#: The source option naming the accepted versions (a provider module lists it in its ``KNOWN_OPTIONS``).
VERSIONS_OPTION = "signature_versions"


# A source's public URL is fixed, so its base is worked out once per URL, not once per request.
@lru_cache(maxsize=256)
def base_url(url: str) -> str:
    """``scheme://host/path`` of a URL: query string and fragment are not signed."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def signature(secret: str, url: str, nonce: str, separator: str) -> str:
    """base64(HMAC-SHA256(secret, base_url + separator + nonce)); V2 uses no separator, V3 uses '.'."""
    message = (base_url(url) + separator + nonce).encode()
    return base64.b64encode(mac(secret, message).digest()).decode()


def verify(secrets: Sequence[str], url: str, nonce: str, provided: str, separator: str, header: str) -> None:
    """Accept when any secret produces any of the comma-separated signatures in ``provided``."""
    candidates = [signature(secret, url, nonce, separator) for secret in secrets]
    if not matches_any(candidates, [value.strip() for value in provided.split(",")]):
        raise SignatureError(f"{header} does not match the request", header=header)


#: ``check(secrets, delivery, nonce, provided signatures, header)`` raises SignatureError unless one matches.
Check = Callable[[Sequence[str], "Delivery", str, Sequence[str], str], None]


@dataclass(frozen=True, slots=True)
class Version:
    """One signature version of a provider: its headers (account, then main account) and how it is checked."""

    name: str
    headers: tuple[str, ...]
    nonce_header: str
    check: Check
    #: The same names lower-case, as a delivery's headers are keyed (worked out once).
    keys: tuple[str, ...] = field(init=False)
    nonce_key: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "keys", tuple(name.lower() for name in self.headers))
        object.__setattr__(self, "nonce_key", self.nonce_header.lower())


def separator_check(separator: str) -> Check:
    """The check of a version that signs ``base_url + separator + nonce`` (V2: '', Vobiz V3: '.')."""

    def check(secrets: Sequence[str], delivery: Delivery, nonce: str, provided: Sequence[str], header: str) -> None:
        verify(secrets, delivery.url, nonce, ",".join(provided), separator, header)

    return check


def accepted_versions(options: Mapping[str, Any], versions: Sequence[Version], where: str) -> frozenset[str]:
    """The versions a source accepts: its ``signature_versions`` option, else the strongest alone.

    Raises ConfigError naming the option for anything but a non-empty list of known version names.
    """
    value = options.get(VERSIONS_OPTION)
    if value is None:
        return _strongest(tuple(versions))
    names = [version.name for version in versions]
    if not isinstance(value, list) or not value or any(item not in names for item in value):
        raise ConfigError(f"{where}.{VERSIONS_OPTION} must be a non-empty list of: {', '.join(names)}; got {value!r}")
    return frozenset(value)


@lru_cache(maxsize=16)
def _strongest(versions: tuple[Version, ...]) -> frozenset[str]:
    return frozenset({versions[0].name})


def options_checker(versions: Sequence[Version]) -> Callable[[Mapping[str, Any], str], None]:
    """A provider module's ``check_options``: refuses a bad ``signature_versions`` when the configuration loads."""

    def check_options(options: Mapping[str, Any], where: str) -> None:
        accepted_versions(options, versions, where)

    return check_options


def new_nonce() -> str:
    """A fresh nonce of the documented shape (`NONCE_SHAPE`), for signing outgoing requests."""
    return "".join(choice("0123456789") for _ in range(20))


def _nonce(headers: Mapping[str, str], name: str) -> str:
    value = required_header(headers, name)
    if NONCE_SHAPE.fullmatch(value) is None:
        raise SignatureError(f"{name} is not a 20-digit nonce", header=name)
    return value


def verify_versions(delivery: Delivery, versions: Sequence[Version], scheme: str) -> Verified:
    """Check the strongest version whose headers the request carries (``versions`` strongest first).

    That version must be one the source accepts; a weaker one is never tried instead. The result names
    the headers read and the nonces to spend: the checked one, and that of every other accepted version
    the request carries, so a captured request stripped down to a weaker version is a replay.
    """
    headers = delivery.headers
    accepted = accepted_versions(delivery.source.options, versions, f"sources.{delivery.source.name}")
    for version in versions:
        present = [index for index, key in enumerate(version.keys) if headers.get(key)]
        if not present:
            continue
        header = version.headers[present[0]]
        if version.name not in accepted:
            raise SignatureError(
                f"{header} is a {version.name} signature, which this source does not accept", header=header
            )
        nonce = _nonce(headers, version.nonce_header)
        provided = [value.strip() for index in present for value in headers[version.keys[index]].split(",")]
        version.check(secrets_of(delivery.source.secrets), delivery, nonce, provided, header)
        return _verified(headers, versions, accepted, f"{scheme} {version.name}")
    strongest = next(version for version in versions if version.name in accepted)
    raise SignatureError(f"missing signature header {strongest.headers[0]}", header=strongest.headers[0])


def _verified(
    headers: Mapping[str, str], versions: Sequence[Version], accepted: frozenset[str], scheme: str
) -> Verified:
    """Every signature and nonce header present (credentials), and the nonces of the accepted versions."""
    credentials: list[str] = []
    nonces: list[str] = []
    for version in versions:
        credentials += [key for key in version.keys if key in headers]
        nonce = headers.get(version.nonce_key)
        if nonce is not None:
            credentials.append(version.nonce_key)
            if version.name in accepted and nonce not in nonces and NONCE_SHAPE.fullmatch(nonce):
                nonces.append(nonce)
    return Verified(scheme=scheme, credentials=tuple(credentials), nonces=tuple(nonces))
