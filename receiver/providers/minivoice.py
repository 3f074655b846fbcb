"""MiniVoice: JSON call webhooks (``call.created``, ``call.answered``, ``call.completed``, ``call.failed``).

``call.created`` is sent again when MiniVoice re-dials the same call, so it maps to the ``redial``
trigger: after a terminal state it opens a new attempt. The documented ``data.event_key`` is
``<call id>:<event>``, the same for a re-dial's ``call.created`` as for the first one, so the dedupe key
adds the event's ``created_at``: a retried delivery repeats both, a re-dial does not.
Signature: ``X-MiniVoice-Signature: v1=<hex HMAC-SHA256(timestamp + "." + body)>`` with
``X-MiniVoice-Timestamp`` (unix seconds).
Sources: ../shared/providers.md §3, the MiniVoice outbound-calls page, doc.minivoice.eu/docs/webhooks.
"""

from __future__ import annotations

from receiver.delivery import JSON, Delivery
from receiver.errors import UnknownEvent
from receiver.providers.base import (
    ProviderAdapter,
    dig,
    iso_utc,
    make_event,
    normalized_name,
    text_or_none,
)
from receiver.signatures import timestamped_hmac
from statemachine.events import CallEvent
from statemachine.states import Trigger

NAME = "minivoice"
SIGNATURE_HEADER = "X-MiniVoice-Signature"
TIMESTAMP_HEADER = "X-MiniVoice-Timestamp"

EVENTS: dict[str, Trigger | None] = {
    "call.created": Trigger.REDIAL,
    "call.answered": Trigger.ANSWERED,
    "call.completed": None,  # outcome from call.status, completed unless it says otherwise
    "call.failed": None,
}

#: call.status on a terminal event → outcome. MiniVoice does not publish its status enum, so the
#: spellings its peers use are accepted.
TERMINAL_STATUSES: dict[str, Trigger] = {
    "completed": Trigger.COMPLETED,
    "busy": Trigger.BUSY,
    "no_answer": Trigger.NO_ANSWER,
    "noanswer": Trigger.NO_ANSWER,
    "canceled": Trigger.CANCELED,
    "cancelled": Trigger.CANCELED,
    "rejected": Trigger.REJECTED,
    "failed": Trigger.FAILED,
}


def normalize(delivery: Delivery) -> list[CallEvent]:
    """One MiniVoice webhook → one canonical event."""
    document = delivery.fields((JSON,))
    provider_event = str(document.get("event") or "")
    if provider_event not in EVENTS:
        raise UnknownEvent(f"unknown MiniVoice event {provider_event or '(none)'!r}", event=provider_event)
    status = text_or_none(dig(document, "call.status"))
    trigger = EVENTS[provider_event]
    if trigger is None:
        default = Trigger.COMPLETED if provider_event == "call.completed" else Trigger.FAILED
        trigger = TERMINAL_STATUSES.get(normalized_name(status or ""), default)
    call_id = dig(document, "call.id")
    created_at = document.get("created_at")
    event_key = text_or_none(dig(document, "data.event_key")) or f"{call_id}:{provider_event}"
    return [
        make_event(
            delivery,
            call_id=call_id,
            call_id_field="call.id",
            trigger=trigger,
            provider_event=provider_event,
            provider_status=status,
            dedupe_key=f"{event_key}@{created_at}",
            occurred_at=iso_utc(created_at),
            from_number=dig(document, "call.from"),
            to_number=dig(document, "call.to"),
            direction=text_or_none(dig(document, "call.direction")),
            correlation={
                "provider_call_id": dig(document, "call.provider_call_id"),
                "application_id": dig(document, "call.application_id"),
                "customer_id": dig(document, "call.customer_id"),
            },
            extras={
                "variables": document.get("variables") or None,
                "reason": dig(document, "data.reason") or dig(document, "data.error"),
                "duration_s": dig(document, "data.duration") or dig(document, "call.duration"),
            },
            raw=document,
        )
    ]


#: ``v1=`` HMAC over ``timestamp.body`` with any configured secret, timestamp within tolerance.
SCHEME = timestamped_hmac.Scheme(SIGNATURE_HEADER, TIMESTAMP_HEADER)
verify = SCHEME.verify
sign = SCHEME.sign

ADAPTER = ProviderAdapter(name=NAME, verify=verify, normalize=normalize, sign=sign, content_types=(JSON,))
