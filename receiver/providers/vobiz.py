"""Vobiz: Plivo-compatible call callbacks (``Ring``, ``StartApp``, ``Hangup``, ``MachineDetection``).

Bodies are form-encoded; an older documented shape is JSON (``call.initiated`` / ``call.answered`` /
``call.completed``), so the parser follows the Content-Type. The outcome of a Hangup comes from
``HangupCause`` and whether the call was answered (``AnswerTime`` / ``BillDuration``), not from
``CallStatus``, which the Vobiz page documents as always ``completed``. Times other than
``SessionStart`` are in the account's local zone, so ``occurred_at`` is left empty and the raw values
are kept. Signatures (V3, else V2, with the ``-MA-`` main-account variants) sign only the URL and a
nonce: the nonce is remembered against replay.
Sources: ../shared/providers.md §1–2, the Vobiz make-call page, docs.vobiz.ai/concepts/validating-callbacks.
"""

from __future__ import annotations

from secrets import choice
from typing import Any

from receiver.delivery import FORM, JSON, Delivery
from receiver.errors import SignatureError, UnknownEvent
from receiver.providers.base import (
    OutgoingRequest,
    ProviderAdapter,
    iso_utc,
    make_event,
    normalized_name,
    number_or_none,
    text_or_none,
)
from receiver.signatures import url_nonce
from receiver.signatures.common import secrets_of
from statemachine.events import CallEvent
from statemachine.states import Trigger

NAME = "vobiz"

#: (signature header, nonce header, separator) in order of preference.
SIGNATURE_HEADERS: tuple[tuple[str, str, str], ...] = (
    ("X-Vobiz-Signature-V3", "X-Vobiz-Signature-V3-Nonce", "."),
    ("X-Vobiz-Signature-MA-V3", "X-Vobiz-Signature-V3-Nonce", "."),
    ("X-Vobiz-Signature-V2", "X-Vobiz-Signature-V2-Nonce", ""),
    ("X-Vobiz-Signature-MA-V2", "X-Vobiz-Signature-V2-Nonce", ""),
)

#: Event names, compared case- and punctuation-insensitively (Plivo's docs also spell them lower-case).
EVENTS: dict[str, Trigger | None] = {
    "ring": Trigger.RINGING,
    "ringing": Trigger.RINGING,
    "startapp": Trigger.ANSWERED,
    "answered": Trigger.ANSWERED,
    "hangup": None,  # outcome decided by `hangup_outcome`
    "machinedetection": Trigger.ANNOTATION,
    # The older JSON shape.
    "callinitiated": Trigger.DIALING,
    "callanswered": Trigger.ANSWERED,
    "callcompleted": None,
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

#: CallStatus on a hangup, when neither an answer nor a cause tells the outcome.
HANGUP_STATUSES: dict[str, Trigger] = {
    "busy": Trigger.BUSY,
    "no_answer": Trigger.NO_ANSWER,
    "cancel": Trigger.CANCELED,
    "canceled": Trigger.CANCELED,
    "timeout": Trigger.FAILED,
    "failed": Trigger.FAILED,
}


def was_answered(fields: dict[str, Any]) -> bool:
    """Evidence of an answer on a hangup: an AnswerTime, or billed seconds."""
    bill = number_or_none(fields.get("BillDuration") or fields.get("bill_duration"))
    return bool(text_or_none(fields.get("AnswerTime"))) or bool(bill and bill > 0)


def hangup_outcome(fields: dict[str, Any]) -> Trigger:
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
        return Trigger.COMPLETED  # the older JSON shape reports a connected call's duration
    return HANGUP_STATUSES.get(status, Trigger.NO_ANSWER)


def _event_name(fields: dict[str, Any]) -> str:
    name = fields.get("Event") or fields.get("event")
    if name:
        return str(name)
    # An application's hangup callback carries no Event field.
    if fields.get("EndTime") or fields.get("HangupCause"):
        return "Hangup"
    return ""


def normalize(delivery: Delivery) -> list[CallEvent]:
    """One Vobiz callback → one canonical event."""
    fields = delivery.fields((FORM, JSON))
    provider_event = _event_name(fields)
    key = normalized_name(provider_event).replace("_", "")
    if key not in EVENTS:
        raise UnknownEvent(f"unknown Vobiz event {provider_event or '(none)'!r}", event=provider_event)
    trigger = EVENTS[key] or hangup_outcome(fields)
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
        machine = normalized_name(str(fields.get("Machine", "")))
        extras["annotation"] = "machine_detection"
        extras["answered_by"] = "machine" if machine == "true" else "human" if machine == "false" else "unknown"
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


def verify(delivery: Delivery, now: float) -> str | None:
    """Check the strongest signature present; return its nonce, which must not authenticate another request."""
    headers = delivery.headers
    secrets = secrets_of(delivery.source.secrets)
    for header, nonce_header, separator in SIGNATURE_HEADERS:
        provided = headers.get(header.lower())
        if provided is None:
            continue
        nonce = headers.get(nonce_header.lower())
        if not nonce:
            raise SignatureError(f"missing signature header {nonce_header}", header=nonce_header)
        url_nonce.verify(secrets, delivery.url, nonce, provided, separator, header)
        return nonce
    raise SignatureError("missing signature header X-Vobiz-Signature-V3", header="X-Vobiz-Signature-V3")


def sign(request: OutgoingRequest, secret: str, now: float) -> dict[str, str]:
    """V3 headers as Vobiz sends them, with a fresh 20-digit nonce."""
    nonce = "".join(choice("0123456789") for _ in range(20))
    return {
        "X-Vobiz-Signature-V3": url_nonce.signature(secret, request.url, nonce, "."),
        "X-Vobiz-Signature-V3-Nonce": nonce,
    }


ADAPTER = ProviderAdapter(name=NAME, verify=verify, normalize=normalize, sign=sign, content_types=(FORM, JSON))
