"""Twilio-style form status callbacks, shared by Twilio and Telnyx TeXML (which copies Twilio's format).

A status callback carries ``CallSid``, ``CallStatus`` and a per-call ``SequenceNumber`` (the order in which
the provider fired its events: deliveries may still arrive out of order). The dedupe key is
``CallSid:SequenceNumber``, or ``CallSid:CallStatus`` when no sequence number is sent. An answering
machine detection result (``AnsweredBy``) on a status callback rides along in the event's extras; an
asynchronous AMD callback (``AsyncAmdStatusCallback``), which carries ``AnsweredBy`` and no
``CallStatus``, is an annotation. ``Timestamp`` is documented as RFC 2822 UTC; Telnyx TeXML also sends
ISO 8601, so both are read. This module has no ``ADAPTER``.
Sources: ../shared/providers.md §8 and §9.2, twilio.com/docs/voice/api/call-resource,
twilio.com/docs/voice/answering-machine-detection.
"""

from __future__ import annotations

import calendar
import re
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

from receiver.delivery import FORM, Delivery
from receiver.errors import UnknownEvent
from receiver.providers.base import as_utc, iso_utc, make_event, normalized_name, number_or_none, text_or_none
from statemachine.events import CallEvent
from statemachine.states import Trigger

#: ``CallStatus`` (compared with punctuation as ``_``) → canonical trigger. ``initiated`` is Twilio
#: starting to dial; ``completed`` is only sent for an answered call (the unanswered ends have their own).
CALL_STATUSES: dict[str, Trigger] = {
    "queued": Trigger.QUEUED,
    "initiated": Trigger.DIALING,
    "ringing": Trigger.RINGING,
    "in_progress": Trigger.ANSWERED,
    "completed": Trigger.COMPLETED,
    "busy": Trigger.BUSY,
    "no_answer": Trigger.NO_ANSWER,
    "canceled": Trigger.CANCELED,
    "failed": Trigger.FAILED,
}

#: ``AnsweredBy`` → canonical ``answered_by``; values not listed are ``unknown``.
ANSWERED_BY: dict[str, str] = {
    "human": "human",
    "machine_start": "machine",
    "machine_end_beep": "machine",
    "machine_end_silence": "machine",
    "machine_end_other": "machine",
    "fax": "fax",
    "unknown": "unknown",
}

#: Correlation ids: canonical name → form field.
CORRELATION_FIELDS: dict[str, str] = {
    "account_sid": "AccountSid",
    "parent_call_sid": "ParentCallSid",
    "call_sid_legacy": "CallSidLegacy",  # Telnyx TeXML
    "connection_id": "ConnectionId",  # Telnyx TeXML
}

#: Numeric extras: canonical name → form field. Twilio's ``Duration`` is in minutes.
NUMBER_EXTRAS: dict[str, str] = {
    "sequence_number": "SequenceNumber",
    "call_duration_s": "CallDuration",
    "duration_min": "Duration",
    "machine_detection_duration_ms": "MachineDetectionDuration",
    "recording_duration_s": "RecordingDuration",
}

#: Text extras: canonical name → form field.
TEXT_EXTRAS: dict[str, str] = {
    "sip_response_code": "SipResponseCode",
    "callback_source": "CallbackSource",
    "recording_url": "RecordingUrl",
    "recording_sid": "RecordingSid",
    "stir_status": "StirStatus",
    "hangup_source": "HangupSource",
    "error_code": "ErrorCode",
    "call_initiated_at": "CallInitiatedAt",
}


#: Twilio's own layout of ``Timestamp``, read without the general RFC 2822 parser (~20 µs a call).
_UTC_RFC2822 = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), ([0-9]{2}) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"([1-9][0-9]{3}) ([0-9]{2}):([0-9]{2}):([0-9]{2}) \+0000"
)
_MONTHS = {name: number for number, name in enumerate(calendar.month_abbr) if name}


def timestamp_utc(value: Any) -> str | None:
    """An RFC 2822 (``Mon, 16 Aug 2010 03:45:01 +0000``) or ISO 8601 timestamp as ISO 8601 UTC."""
    text = text_or_none(value)
    if text is None:
        return None
    exact = _UTC_RFC2822.fullmatch(text)
    if exact is not None:
        day, month, year, hour, minute, second = exact.groups()
        try:
            return f"{datetime(int(year), _MONTHS[month], int(day), int(hour), int(minute), int(second)).isoformat()}Z"
        except ValueError:
            pass  # not a date (31 Feb): the general parser decides, as it always did
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return iso_utc(text)
    if moment.tzinfo is None:
        return None  # "-0000": RFC 2822's unknown zone
    return as_utc(moment)


def _extras(fields: dict[str, str]) -> dict[str, Any]:
    extras: dict[str, Any] = {name: number_or_none(fields.get(field)) for name, field in NUMBER_EXTRAS.items()}
    extras.update({name: text_or_none(fields.get(field)) for name, field in TEXT_EXTRAS.items()})
    answered_by = text_or_none(fields.get("AnsweredBy"))
    if answered_by is not None:
        extras["answered_by"] = ANSWERED_BY.get(normalized_name(answered_by), "unknown")
        extras["provider_answered_by"] = answered_by
    return extras


def normalize_status_callback(delivery: Delivery, provider: str) -> list[CallEvent]:
    """One Twilio-style status or AMD callback → one canonical event; ``provider`` names it in errors."""
    fields = delivery.fields((FORM,))
    call_id = fields.get("CallSid")
    status = text_or_none(fields.get("CallStatus"))
    extras = _extras(fields)
    if status is not None:
        key = normalized_name(status)
        if key not in CALL_STATUSES:
            raise UnknownEvent(f"unknown {provider} CallStatus {status!r}", event=status)
        trigger = CALL_STATUSES[key]
        provider_event = status
        sequence = text_or_none(fields.get("SequenceNumber"))
        dedupe_key = f"{call_id}:{sequence if sequence is not None else status}"
    elif "answered_by" in extras:
        trigger = Trigger.ANNOTATION
        provider_event = "AnsweredBy"
        dedupe_key = f"{call_id}:AnsweredBy"
        extras["annotation"] = "machine_detection"
    else:
        raise UnknownEvent(f"{provider} callback has neither CallStatus nor AnsweredBy", event="")
    return [
        make_event(
            delivery,
            call_id=call_id,
            call_id_field="CallSid",
            trigger=trigger,
            provider_event=provider_event,
            provider_status=status,
            dedupe_key=dedupe_key,
            occurred_at=timestamp_utc(fields.get("Timestamp")),
            from_number=fields.get("From"),
            to_number=fields.get("To"),
            direction=text_or_none(fields.get("Direction")),
            correlation={name: fields.get(field) for name, field in CORRELATION_FIELDS.items()},
            extras=extras,
            raw=fields,
        )
    ]
