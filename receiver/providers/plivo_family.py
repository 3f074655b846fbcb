"""What Plivo and the Plivo-compatible Vobiz share: callback events, the outcome of a Hangup, normalization.

Both send ``Ring``, ``StartApp``, ``Hangup`` and ``MachineDetection`` callbacks keyed by ``CallUUID``. The
outcome of a Hangup is decided in this order (`hangup_outcome`):

1. **Evidence of an answer** ends the call ``completed``, whatever the cause: an ``AnswerTime``, billed
   seconds (``BillDuration``; Vobiz trunk webhooks: ``Billsec``), or talk time (a trunk webhook's
   ``Duration`` is ring + talk time, so ``Duration - RingTime``). A callback's bare ``Duration`` is not
   used: Plivo documents it only as "the duration of the call", not as time connected.
2. The **hangup cause code** (``HangupCauseCode``) in the hangup-cause table Plivo and Vobiz both publish
   (`HANGUP_CAUSES`, every range: 0, 1000–1020, 2000–2070, 3000–3050, 3070–3140, 4000–4030, 5000–5030,
   6000–6020, 7011–7034, 8011–8014, 9000–9110).
3. The **cause name**: ``HangupCauseName`` (the same table's names), else ``HangupCause`` (the textual
   SIP / B2BUA cause, `SIP_HANGUP_CAUSES`), else a trunk Hangup's ``Reason``.
4. ``CallStatus`` (`HANGUP_STATUSES`), which Vobiz documents as always ``completed`` on a Hangup.
5. Otherwise ``no_answer``: nothing says the call was answered, nothing says why it was not.

``CallStatus`` comes last because Vobiz sends ``completed`` for every Hangup. Event times: ``Timestamp``
(Vobiz trunk webhooks, ISO 8601 UTC) or ``timestamp`` (Vobiz callbacks page), else the event's own time
field when it carries a zone (a trunk Hangup's ``EndTime``). Plivo's ``StartTime`` / ``AnswerTime`` /
``EndTime`` are in the account's local zone: kept raw as ``*_time_local``, never read as UTC. This module
has no ``ADAPTER``: ``plivo`` and ``vobiz`` build theirs on it.
Sources: plivo.com/docs/voice/troubleshooting/hangup-causes, docs.vobiz.ai/concepts/hangup-causes,
docs.vobiz.ai/trunks/webhook, docs.plivo.com/docs/voice/xml/request, ../shared/providers.md §1–2.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from receiver.delivery import Delivery
from receiver.errors import UnknownEvent
from receiver.providers.base import iso_utc, make_event, normalized_name, number_or_none, text_or_none
from statemachine.events import CallEvent
from statemachine.states import Trigger

Fields = Mapping[str, Any]
#: An event's trigger, or the function deciding it from the callback's fields (a Hangup's outcome).
Decision = Trigger | Callable[[Fields], Trigger]

#: The hangup-cause table Plivo and Vobiz publish (identical rows; Vobiz adds 5030): code, cause name,
#: and the outcome of a call that shows no evidence of an answer. None: the row does not say (``Unknown``),
#: so the cause name and CallStatus decide. Outcomes: "canceled" is a caller or API cancel; a call the
#: platform or a carrier would not put through is "failed"; a far end that declined is "rejected".
HANGUP_CAUSES: tuple[tuple[int, str, Trigger | None], ...] = (
    (0, "Unknown", None),
    # Canceled Calls (1000–1020): "calls canceled before being answered".
    (1000, "Canceled", Trigger.CANCELED),  # via the Hangup Call API, before answer
    (1010, "Canceled (Out Of Credits)", Trigger.FAILED),  # the account, not the caller, ended it
    (1020, "Canceled (Simultaneous dial limit reached)", Trigger.FAILED),
    # Destination Issues (2000–2070).
    (2000, "Invalid Destination Address", Trigger.FAILED),
    (2010, "Destination Out Of Service", Trigger.FAILED),
    (2020, "Endpoint Not Registered", Trigger.FAILED),
    (2030, "Destination Country Barred", Trigger.FAILED),
    (2040, "Destination Number Barred", Trigger.FAILED),
    (2050, "Destination Prefix Barred", Trigger.FAILED),
    (2060, "Loop Detected", Trigger.FAILED),
    (2070, "Violates Media Anchoring", Trigger.FAILED),
    # Call Rejections (3000–3050).
    (3000, "No Answer", Trigger.NO_ANSWER),
    (3010, "Busy Line", Trigger.BUSY),
    (3020, "Rejected", Trigger.REJECTED),  # "recipient declined the call"
    (3030, "Unknown Caller ID", Trigger.FAILED),  # the caller id was refused, not the call by the callee
    (3040, "Forbidden", Trigger.REJECTED),  # "destination rejected/blocked call"
    (3050, "Unallocated number", Trigger.FAILED),
    # Carrier Errors (3070–3140).
    (3070, "Request timeout", Trigger.FAILED),
    (3080, "Internal server error from carrier", Trigger.FAILED),
    (3090, "Network congestion from carrier", Trigger.FAILED),
    (3100, "Busy everywhere", Trigger.BUSY),
    (3110, "Declined", Trigger.REJECTED),  # "destination cannot/won't participate"
    (3120, "User does not exist anywhere", Trigger.FAILED),
    (3130, "Spam block", Trigger.FAILED),  # the carrier refused it
    (3140, "DNO Caller ID", Trigger.FAILED),
    # Normal Completions (4000–4030).
    (4000, "Normal Hangup", Trigger.COMPLETED),
    (4010, "End Of XML Instructions", Trigger.COMPLETED),
    (4020, "Multiparty Call Ended", Trigger.COMPLETED),
    (4030, "Kicked Out Of Multiparty Call", Trigger.COMPLETED),
    # System Errors (5000–5020; Vobiz: 5000–5030).
    (5000, "Network Error", Trigger.FAILED),
    (5010, "Internal Error", Trigger.FAILED),
    (5020, "Routing Error", Trigger.FAILED),
    (5030, "Concurrency Limit Breached", Trigger.FAILED),  # Vobiz only
    # Timeouts (6000–6020).
    (6000, "Scheduled Hangup", Trigger.COMPLETED),  # the answered call reached its time limit
    (6010, "Ring Timeout Reached", Trigger.NO_ANSWER),
    (6020, "Media Timeout", Trigger.FAILED),
    # URL Errors (7011–7034): the call could not be driven.
    (7011, "Error Reaching Answer URL", Trigger.FAILED),
    (7012, "Error Reaching Action URL", Trigger.FAILED),
    (7013, "Error Reaching Transfer URL", Trigger.FAILED),
    (7014, "Error Reaching Redirect URL", Trigger.FAILED),
    (7022, "Invalid Action URL", Trigger.FAILED),
    (7023, "Invalid Transfer URL", Trigger.FAILED),
    (7024, "Invalid Redirect URL", Trigger.FAILED),
    (7032, "Invalid Method For Action URL", Trigger.FAILED),
    (7033, "Invalid Method For Transfer URL", Trigger.FAILED),
    (7034, "Invalid Method For Redirect URL", Trigger.FAILED),
    # XML Errors (8011–8014).
    (8011, "Invalid Answer XML", Trigger.FAILED),
    (8012, "Invalid Action XML", Trigger.FAILED),
    (8013, "Invalid Transfer XML", Trigger.FAILED),
    (8014, "Invalid Redirect XML", Trigger.FAILED),
    # Special Cases (9000–9110).
    (9000, "Lost Race", Trigger.CANCELED),  # another parallel leg answered first: this one was withdrawn
    (9100, "Machine Detected", Trigger.COMPLETED),  # answered, by a machine (machine_detection=hangup)
    (9110, "Confirm Key Challenge Failed", Trigger.NO_ANSWER),  # answered but never accepted with the key
)

#: Textual ``HangupCause`` values from the SIP / B2BUA layer (Vobiz "SIP Hangup Causes" table), plus the
#: two FreeSWITCH (Q.850) names Plivo also sends for a ring that ran out. ``UNKNOWN`` decides nothing.
SIP_HANGUP_CAUSES: dict[str, Trigger | None] = {
    "NORMAL_CLEARING": Trigger.COMPLETED,  # "one of the parties hung up normally"
    "USER_BUSY": Trigger.BUSY,
    "NO_ANSWER": Trigger.NO_ANSWER,
    "ORIGINATOR_CANCEL": Trigger.CANCELED,
    "CALL_REJECTED": Trigger.REJECTED,
    "REJECTED": Trigger.REJECTED,
    "INVALID_NUMBER": Trigger.FAILED,
    "UNALLOCATED_NUMBER": Trigger.FAILED,
    "SERVICE_UNAVAILABLE": Trigger.FAILED,
    "SERVER_ERROR": Trigger.FAILED,
    "MEDIA_TIMEOUT": Trigger.FAILED,
    "PROTOCOL_ERROR": Trigger.FAILED,
    "NETWORK_OUT_OF_ORDER": Trigger.FAILED,
    "DESTINATION_OUT_OF_ORDER": Trigger.FAILED,
    "NORMAL_TEMPORARY_FAILURE": Trigger.FAILED,
    "SWITCH_CONGESTION": Trigger.FAILED,
    "UNKNOWN": None,
    "NO_USER_RESPONSE": Trigger.NO_ANSWER,  # FreeSWITCH, Q.850 18
    "ALLOTTED_TIMEOUT": Trigger.NO_ANSWER,  # FreeSWITCH: the dial's ring timeout
}

#: Outcome by code, and by cause name compared case- and punctuation-insensitively (both tables' names).
HANGUP_CODES: dict[int, Trigger | None] = {code: trigger for code, _name, trigger in HANGUP_CAUSES}
CAUSE_NAMES: dict[str, Trigger | None] = {
    **{normalized_name(name): trigger for name, trigger in SIP_HANGUP_CAUSES.items()},
    **{normalized_name(name): trigger for _code, name, trigger in HANGUP_CAUSES},
}
#: Fields naming the cause in words, most specific first (a trunk Hangup puts the SIP cause in ``Reason``).
CAUSE_NAME_FIELDS = ("HangupCauseName", "HangupCause", "Reason")

#: CallStatus on a hangup, when neither an answer nor a cause tells the outcome. ``timeout`` is a
#: carrier or network failure, not a ring timeout (Plivo: "a timeout while connecting your call").
HANGUP_STATUSES: dict[str, Trigger] = {
    "busy": Trigger.BUSY,
    "no_answer": Trigger.NO_ANSWER,
    "cancel": Trigger.CANCELED,
    "canceled": Trigger.CANCELED,
    "timeout": Trigger.FAILED,
    "failed": Trigger.FAILED,
}

#: Seconds fields that are time connected when above zero: Plivo/Vobiz callbacks' ``BillDuration``, a
#: Vobiz trunk Hangup's ``Billsec`` ("time the call was actually connected"), a CDR's ``billsec``.
CONNECTED_SECONDS_FIELDS = ("BillDuration", "Billsec", "bill_duration", "billsec")

#: The ``Machine`` field of a MachineDetection callback → canonical ``answered_by``.
MACHINE_VALUES: dict[str, str] = {"true": "machine", "false": "human"}


def _positive(value: Any) -> bool:
    number = number_or_none(value)
    return number is not None and number > 0


def was_answered(fields: Fields) -> bool:
    """Evidence of an answer on a hangup: an AnswerTime, connected seconds, or talk time (a trunk webhook's
    ``Duration`` less its ``RingTime``)."""
    if text_or_none(fields.get("AnswerTime")) or any(_positive(fields.get(name)) for name in CONNECTED_SECONDS_FIELDS):
        return True
    duration, ring = number_or_none(fields.get("Duration")), number_or_none(fields.get("RingTime"))
    return duration is not None and ring is not None and duration - ring > 0


def cause_outcome(fields: Fields) -> Trigger | None:
    """The outcome the hangup cause gives (code, else name), or None when the cause says nothing."""
    code = number_or_none(fields.get("HangupCauseCode"))
    if isinstance(code, int) and HANGUP_CODES.get(code) is not None:
        return HANGUP_CODES[code]
    for field in CAUSE_NAME_FIELDS:
        trigger = CAUSE_NAMES.get(normalized_name(str(fields.get(field) or "")))
        if trigger is not None:
            return trigger
    return None


def hangup_outcome(fields: Fields) -> Trigger:
    """The terminal state of a hung-up call (order in the module docstring)."""
    if was_answered(fields):
        return Trigger.COMPLETED
    by_cause = cause_outcome(fields)
    if by_cause is not None:
        return by_cause
    status = normalized_name(str(fields.get("CallStatus") or fields.get("status") or ""))
    if status == "completed" and _positive(fields.get("duration")):
        return Trigger.COMPLETED  # Vobiz's older JSON shape reports a connected call's duration
    return HANGUP_STATUSES.get(status, Trigger.NO_ANSWER)


#: Event names with punctuation removed, compared case-insensitively (Plivo's docs also spell them
#: ``answered`` / ``hangup`` / ``ringing``).
EVENTS: dict[str, Decision] = {
    "ring": Trigger.RINGING,
    "ringing": Trigger.RINGING,
    "startapp": Trigger.ANSWERED,
    "answered": Trigger.ANSWERED,
    "hangup": hangup_outcome,
    "machinedetection": Trigger.ANNOTATION,
}

#: Where an event's own time is, when it carries a zone; ``Timestamp`` / ``timestamp`` come first.
EVENT_TIME_FIELDS: dict[str, str] = {"hangup": "EndTime", "callcompleted": "end_time", "startapp": "AnswerTime"}
TIMESTAMP_FIELDS = ("Timestamp", "timestamp")

#: Local-or-zoned times: published as ``<name>`` (UTC) when they carry a zone, else raw as ``<name>_local``.
TIME_EXTRAS: dict[str, tuple[str, ...]] = {
    "start_time": ("StartTime", "start_time"),
    "answer_time": ("AnswerTime",),
    "end_time": ("EndTime", "end_time"),
}

#: Numeric extras: canonical name → fields, first present wins.
NUMBER_EXTRAS: dict[str, tuple[str, ...]] = {
    "duration_s": ("Duration", "duration"),
    "bill_duration_s": ("BillDuration", "Billsec"),
    "ring_time_s": ("RingTime",),
    "cost": ("Cost",),
    "mos": ("MOS",),
}

#: Text extras: canonical name → fields, first present wins.
TEXT_EXTRAS: dict[str, tuple[str, ...]] = {
    "hangup_cause": ("HangupCause",),
    "hangup_cause_code": ("HangupCauseCode",),
    "hangup_cause_name": ("HangupCauseName",),
    "hangup_source": ("HangupSource",),
    "reason": ("Reason",),
    "total_cost": ("TotalCost",),
    "bill_rate": ("BillRate",),
    "currency": ("Currency",),
    "session_start": ("SessionStart",),
}

#: Correlation ids: canonical name → fields, first present wins.
CORRELATION_FIELDS: dict[str, tuple[str, ...]] = {
    "request_uuid": ("RequestUUID", "RequestID"),
    "a_leg_uuid": ("ALegUUID",),
    "a_leg_request_uuid": ("ALegRequestUUID",),
    "bridge_uuid": ("BridgeUUID",),
    "trunk_id": ("TrunkID",),
    "sip_call_id": ("SIPCallID",),
    "account_id": ("account_id", "auth_id", "AccountId", "ParentAuthID"),
}


def _first(fields: Fields, names: tuple[str, ...]) -> Any:
    for name in names:
        value = fields.get(name)
        if value not in (None, ""):
            return value
    return None


def event_time(fields: Fields, key: str) -> str | None:
    """The provider's time of the event, in UTC, when it gives one with a zone."""
    for name in (*TIMESTAMP_FIELDS, EVENT_TIME_FIELDS.get(key, "")):
        moment = iso_utc(fields.get(name))
        if moment is not None:
            return moment
    return None


#: A callback without ``Event`` (the answer and hangup URL requests Vobiz documents on its applications page)
#: is named by its ``CallStatus``, once a hangup's own fields are ruled out.
EVENTLESS_STATUSES: dict[str, str] = {"ringing": "Ring", "in_progress": "StartApp"}


def event_name(fields: Fields) -> str:
    """The callback's event name; without an ``Event`` field, a callback with an ``EndTime`` or a
    ``HangupCause`` is a ``Hangup``, else its ``CallStatus`` names it (`EVENTLESS_STATUSES`)."""
    name = fields.get("Event") or fields.get("event")
    if name:
        return str(name)
    if fields.get("EndTime") or fields.get("HangupCause"):
        return "Hangup"
    return EVENTLESS_STATUSES.get(normalized_name(str(fields.get("CallStatus") or "")), "")


def extras_of(fields: Fields) -> dict[str, Any]:
    """Durations, causes, costs and times a callback carries, under canonical names."""
    extras: dict[str, Any] = {name: number_or_none(_first(fields, names)) for name, names in NUMBER_EXTRAS.items()}
    extras.update({name: text_or_none(_first(fields, names)) for name, names in TEXT_EXTRAS.items()})
    for name, names in TIME_EXTRAS.items():
        raw = text_or_none(_first(fields, names))
        zoned = iso_utc(raw)
        extras[name if zoned else f"{name}_local"] = zoned or raw
    return extras


def normalize_callback(
    delivery: Delivery, fields: dict[str, Any], events: Mapping[str, Decision], provider: str
) -> list[CallEvent]:
    """One Plivo-family callback → one canonical event; ``provider`` names it in errors."""
    provider_event = event_name(fields)
    key = normalized_name(provider_event).replace("_", "")
    if key not in events:
        raise UnknownEvent(f"unknown {provider} event {provider_event or '(none)'!r}", event=provider_event)
    decision = events[key]
    trigger = decision if isinstance(decision, Trigger) else decision(fields)
    call_id = fields.get("CallUUID") or fields.get("call_id")
    extras = extras_of(fields)
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
            provider_status=text_or_none(fields.get("CallStatus") or fields.get("status") or fields.get("Status")),
            dedupe_key=f"{call_id}:{provider_event}",
            occurred_at=event_time(fields, key),
            from_number=fields.get("From") or fields.get("from"),
            to_number=fields.get("To") or fields.get("to"),
            direction=text_or_none(fields.get("Direction") or fields.get("direction")),
            correlation={name: _first(fields, names) for name, names in CORRELATION_FIELDS.items()},
            extras=extras,
            raw=fields,
        )
    ]
