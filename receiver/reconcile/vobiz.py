"""Vobiz CDR ``GET /api/v1/Account/{auth_id}/cdr/{uuid}`` (``X-Auth-ID`` / ``X-Auth-Token``).

A CDR exists once the call has ended, so a found CDR always gives a terminal outcome: it is decided by
the Plivo-family hangup rules the webhook adapter uses, fed with the CDR's fields (``answer_time``,
``billsec``, ``hangup_cause``...). A 404 means no CDR yet: the call may still be up, or unknown.
Assumed shape: the fields at the top level or under ``data`` (only ``billsec``, ``duration``,
``total_cost``, ``currency``, ``answer_time``, ``end_time`` are documented, by a third party).
Sources: ../shared/providers.md §2.1, §2.3.
"""

from __future__ import annotations

from typing import Any

from receiver.providers import plivo_family, vobiz
from receiver.providers.base import iso_utc, normalized_name, number_or_none, text_or_none
from receiver.reconcile.base import ApiConfig, ApiRequest, Finding, GetCallClient, document_of, finding, segment


def build(config: ApiConfig, call_id: str) -> ApiRequest:
    auth_id = config.secret("auth_id")
    return ApiRequest(
        url=f"{config.base_url}/api/v1/Account/{segment(auth_id)}/cdr/{segment(call_id)}",
        headers={"X-Auth-ID": auth_id, "X-Auth-Token": config.secret("auth_token")},
    )


def interpret(answer: Any) -> Finding:
    cdr = document_of(answer, "data")
    hangup_fields = {
        "AnswerTime": cdr.get("answer_time"),
        "BillDuration": cdr.get("billsec"),
        "HangupCause": cdr.get("hangup_cause_name") or cdr.get("hangup_cause"),
        "HangupCauseCode": cdr.get("hangup_cause_code"),
        "CallStatus": cdr.get("call_status") or cdr.get("status"),
    }
    trigger = plivo_family.hangup_outcome(hangup_fields)
    status = normalized_name(str(hangup_fields["HangupCause"] or hangup_fields["CallStatus"] or "hangup"))
    extras = {
        "duration_s": number_or_none(cdr.get("duration")),
        "bill_duration_s": number_or_none(cdr.get("billsec")),
        "total_cost": text_or_none(cdr.get("total_cost")),
        "currency": text_or_none(cdr.get("currency")),
        "answered_at": iso_utc(cdr.get("answer_time")),
        "ended_at": iso_utc(cdr.get("end_time")),
        "hangup_cause": text_or_none(hangup_fields["HangupCause"]),
    }
    return finding(trigger, status, cdr, extras)


CLIENT = GetCallClient(
    provider=vobiz.NAME,
    credentials=("auth_id", "auth_token"),
    build=build,
    interpret=interpret,
    default_base_url="https://api.vobiz.ai",
)
