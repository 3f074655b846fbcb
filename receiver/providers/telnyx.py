"""Telnyx: Call Control (Voice API v2) JSON webhooks and TeXML form status callbacks.

Call Control: ``data.event_type`` (``call.initiated``, ``call.answered``, ``call.hangup``, the machine
detection events, ...) maps to the canonical lifecycle (a legacy API v1 webhook, ``event_type``
``call_initiated`` ... at the top level with ``created_at``, is read the same way); a hangup's outcome comes from
``payload.hangup_cause``. The call id is ``data.payload.call_leg_id``, the dedupe key the webhook's own
``data.id``, ``occurred_at`` is ``data.occurred_at``. Events not in the tables (``call.playback.started``
and the like) are unknown: dead-lettered, answered 202. TeXML callbacks (form bodies) copy Twilio's
format and share its normalization (`receiver.providers.twilio_family`).
Signature (both kinds): Ed25519 over ``f"{telnyx-timestamp}|{raw body}"`` in ``telnyx-signature-ed25519``
(base64), with ``telnyx-timestamp`` within the source's tolerance (300 s by default). A production
source's secrets are the account's **public key(s)** (base64, 32 bytes); several are accepted while
rotating. Replay and tests sign with a private seed or a passphrase: see `receiver.signatures.ed25519`
for how a configured value is read.
Sources: ../shared/providers.md §9, developers.telnyx.com/api-reference/callbacks, telnyx-python
``src/telnyx/types/call_hangup.py`` and ``src/telnyx/lib/webhook_verification.py``.
"""

from __future__ import annotations

from typing import Any

from receiver.delivery import FORM, JSON, Delivery
from receiver.errors import UnknownEvent
from receiver.providers import twilio_family
from receiver.providers.base import OutgoingRequest, ProviderAdapter, iso_utc, make_event, text_or_none
from receiver.signatures import ed25519
from receiver.signatures.common import Verified, check_timestamp, required_header, secrets_of
from statemachine.events import CallEvent
from statemachine.states import Trigger

NAME = "telnyx"
SIGNATURE_HEADER = "telnyx-signature-ed25519"
TIMESTAMP_HEADER = "telnyx-timestamp"
VERIFIED = Verified(
    scheme="telnyx ed25519: timestamp and body",
    credentials=(SIGNATURE_HEADER,),
    covered=(TIMESTAMP_HEADER,),
)

#: Call Control events that move the call. None: the outcome comes from `HANGUP_CAUSES`.
#: ``call.initiated`` is the attempt starting (there is no ringing event in Call Control).
EVENTS: dict[str, Trigger | None] = {
    "call.initiated": Trigger.DIALING,
    "call.answered": Trigger.ANSWERED,
    "call.hangup": None,
}

#: Call Control events that are facts about the call → annotation name.
ANNOTATIONS: dict[str, str] = {
    "call.machine.detection.ended": "machine_detection",
    "call.machine.premium.detection.ended": "machine_detection",
    "call.machine.greeting.ended": "machine_greeting_ended",
    "call.machine.premium.greeting.ended": "machine_greeting_ended",
    "call.bridged": "bridged",
}

#: ``hangup_cause`` (the SDK's closed set) → outcome. ``timeout`` is the dial's ``timeout_secs`` passing
#: unanswered; ``time_limit`` ends an answered call at its time limit; ``unspecified`` and ``not_found``
#: end calls that never connected (providers.md §10.2).
HANGUP_CAUSES: dict[str, Trigger] = {
    "normal_clearing": Trigger.COMPLETED,
    "time_limit": Trigger.COMPLETED,
    "user_busy": Trigger.BUSY,
    "no_answer": Trigger.NO_ANSWER,
    "timeout": Trigger.NO_ANSWER,
    "originator_cancel": Trigger.CANCELED,
    "call_rejected": Trigger.REJECTED,
    "not_found": Trigger.FAILED,
    "unspecified": Trigger.FAILED,
}

#: Machine detection ``result`` (standard and premium) → canonical ``answered_by``.
MACHINE_RESULTS: dict[str, str] = {
    "human": "human",
    "human_residence": "human",
    "human_business": "human",
    "machine": "machine",
    "silence": "machine",
    "fax_detected": "fax",
    "not_sure": "unknown",
}


def _trigger(event_type: str, payload: dict[str, Any]) -> Trigger:
    if event_type in ANNOTATIONS:
        return Trigger.ANNOTATION
    if event_type not in EVENTS:
        raise UnknownEvent(f"unknown Telnyx event {event_type or '(none)'!r}", event=event_type)
    trigger = EVENTS[event_type]
    if trigger is not None:
        return trigger
    cause = str(payload.get("hangup_cause") or "")
    if cause not in HANGUP_CAUSES:
        raise UnknownEvent(f"unknown Telnyx hangup_cause {cause or '(none)'!r}", event=event_type)
    return HANGUP_CAUSES[cause]


def webhook_of(document: dict[str, Any]) -> dict[str, Any]:
    """The webhook object: v2's ``data``; a legacy v1 webhook (API v1 connections: no ``data`` wrapper,
    ``event_type`` spelled with underscores, ``created_at``) is read as its v2 equivalent."""
    data = document.get("data")
    if isinstance(data, dict) or "event_type" not in document:
        return data if isinstance(data, dict) else {}
    payload = document.get("payload")
    payload_time = payload.get("occurred_at") if isinstance(payload, dict) else None
    return {
        **document,
        "event_type": str(document.get("event_type") or "").replace("_", "."),
        "occurred_at": document.get("occurred_at") or payload_time or document.get("created_at"),
    }


def normalize_call_control(delivery: Delivery) -> list[CallEvent]:
    """One Call Control webhook (v2, or the legacy v1 envelope) → one canonical event."""
    document = delivery.fields((JSON,))
    webhook = webhook_of(document)
    event_type = str(webhook.get("event_type") or "")
    payload = webhook.get("payload")
    payload = payload if isinstance(payload, dict) else {}
    trigger = _trigger(event_type, payload)
    call_id = payload.get("call_leg_id")
    extras: dict[str, Any] = {
        "state": text_or_none(payload.get("state")),
        "start_time": iso_utc(payload.get("start_time")),
        "end_time": iso_utc(payload.get("end_time")),
        "hangup_cause": text_or_none(payload.get("hangup_cause")),
        "hangup_source": text_or_none(payload.get("hangup_source")),
        "sip_hangup_cause": text_or_none(payload.get("sip_hangup_cause")),
        "result": text_or_none(payload.get("result")),
    }
    if trigger is Trigger.ANNOTATION:
        extras["annotation"] = ANNOTATIONS[event_type]
        if extras["annotation"] == "machine_detection":
            extras["answered_by"] = MACHINE_RESULTS.get(str(payload.get("result") or ""), "unknown")
    return [
        make_event(
            delivery,
            call_id=call_id,
            call_id_field="data.payload.call_leg_id",
            trigger=trigger,
            provider_event=event_type,
            provider_status=text_or_none(payload.get("hangup_cause") or payload.get("state")),
            dedupe_key=text_or_none(webhook.get("id")) or f"{call_id}:{event_type}",
            occurred_at=iso_utc(webhook.get("occurred_at")),
            from_number=payload.get("from"),
            to_number=payload.get("to"),
            direction=text_or_none(payload.get("direction")),
            correlation={
                "call_control_id": payload.get("call_control_id"),
                "call_session_id": payload.get("call_session_id"),
                "connection_id": payload.get("connection_id"),
                "client_state": payload.get("client_state"),
            },
            extras=extras,
            raw=document,
        )
    ]


def normalize(delivery: Delivery) -> list[CallEvent]:
    """A TeXML form callback or a Call Control JSON webhook → one canonical event."""
    if delivery.media_type == FORM:
        return twilio_family.normalize_status_callback(delivery, "Telnyx TeXML")
    return normalize_call_control(delivery)


def verify(delivery: Delivery, now: float) -> Verified:
    """Ed25519 over ``timestamp|body`` with any configured key, timestamp within tolerance."""
    provided = required_header(delivery.headers, SIGNATURE_HEADER)
    timestamp = required_header(delivery.headers, TIMESTAMP_HEADER)
    check_timestamp(timestamp, now, delivery.source.timestamp_tolerance_s, TIMESTAMP_HEADER)
    keys = [ed25519.verifying_key(secret) for secret in secrets_of(delivery.source.secrets)]
    ed25519.verify(keys, timestamp, delivery.body, provided, SIGNATURE_HEADER)
    return VERIFIED


def sign(request: OutgoingRequest, secret: str, now: float) -> dict[str, str]:
    """Headers as Telnyx sends them; ``secret`` is a private seed or a passphrase (not a public key)."""
    timestamp = str(int(now))
    return {
        SIGNATURE_HEADER: ed25519.signature(ed25519.signing_key(secret), timestamp, request.body),
        TIMESTAMP_HEADER: timestamp,
    }


ADAPTER = ProviderAdapter(name=NAME, verify=verify, normalize=normalize, sign=sign, content_types=(JSON, FORM))
