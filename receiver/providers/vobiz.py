"""Vobiz: Plivo-compatible call callbacks (``Ring``, ``StartApp``, ``Hangup``, ``MachineDetection``), and the
JSON webhooks of Vobiz SIP trunks (``CallInitiated``, ``Hangup``).

Bodies are form-encoded; an older documented shape is JSON (``call.initiated`` / ``call.answered`` /
``call.completed``), and trunk webhooks are JSON, so the parser follows the Content-Type; with
``*_method=GET`` the fields arrive in the query string, which the signature does not cover (it signs the
URL without its query). Events, the outcome of a Hangup and the normalization are Plivo's
(`receiver.providers.plivo_family`), plus the trunk's admission event: ``CallInitiated`` with
``Allowed: true`` is the attempt starting (``dialing``); with ``Allowed: false`` Vobiz refused to place
the call ("Insufficient balance", "KYC verification required", "No routes available", ...), so it ends
``failed`` with the ``Reason``: Vobiz itself refused it, no far end declined (that is ``rejected``), and
trunk webhooks are sent once, so nothing else would ever end the call.
Signatures (V3; V2 only where a source lists it in ``signature_versions``; with the ``-MA-`` main-account
variants) sign only the URL and a nonce: the nonce is spent before the request is acted on
(`receiver.signatures.url_nonce`). Trunk webhooks are signed differently (an HMAC of the body with the
trunk's signing secret): a source receiving them signed uses the ``vobiz_trunk`` adapter; this one reads
them on an unverified source too.
Sources: ../shared/providers.md §1–2, the Vobiz make-call page, docs.vobiz.ai/concepts/validating-callbacks,
docs.vobiz.ai/trunks/webhook.
"""

from __future__ import annotations

from receiver.delivery import FORM, JSON, Delivery
from receiver.providers import plivo_family
from receiver.providers.base import OutgoingRequest, ProviderAdapter, normalized_name
from receiver.signatures import url_nonce
from receiver.signatures.common import Verified
from statemachine.events import CallEvent
from statemachine.states import Trigger

NAME = "vobiz"

#: Signature versions, strongest first; a source accepts ``signature_versions`` (default ``["v3"]``).
VERSIONS = (
    url_nonce.Version(
        "v3",
        ("X-Vobiz-Signature-V3", "X-Vobiz-Signature-MA-V3"),
        "X-Vobiz-Signature-V3-Nonce",
        url_nonce.separator_check("."),
    ),
    url_nonce.Version(
        "v2",
        ("X-Vobiz-Signature-V2", "X-Vobiz-Signature-MA-V2"),
        "X-Vobiz-Signature-V2-Nonce",
        url_nonce.separator_check(""),
    ),
)

#: A trunk ``CallInitiated``'s ``Allowed`` (JSON boolean, or text in a query) → the attempt's fate.
ADMISSION: dict[str, Trigger] = {"true": Trigger.DIALING, "false": Trigger.FAILED}


def admission_outcome(fields: plivo_family.Fields) -> Trigger:
    """``CallInitiated``: dialing when admitted (or when ``Allowed`` is absent, as in the older JSON shape's
    ``call.initiated``), failed when Vobiz refused the call."""
    return ADMISSION.get(normalized_name(str(fields.get("Allowed", "true"))), Trigger.DIALING)


#: Plivo's events, the older JSON shape Vobiz documented (``call.initiated`` / ``call.answered`` /
#: ``call.completed``) and the trunk webhooks (``CallInitiated``, ``Hangup``): names compared without
#: punctuation, so ``call.initiated`` and ``CallInitiated`` are one event.
EVENTS: dict[str, plivo_family.Decision] = {
    **plivo_family.EVENTS,
    "callinitiated": admission_outcome,
    "callanswered": Trigger.ANSWERED,
    "callcompleted": plivo_family.hangup_outcome,
}


def normalize(delivery: Delivery) -> list[CallEvent]:
    """One Vobiz callback or trunk webhook → one canonical event."""
    return plivo_family.normalize_callback(delivery, delivery.fields((FORM, JSON)), EVENTS, "Vobiz")


def verify(delivery: Delivery, now: float) -> Verified:
    """The strongest signature version present, if the source accepts it; its nonces must then be spent."""
    return url_nonce.verify_versions(delivery, VERSIONS, NAME)


#: ``signature_versions`` is checked when the configuration loads.
KNOWN_OPTIONS = frozenset({url_nonce.VERSIONS_OPTION})
check_options = url_nonce.options_checker(VERSIONS)


def sign(request: OutgoingRequest, secret: str, now: float) -> dict[str, str]:
    """V3 headers as Vobiz sends them, with a fresh 20-digit nonce."""
    nonce = url_nonce.new_nonce()
    return {
        "X-Vobiz-Signature-V3": url_nonce.signature(secret, request.url, nonce, "."),
        "X-Vobiz-Signature-V3-Nonce": nonce,
    }


ADAPTER = ProviderAdapter(
    name=NAME, verify=verify, normalize=normalize, sign=sign, content_types=(FORM, JSON), methods=("POST", "GET")
)
