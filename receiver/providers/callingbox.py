"""CallingBox: JSON call webhooks in an envelope ``{"id", "type", "created", "api_version", "data": {"call"}}``.

Each of the eight event types names its outcome, and "only one terminal event fires per call", so the
type alone decides the canonical event (the call's ``status`` matches it, except that ``queued`` turns
into ``initiated`` once dialing starts). CallingBox repeats ``CallingBox-Event-Id`` on every retry of an
event, but the same event fanned out to two endpoints gets two ids, so the dedupe key is
``(data.call.id, type)``, which every copy shares; the event id is kept as correlation.
``occurred_at`` is the envelope's ``created`` (unix seconds).
Signature: ``CallingBox-Signature: t=<unix>,v1=<hex>`` (several ``v1`` during rotation), hex
HMAC-SHA256 over ``t + "." + raw body``, ``t`` within the source's tolerance (CallingBox says 300 s).
Sources: ../shared/providers.md §4, docs.callingbox.io/guides/webhook-events, /guides/webhook-security,
/guides/webhook-retries, the CallingBox get-call page.
"""

from __future__ import annotations

from typing import Any

from receiver.delivery import JSON, Delivery
from receiver.errors import UnknownEvent
from receiver.providers.base import (
    ProviderAdapter,
    dig,
    iso_utc,
    make_event,
    text_or_none,
    unix_utc,
)
from receiver.signatures import timestamped_hmac
from statemachine.events import CallEvent
from statemachine.states import Trigger

NAME = "callingbox"
SIGNATURE_HEADER = "CallingBox-Signature"
EVENT_ID_HEADER = "CallingBox-Event-Id"

EVENTS: dict[str, Trigger] = {
    "call.queued": Trigger.QUEUED,
    "call.ringing": Trigger.RINGING,
    "call.answered": Trigger.ANSWERED,
    "call.completed": Trigger.COMPLETED,
    "call.failed": Trigger.FAILED,
    "call.no_answer": Trigger.NO_ANSWER,
    "call.busy": Trigger.BUSY,
    "call.canceled": Trigger.CANCELED,
}


def normalize(delivery: Delivery) -> list[CallEvent]:
    """One CallingBox webhook → one canonical event."""
    document = delivery.fields((JSON,))
    # The type comes from the signed body only: the signature does not cover headers, so a header naming
    # the type would let a replayed request change its event.
    provider_event = str(document.get("type") or "")
    if provider_event not in EVENTS:
        raise UnknownEvent(f"unknown CallingBox event {provider_event or '(none)'!r}", event=provider_event)
    found = dig(document, "data.call")
    call: dict[str, Any] = found if isinstance(found, dict) else {}
    call_id = call.get("id")
    return [
        make_event(
            delivery,
            call_id=call_id,
            call_id_field="data.call.id",
            trigger=EVENTS[provider_event],
            provider_event=provider_event,
            provider_status=text_or_none(call.get("status")),
            dedupe_key=f"{call_id}:{provider_event}",
            occurred_at=unix_utc(document.get("created")),
            from_number=call.get("from_number"),
            to_number=call.get("to_number"),
            direction=text_or_none(call.get("direction")),
            correlation={
                "event_id": document.get("id") or delivery.headers.get(EVENT_ID_HEADER.lower()),
                "api_version": document.get("api_version"),
            },
            extras={
                "started_at": iso_utc(call.get("started_at")),
                "answered_at": iso_utc(call.get("answered_at")),
                "ended_at": iso_utc(call.get("ended_at")),
                "duration_s": call.get("duration_seconds"),
                "billed_duration_s": call.get("billed_duration_seconds"),
                "billing_amount_milli_cents": call.get("billing_amount_milli_cents"),
                "hangup_cause": call.get("hangup_cause"),
                "error_code": call.get("error_code"),
                "error_message": call.get("error_message"),
                "result_status": call.get("result_status"),
            },
            raw=document,
        )
    ]


#: ``t=`` within tolerance and any ``v1=`` matching HMAC(``t.body``) under any configured secret.
SCHEME = timestamped_hmac.Scheme(SIGNATURE_HEADER, value_format="t,v1")
verify = SCHEME.verify
sign = SCHEME.sign

ADAPTER = ProviderAdapter(name=NAME, verify=verify, normalize=normalize, sign=sign, content_types=(JSON,))
