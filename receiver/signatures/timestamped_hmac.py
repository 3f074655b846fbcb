"""Hex HMAC-SHA256 over ``timestamp + "." + raw body``: MiniVoice (``v1=``) and CallingBox (``t=…,v1=…``).

Sources: doc.minivoice.eu/docs/webhooks/signatures; docs.callingbox.io/guides/webhook-security.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from receiver.errors import SignatureError
from receiver.signatures.common import Verified, check_timestamp, mac, matches_any, required_header, secrets_of

if TYPE_CHECKING:
    from receiver.delivery import Delivery
    from receiver.providers.base import OutgoingRequest

#: How the signature header carries the digest: ``v1=<hex>`` (MiniVoice), ``t=<unix>,v1=<hex>`` with the
#: timestamp inside (CallingBox), or the bare hex; all but ``t,v1`` send the timestamp in its own header.
FORMATS = ("v1", "t,v1", "hex")


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """Lower-case hex HMAC-SHA256 of ``timestamp.body``."""
    return mac(secret, timestamp.encode() + b"." + body).hexdigest()


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


def verify_headers(
    headers: Mapping[str, str],
    body: bytes,
    secrets: Sequence[str],
    now: float,
    tolerance_s: int,
    *,
    header: str,
    timestamp_header: str | None = None,
    value_format: str = "v1",
) -> None:
    """A request's signature (``header``, in ``value_format``) and timestamp checked against ``secrets``.

    The timestamp is the ``t=`` of ``header`` in the ``t,v1`` format, else ``timestamp_header``'s value;
    it must be within ``tolerance_s`` of ``now``. Errors name the header at fault.
    """
    header_value = required_header(headers, header)
    if value_format == "t,v1":
        timestamp, timestamp_header = t_value(header_value), header
        if timestamp is None:
            raise SignatureError(f"{header} has no t= timestamp", header=header)
    else:
        timestamp_header = str(timestamp_header)
        timestamp = required_header(headers, timestamp_header)
    check_timestamp(timestamp, now, tolerance_s, timestamp_header)
    provided = [header_value.strip()] if value_format == "hex" else v1_values(header_value)
    verify(secrets, timestamp, body, provided, header)


def sign_headers(
    secret: str, body: bytes, now: float, *, header: str, timestamp_header: str | None = None, value_format: str = "v1"
) -> dict[str, str]:
    """The headers a sender signing ``body`` at ``now`` sends, in the layout `verify_headers` reads."""
    timestamp = str(int(now))
    digest = signature(secret, timestamp, body)
    if value_format == "t,v1":
        return {header: f"t={timestamp},v1={digest}"}
    value = digest if value_format == "hex" else f"v1={digest}"
    return {header: value, str(timestamp_header): timestamp}


@functools.cache
def _verified(header: str, timestamp_header: str | None, value_format: str) -> Verified:
    """What a passed check of one header layout established: the same for every request, so built once."""
    timestamp = () if value_format == "t,v1" else (str(timestamp_header).lower(),)
    return Verified(scheme="hmac-sha256: timestamp and body", credentials=(header.lower(),), covered=timestamp)


@dataclass(frozen=True, slots=True)
class Scheme:
    """One sender's layout of the headers, as an adapter's ``verify`` and ``sign``."""

    header: str
    timestamp_header: str | None = None
    value_format: str = "v1"

    def verify(self, delivery: Delivery, now: float) -> Verified:
        """`verify_headers` on a delivery, with its source's secrets and tolerance; no nonce."""
        verify_headers(
            delivery.headers,
            delivery.body,
            secrets_of(delivery.source.secrets),
            now,
            delivery.source.timestamp_tolerance_s,
            header=self.header,
            timestamp_header=self.timestamp_header,
            value_format=self.value_format,
        )
        return _verified(self.header, self.timestamp_header, self.value_format)

    def sign(self, request: OutgoingRequest, secret: str, now: float) -> dict[str, str]:
        """`sign_headers` for an outgoing request."""
        return sign_headers(
            secret,
            request.body,
            now,
            header=self.header,
            timestamp_header=self.timestamp_header,
            value_format=self.value_format,
        )
