"""Vobiz SIP trunk webhooks, signed: JSON ``CallInitiated`` (admitted or refused) and ``Hangup`` (the CDR).

Normalization is the ``vobiz`` adapter's (`receiver.providers.vobiz`): ``CallInitiated`` with
``Allowed: true`` → ``dialing``, with ``Allowed: false`` → ``failed`` carrying the ``Reason``; ``Hangup``
decided by the Plivo-family rules (``Billsec`` > 0 is time connected, so ``completed``; else the hangup
cause code and name); ``Timestamp`` (ISO 8601 UTC) is the event time. The call id is ``CallUUID``.
Signature: lower-case hex HMAC-SHA256 of the raw body with the trunk's signing secret, in the header the
Vobiz page's examples read, ``X-Vobiz-Signature`` (the page asks to confirm the header name in the
Console: a source may name another with ``signature_header``). Trunk webhooks are POSTed as JSON
(``webhook_method = GET`` has no body to sign, and Vobiz does not say where its fields would go).
Source: docs.vobiz.ai/trunks/webhook.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from receiver.delivery import JSON, Delivery
from receiver.providers import vobiz
from receiver.providers.base import OutgoingRequest, ProviderAdapter
from receiver.settings import ConfigError
from receiver.signatures import body_hmac
from receiver.signatures.common import Verified, required_header, secrets_of

NAME = "vobiz_trunk"
SIGNATURE_HEADER = "X-Vobiz-Signature"
#: The options a trunk source may set (the configuration loader refuses any other key).
KNOWN_OPTIONS = frozenset({"signature_header"})


def header_of(options: Mapping[str, Any]) -> str:
    return str(options.get("signature_header") or SIGNATURE_HEADER)


def verify(delivery: Delivery, now: float) -> Verified:
    """The body's HMAC with any configured signing secret; no nonce (the body is signed)."""
    header = header_of(delivery.source.options)
    provided = required_header(delivery.headers, header)
    body_hmac.verify(secrets_of(delivery.source.secrets), delivery.body, provided, header)
    return Verified(scheme="vobiz trunk hmac-sha256: body; no timestamp", credentials=(header.lower(),))


def sign(request: OutgoingRequest, secret: str, now: float) -> dict[str, str]:
    """The header as the Vobiz page computes it."""
    return {SIGNATURE_HEADER: body_hmac.signature(secret, request.body)}


def check_options(options: Mapping[str, Any], where: str) -> None:
    """``signature_header``, when set, must be a non-empty string."""
    value = options.get("signature_header")
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ConfigError(f"{where}.signature_header: must be a non-empty string")


ADAPTER = ProviderAdapter(name=NAME, verify=verify, normalize=vobiz.normalize, sign=sign, content_types=(JSON,))
