"""Plivo: form-encoded call callbacks (``Ring``, ``StartApp``, ``Hangup``, ``MachineDetection``).

Events and the outcome of a Hangup are shared with Vobiz (`receiver.providers.plivo_family`); the call
id is ``CallUUID`` and the dedupe key ``CallUUID:Event``. Plivo gives no event time, so ``occurred_at``
stays empty (its ``StartTime`` / ``AnswerTime`` / ``EndTime`` are in the account's local zone).
With ``*_method=GET`` the fields arrive in the query string.
Signatures: ``X-Plivo-Signature-V3`` (URL, sorted query, sorted POST parameters and
``X-Plivo-Signature-V3-Nonce``; `receiver.signatures.plivo_v3`) and ``X-Plivo-Signature-Ma-V3``, the same
signed with the main account's token; else V2 (``X-Plivo-Signature-V2`` / ``-Ma-V2`` with
``X-Plivo-Signature-V2-Nonce``), which signs only the URL and nonce. A source's secrets are the auth
tokens it accepts (sub-account and main account, old and new). The nonce is returned so that it cannot
authenticate another request: this matters for V2, whose body is not signed.
Sources: ../shared/providers.md §1, plivo-python ``plivo/utils/__init__.py`` and ``signature_v3.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from secrets import choice

from receiver.delivery import FORM, Delivery
from receiver.errors import SignatureError
from receiver.providers import plivo_family
from receiver.providers.base import OutgoingRequest, ProviderAdapter
from receiver.signatures import plivo_v3, url_nonce
from receiver.signatures.common import required_header, secrets_of
from statemachine.events import CallEvent

NAME = "plivo"
V3_HEADERS = ("X-Plivo-Signature-V3", "X-Plivo-Signature-Ma-V3")
V3_NONCE_HEADER = "X-Plivo-Signature-V3-Nonce"
V2_HEADERS = ("X-Plivo-Signature-V2", "X-Plivo-Signature-Ma-V2")
V2_NONCE_HEADER = "X-Plivo-Signature-V2-Nonce"


def normalize(delivery: Delivery) -> list[CallEvent]:
    """One Plivo callback → one canonical event."""
    return plivo_family.normalize_callback(delivery, delivery.fields((FORM,)), plivo_family.EVENTS, "Plivo")


def _present(headers: Mapping[str, str], names: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(name, headers[name.lower()]) for name in names if headers.get(name.lower())]


def verify(delivery: Delivery, now: float) -> str | None:
    """V3 when its headers are present, else V2; either signature header (sub or main account) may match.

    Returns the nonce, which must not authenticate another request.
    """
    headers = delivery.headers
    secrets = secrets_of(delivery.source.secrets)
    v3 = _present(headers, V3_HEADERS)
    if v3:
        nonce = required_header(headers, V3_NONCE_HEADER)
        # A GET's fields are in its query, which the signed URL carries (the SDK's construct_get_url).
        params = delivery.form_pairs() if delivery.method == "POST" and delivery.media_type == FORM else []
        plivo_v3.verify(secrets, delivery.url, params, nonce, [value for _, value in v3], v3[0][0])
        return nonce
    v2 = _present(headers, V2_HEADERS)
    if v2:
        nonce = required_header(headers, V2_NONCE_HEADER)
        url_nonce.verify(secrets, delivery.url, nonce, ",".join(value for _, value in v2), "", v2[0][0])
        return nonce
    raise SignatureError(f"missing signature header {V3_HEADERS[0]}", header=V3_HEADERS[0])


def sign(request: OutgoingRequest, secret: str, now: float) -> dict[str, str]:
    """V3 headers as Plivo sends them, with a fresh 20-digit nonce."""
    nonce = "".join(choice("0123456789") for _ in range(20))
    return {
        V3_HEADERS[0]: plivo_v3.signature(secret, request.url, request.form_pairs(), nonce),
        V3_NONCE_HEADER: nonce,
    }


ADAPTER = ProviderAdapter(
    name=NAME, verify=verify, normalize=normalize, sign=sign, content_types=(FORM,), methods=("POST", "GET")
)
