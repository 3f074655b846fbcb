"""Twilio Programmable Voice: form-encoded ``StatusCallback`` and ``AsyncAmdStatusCallback`` requests.

``CallStatus`` (queued, initiated, ringing, in-progress, completed, busy, failed, no-answer, canceled) maps
to the canonical lifecycle; the call id is ``CallSid`` and the dedupe key ``CallSid:SequenceNumber``
(normalization shared with Telnyx TeXML: `receiver.providers.twilio_family`). ``Timestamp`` (RFC 2822,
UTC) becomes ``occurred_at``.
Signature: ``X-Twilio-Signature`` = base64 HMAC-SHA1 of the full public URL followed by the sorted POST
parameters, checked with and without the default port (`receiver.signatures.twilio_sha1`); a GET callback
(``StatusCallbackMethod=GET``) carries its fields in the query and is signed over the full URL alone. A source's
secrets are the account's auth tokens (primary and secondary while rotating). The signature covers the
body, so no nonce is kept.
Sources: ../shared/providers.md §8, twilio-python ``twilio/request_validator.py``.
"""

from __future__ import annotations

from receiver.delivery import FORM, Delivery
from receiver.errors import SignatureError
from receiver.providers import twilio_family
from receiver.providers.base import OutgoingRequest, ProviderAdapter
from receiver.signatures import twilio_sha1
from receiver.signatures.common import Verified, required_header, secrets_of
from statemachine.events import CallEvent

NAME = "twilio"
SIGNATURE_HEADER = "X-Twilio-Signature"
SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"
#: What a valid signature proves: the URL and the parameters (or, for JSON, the body through ``bodySHA256``),
#: with no time and no nonce: a captured request stays valid, and replays the same event.
VERIFIED = Verified(
    scheme="twilio: URL and parameters (JSON body by bodySHA256); no timestamp",
    credentials=(SIGNATURE_HEADER.lower(),),
    covered=(SETTINGS_HEADER.lower(),),
)


def normalize(delivery: Delivery) -> list[CallEvent]:
    """One Twilio status or AMD callback → one canonical event."""
    return twilio_family.normalize_status_callback(delivery, "Twilio")


def verify(delivery: Delivery, now: float) -> Verified:
    """HMAC over the URL and form parameters (a JSON body: its ``bodySHA256``) with any configured token."""
    provided = required_header(delivery.headers, SIGNATURE_HEADER)
    algorithm = twilio_sha1.algorithm_of(delivery.headers.get(SETTINGS_HEADER.lower()))
    if algorithm not in twilio_sha1.ALGORITHMS:
        raise SignatureError(f"{SETTINGS_HEADER} names an unsupported algorithm", header=SETTINGS_HEADER)
    # A GET is signed over its URL alone (the fields are in its query); a JSON POST also by its bodySHA256.
    is_get = delivery.method == "GET"
    is_form = not is_get and delivery.media_type == FORM
    params = delivery.form_pairs() if is_form else []
    secrets = secrets_of(delivery.source.secrets)
    twilio_sha1.verify(secrets, delivery.url, params, provided, SIGNATURE_HEADER, algorithm)
    if not is_form and not is_get:
        twilio_sha1.verify_body_hash(delivery.url, delivery.body, SIGNATURE_HEADER)
    return VERIFIED


def sign(request: OutgoingRequest, secret: str, now: float) -> dict[str, str]:
    """``X-Twilio-Signature`` as Twilio computes it for a form body (a JSON body: the URL alone)."""
    return {SIGNATURE_HEADER: twilio_sha1.signature(secret, request.url, request.form_pairs())}


ADAPTER = ProviderAdapter(
    name=NAME, verify=verify, normalize=normalize, sign=sign, content_types=(FORM,), methods=("POST", "GET")
)
