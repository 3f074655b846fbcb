"""Plivo: form-encoded call callbacks (``Ring``, ``StartApp``, ``Hangup``, ``MachineDetection``).

Events and the outcome of a Hangup are shared with Vobiz (`receiver.providers.plivo_family`); the call
id is ``CallUUID`` and the dedupe key ``CallUUID:Event``. Plivo gives no event time, so ``occurred_at``
stays empty (its ``StartTime`` / ``AnswerTime`` / ``EndTime`` are in the account's local zone).
With ``*_method=GET`` the fields arrive in the query string.
Signatures: ``X-Plivo-Signature-V3`` (URL, sorted query, sorted POST parameters and
``X-Plivo-Signature-V3-Nonce``; `receiver.signatures.plivo_v3`) and ``X-Plivo-Signature-Ma-V3``, the same
signed with the main account's token. V2 (``X-Plivo-Signature-V2`` / ``-Ma-V2`` with
``X-Plivo-Signature-V2-Nonce``), which signs only the URL and nonce, is accepted only by a source that lists
it in ``signature_versions``, and never when V3 headers are present. A source's secrets are the auth tokens
it accepts (sub-account and main account, old and new). The nonces are spent before the request is acted
on, so they cannot authenticate another request (`receiver.signatures.url_nonce`).
Sources: ../shared/providers.md §1, plivo-python ``plivo/utils/__init__.py`` and ``signature_v3.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

from receiver.delivery import FORM, Delivery
from receiver.providers import plivo_family
from receiver.providers.base import OutgoingRequest, ProviderAdapter
from receiver.signatures import plivo_v3, url_nonce
from receiver.signatures.common import Verified
from statemachine.events import CallEvent

NAME = "plivo"
V3_HEADERS = ("X-Plivo-Signature-V3", "X-Plivo-Signature-Ma-V3")
V3_NONCE_HEADER = "X-Plivo-Signature-V3-Nonce"
V2_HEADERS = ("X-Plivo-Signature-V2", "X-Plivo-Signature-Ma-V2")
V2_NONCE_HEADER = "X-Plivo-Signature-V2-Nonce"


def normalize(delivery: Delivery) -> list[CallEvent]:
    """One Plivo callback → one canonical event."""
    return plivo_family.normalize_callback(delivery, delivery.fields((FORM,)), plivo_family.EVENTS, "Plivo")


def _check_v3(secrets: Sequence[str], delivery: Delivery, nonce: str, provided: Sequence[str], header: str) -> None:
    # A GET's fields are in its query, which the signed URL carries (the SDK's construct_get_url).
    params = delivery.form_pairs() if delivery.method == "POST" and delivery.media_type == FORM else []
    plivo_v3.verify(secrets, delivery.url, params, nonce, provided, header)


#: Signature versions, strongest first; a source accepts ``signature_versions`` (default ``["v3"]``).
VERSIONS = (
    url_nonce.Version("v3", V3_HEADERS, V3_NONCE_HEADER, _check_v3),
    url_nonce.Version("v2", V2_HEADERS, V2_NONCE_HEADER, url_nonce.separator_check("")),
)


def verify(delivery: Delivery, now: float) -> Verified:
    """The strongest version present (V3, else V2 where accepted); either header (sub or main account) may match.

    The nonces are returned to be spent: this matters for V2, whose body is not signed.
    """
    return url_nonce.verify_versions(delivery, VERSIONS, NAME)


#: ``signature_versions`` is checked when the configuration loads.
KNOWN_OPTIONS = frozenset({url_nonce.VERSIONS_OPTION})
check_options = url_nonce.options_checker(VERSIONS)


def sign(request: OutgoingRequest, secret: str, now: float) -> dict[str, str]:
    """V3 headers as Plivo sends them, with a fresh 20-digit nonce."""
    nonce = url_nonce.new_nonce()
    return {
        V3_HEADERS[0]: plivo_v3.signature(secret, request.url, request.form_pairs(), nonce),
        V3_NONCE_HEADER: nonce,
    }


ADAPTER = ProviderAdapter(
    name=NAME, verify=verify, normalize=normalize, sign=sign, content_types=(FORM,), methods=("POST", "GET")
)
