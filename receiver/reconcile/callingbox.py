"""CallingBox ``GET /v1/calls/{id}`` (Bearer API key): the same call object its webhooks carry.

Statuses map through the adapter's event table (``call.<status>``); the two statuses that have no event
of their own are aliased: ``initiated`` (dialing started) and ``in_progress`` (answered).
Sources: ../shared/seeds/callingbox-get-call.txt, ../shared/providers.md §4.
"""

from __future__ import annotations

from typing import Any

from receiver.providers import callingbox
from receiver.providers.base import iso_utc, text_or_none
from receiver.reconcile.base import (
    ApiConfig,
    ApiRequest,
    Finding,
    GetCallClient,
    document_of,
    finding,
    mapped_status,
    segment,
)
from statemachine.states import Trigger

#: Statuses of the call object that are not also event names.
STATUS_ALIASES: dict[str, Trigger] = {
    "initiated": Trigger.DIALING,
    "in_progress": callingbox.EVENTS["call.answered"],
}

#: Call status → trigger: each event's status (``call.<status>``), then the aliases.
STATUSES: dict[str, Trigger] = {
    **{event.removeprefix("call."): trigger for event, trigger in callingbox.EVENTS.items()},
    **STATUS_ALIASES,
}


def build(config: ApiConfig, call_id: str) -> ApiRequest:
    return ApiRequest(
        url=f"{config.base_url}/v1/calls/{segment(call_id)}",
        headers={"Authorization": f"Bearer {config.secret('api_key')}"},
    )


def interpret(answer: Any) -> Finding:
    call = document_of(answer)
    status, trigger = mapped_status("CallingBox", call.get("status"), STATUSES)
    extras = {
        "answered_at": iso_utc(call.get("answered_at")),
        "ended_at": iso_utc(call.get("ended_at")),
        "duration_s": call.get("duration_seconds"),
        "billed_duration_s": call.get("billed_duration_seconds"),
        "billing_amount_milli_cents": call.get("billing_amount_milli_cents"),
        "hangup_cause": text_or_none(call.get("hangup_cause")),
        "error_code": text_or_none(call.get("error_code")),
    }
    return finding(trigger, status, call, extras)


CLIENT = GetCallClient(
    provider=callingbox.NAME,
    credentials=("api_key",),
    build=build,
    interpret=interpret,
    default_base_url="https://api.callingbox.io",
)
