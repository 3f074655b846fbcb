"""inTandem VoiceCall records, as a business application mirrors them to callstream.

inTandem documents a record API (create / update a VoiceCall, provider ``VONAGE``), not a webhook, so
the body is the record in its documented create/update shape, posted whenever the application writes
it. The call id is the record's external unique id; its field name is not certain from the docs, so
``external_unique_id`` and ``external_id`` are both read. A record repeats its status on every update
(price and duration arrive later), so the dedupe key is ``<uid or external id>:<status>``.

Statuses are the upper-case create/update enum; the object page spells them as lower-case prose
(``incoming call``, ``answered by vonage``), so both spellings are accepted:

- ``INCOMING_CALL`` → ``ringing``; ``ANSWERED_BY_STAFF`` / ``ANSWERED_BY_CALLS_PROVIDER`` → ``answered``
  with ``answered_by`` = ``staff`` / ``provider``; ``MISSED`` → ``no_answer``;
- ``VOICEMAIL_RECEIVED`` → two events: ``no_answer`` (a voicemail is left on the missed-call path) and
  a ``voicemail`` annotation, so the fact is published even when ``MISSED`` already ended the call;
- ``MISSED_CALL_HANDLED`` → an annotation: a later business action, not telephony.

inTandem has no status for an answered call that ended; ``duration`` is set "on update", once the call
is over, so an answered status whose record carries ``duration`` means ``completed`` (an inference,
documented in docs/providers.md). Without it a staff-answered call would never reach a terminal state.

Authentication: ``Authorization: Bearer <token>`` equal to one of the source's secrets.
Sources: ../shared/providers.md §6; developers.intandem.tech/reference/voicecallscontroller_create.
"""

from __future__ import annotations

from typing import Any

from receiver.delivery import JSON, Delivery
from receiver.errors import UnknownEvent
from receiver.providers.base import (
    OutgoingRequest,
    ProviderAdapter,
    iso_utc,
    make_event,
    normalized_name,
    number_or_none,
    text_or_none,
)
from receiver.signatures import shared_secret
from receiver.signatures.common import Verified, required_header, secrets_of
from statemachine.events import CallEvent
from statemachine.states import Trigger

NAME = "intandem"
AUTHORIZATION = "Authorization"
EXTERNAL_ID_FIELDS = ("external_unique_id", "external_id")

#: Status (normalized: ``ANSWERED_BY_STAFF`` and ``answered by staff`` alike) → (trigger, extras).
STATUSES: dict[str, tuple[Trigger, dict[str, Any]]] = {
    "incoming_call": (Trigger.RINGING, {}),
    "answered_by_staff": (Trigger.ANSWERED, {"answered_by": "staff"}),
    "answered_by_calls_provider": (Trigger.ANSWERED, {"answered_by": "provider"}),
    "answered_by_vonage": (Trigger.ANSWERED, {"answered_by": "provider"}),
    "missed": (Trigger.NO_ANSWER, {}),
    "voicemail_received": (Trigger.NO_ANSWER, {"voicemail": True}),
    "missed_call_handled": (Trigger.ANNOTATION, {"annotation": "missed_call_handled"}),
}

#: Answered statuses: with a ``duration`` the record describes the finished call.
ANSWERED = frozenset({"answered_by_staff", "answered_by_calls_provider", "answered_by_vonage"})

#: Statuses that also publish an annotation, whatever the call's state.
ANNOTATIONS: dict[str, dict[str, Any]] = {
    "voicemail_received": {"annotation": "voicemail", "voicemail": True},
}


def external_id(record: dict[str, Any]) -> Any:
    """The record's external unique id, under whichever documented name it came."""
    return next((record[name] for name in EXTERNAL_ID_FIELDS if record.get(name) not in (None, "")), None)


def normalize(delivery: Delivery) -> list[CallEvent]:
    """One VoiceCall record → its canonical event (two for a voicemail)."""
    record = delivery.fields((JSON,))
    status = str(record.get("status") or "")
    key = normalized_name(status)
    if key not in STATUSES:
        raise UnknownEvent(f"unknown inTandem VoiceCall status {status or '(none)'!r}", event=status)
    trigger, status_extras = STATUSES[key]
    stage = key
    if key in ANSWERED and number_or_none(record.get("duration")) is not None:
        trigger, stage = Trigger.COMPLETED, f"{key}:ended"
    call_id = external_id(record)
    record_id = text_or_none(record.get("uid")) or call_id
    direction = text_or_none(record.get("direction"))
    common: dict[str, Any] = {
        "call_id": call_id,
        "call_id_field": "external_unique_id",
        "provider_event": status,
        "provider_status": status,
        "occurred_at": iso_utc(record.get("updated_at")) or iso_utc(record.get("created_at")),
        "from_number": record.get("from_number"),
        "to_number": record.get("to_number"),
        "direction": direction.lower() if direction else None,
        "correlation": {
            name: record.get(name) for name in ("uid", "staff_uid", "client_uid", "business_uid", "source_identifier")
        },
        "raw": record,
    }
    extras: dict[str, Any] = {
        "rate": text_or_none(record.get("rate")),
        "price": text_or_none(record.get("price")),
        "duration_s": number_or_none(record.get("duration")),
        "voice_provider": text_or_none(record.get("provider")),
        "recording_url": text_or_none(record.get("recording_url")),
        "handled_by_staff_uid": text_or_none(record.get("handled_by_staff_uid")),
        "handled_at": iso_utc(record.get("handled_at")),
    }
    events = [
        make_event(
            delivery, trigger=trigger, dedupe_key=f"{record_id}:{stage}", extras={**extras, **status_extras}, **common
        )
    ]
    if key in ANNOTATIONS:
        events.append(
            make_event(
                delivery,
                trigger=Trigger.ANNOTATION,
                dedupe_key=f"{record_id}:{key}:annotation",
                extras={**extras, **ANNOTATIONS[key]},
                **common,
            )
        )
    return events


def verify(delivery: Delivery, now: float) -> Verified:
    """The bearer token must equal one of the source's secrets."""
    token = shared_secret.bearer_token(required_header(delivery.headers, AUTHORIZATION), AUTHORIZATION)
    shared_secret.verify(secrets_of(delivery.source.secrets), token, AUTHORIZATION)
    return shared_secret.verified(AUTHORIZATION)


def sign(request: OutgoingRequest, secret: str, now: float) -> dict[str, str]:
    return {AUTHORIZATION: f"Bearer {secret}"}


ADAPTER = ProviderAdapter(name=NAME, verify=verify, normalize=normalize, sign=sign, content_types=(JSON,))
