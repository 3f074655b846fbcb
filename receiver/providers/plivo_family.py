"""What Plivo and the Plivo-compatible Vobiz share: callback events, the outcome of a Hangup, normalization.

Both send ``Ring``, ``StartApp``, ``Hangup`` and ``MachineDetection`` callbacks keyed by ``CallUUID``.
The outcome of a Hangup comes from ``HangupCause`` and whether the call was answered (``AnswerTime`` /
``BillDuration``), not from ``CallStatus``, which Vobiz documents as always ``completed``. Times other
than ``SessionStart`` are in the account's local zone, so ``occurred_at`` is left empty and the raw
values are kept. The lower-case field names read as fallbacks belong to Vobiz's older JSON shape; Plivo's
form callbacks never carry them. This module has no ``ADAPTER``: ``plivo`` and ``vobiz`` build theirs on it.
Sources: ../shared/providers.md §1–2 and §10.2, docs.plivo.com/docs/voice/troubleshooting/hangup-causes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from receiver.delivery import Delivery
from receiver.errors import UnknownEvent
from receiver.providers.base import iso_utc, make_event, normalized_name, number_or_none, text_or_none
from statemachine.events import CallEvent
from statemachine.states import Trigger

#: Event names with punctuation removed, compared case-insensitively (Plivo's docs also spell them
#: ``answered`` / ``hangup`` / ``ringing``). None: the outcome is decided by `hangup_outcome`.
EVENTS: dict[str, Trigger | None] = {
    "ring": Trigger.RINGING,
    "ringing": Trigger.RINGING,
    "startapp": Trigger.ANSWERED,
    "answered": Trigger.ANSWERED,
    "hangup": None,
    "machinedetection": Trigger.ANNOTATION,
}

#: Hangup cause names (Q.850 style and Plivo's hangup_cause_name) → outcome of an unanswered call.
HANGUP_CAUSES: dict[str, Trigger] = {
    "user_busy": Trigger.BUSY,
    "busy": Trigger.BUSY,
    "busy_line": Trigger.BUSY,
    "no_answer": Trigger.NO_ANSWER,
    "no_user_response": Trigger.NO_ANSWER,
    "allotted_timeout": Trigger.NO_ANSWER,
    "ring_timeout": Trigger.NO_ANSWER,
    "originator_cancel": Trigger.CANCELED,
    "canceled": Trigger.CANCELED,
    "cancelled": Trigger.CANCELED,
    "canceled_via_api": Trigger.CANCELED,
    "call_rejected": Trigger.REJECTED,
    "rejected": Trigger.REJECTED,
    "normal_clearing": Trigger.NO_ANSWER,
    "normal_hangup": Trigger.NO_ANSWER,
}

#: Hangup cause code ranges from the published table (Plivo / Vobiz hangup-causes pages).
HANGUP_CODE_RANGES: tuple[tuple[range, Trigger], ...] = (
    (range(1000, 1001), Trigger.CANCELED),
    (range(1001, 1100), Trigger.FAILED),
    (range(2000, 2100), Trigger.FAILED),
    (range(4000, 4100), Trigger.NO_ANSWER),
)

#: CallStatus on a hangup, when neither an answer nor a cause tells the outcome. ``timeout`` is a
#: carrier or network failure, not a ring timeout (providers.md §1.2).
HANGUP_STATUSES: dict[str, Trigger] = {
    "busy": Trigger.BUSY,
    "no_answer": Trigger.NO_ANSWER,
    "cancel": Trigger.CANCELED,
    "canceled": Trigger.CANCELED,
    "timeout": Trigger.FAILED,
    "failed": Trigger.FAILED,
}

#: The ``Machine`` field of a MachineDetection callback → canonical ``answered_by``.
MACHINE_VALUES: dict[str, str] = {"true": "machine", "false": "human"}


def was_answered(fields: Mapping[str, Any]) -> bool:
    """Evidence of an answer on a hangup: an AnswerTime, or billed seconds."""
    bill = number_or_none(fields.get("BillDuration") or fields.get("bill_duration"))
    return bool(text_or_none(fields.get("AnswerTime"))) or bool(bill and bill > 0)


def hangup_outcome(fields: Mapping[str, Any]) -> Trigger:
    """The terminal state of a hung-up call."""
    if was_answered(fields):
        return Trigger.COMPLETED
    cause = normalized_name(str(fields.get("HangupCause") or fields.get("HangupCauseName") or ""))
    if cause in HANGUP_CAUSES:
        return HANGUP_CAUSES[cause]
    code = number_or_none(fields.get("HangupCauseCode"))
    if isinstance(code, int):
        for codes, trigger in HANGUP_CODE_RANGES:
            if code in codes:
                return trigger
    status = normalized_name(str(fields.get("CallStatus") or fields.get("status") or ""))
    if status == "completed" and fields.get("duration") not in (None, "", 0, "0"):
        return Trigger.COMPLETED  # Vobiz's older JSON shape reports a connected call's duration
    return HANGUP_STATUSES.get(status, Trigger.NO_ANSWER)


def event_name(fields: Mapping[str, Any]) -> str:
    """The callback's event name; a hangup callback without an ``Event`` field is a ``Hangup``."""
    name = fields.get("Event") or fields.get("event")
    if name:
        return str(name)
    if fields.get("EndTime") or fields.get("HangupCause"):
        return "Hangup"
    return ""


def normalize_callback(
    delivery: Delivery, fields: dict[str, Any], events: Mapping[str, Trigger | None], provider: str
) -> list[CallEvent]:
    """One Plivo-family callback → one canonical event; ``provider`` names it in errors."""
    provider_event = event_name(fields)
    key = normalized_name(provider_event).replace("_", "")
    if key not in events:
        raise UnknownEvent(f"unknown {provider} event {provider_event or '(none)'!r}", event=provider_event)
    trigger = events[key] or hangup_outcome(fields)
    call_id = fields.get("CallUUID") or fields.get("call_id")
    extras: dict[str, Any] = {
        "duration_s": number_or_none(fields.get("Duration") or fields.get("duration")),
        "bill_duration_s": number_or_none(fields.get("BillDuration")),
        "hangup_cause": text_or_none(fields.get("HangupCause")),
        "hangup_cause_code": text_or_none(fields.get("HangupCauseCode")),
        "hangup_source": text_or_none(fields.get("HangupSource")),
        "total_cost": text_or_none(fields.get("TotalCost")),
        "start_time_local": text_or_none(fields.get("StartTime") or fields.get("start_time")),
        "answer_time_local": text_or_none(fields.get("AnswerTime")),
        "end_time_local": text_or_none(fields.get("EndTime") or fields.get("end_time")),
        "session_start": text_or_none(fields.get("SessionStart")),
    }
    if trigger is Trigger.ANNOTATION:
        extras["annotation"] = "machine_detection"
        extras["answered_by"] = MACHINE_VALUES.get(normalized_name(str(fields.get("Machine", ""))), "unknown")
    return [
        make_event(
            delivery,
            call_id=call_id,
            call_id_field="CallUUID",
            trigger=trigger,
            provider_event=provider_event,
            provider_status=text_or_none(fields.get("CallStatus") or fields.get("status")),
            dedupe_key=f"{call_id}:{provider_event}",
            occurred_at=iso_utc(fields.get("timestamp")),
            from_number=fields.get("From") or fields.get("from"),
            to_number=fields.get("To") or fields.get("to"),
            direction=text_or_none(fields.get("Direction") or fields.get("direction")),
            correlation={
                "request_uuid": fields.get("RequestUUID"),
                "a_leg_uuid": fields.get("ALegUUID"),
                "a_leg_request_uuid": fields.get("ALegRequestUUID"),
                "account_id": fields.get("account_id"),
            },
            extras=extras,
            raw=fields,
        )
    ]
