"""Twilio ``GET /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json`` (HTTP basic auth).

The Call resource's ``status`` uses the same names as a status callback's ``CallStatus``, so it maps
through the adapter's table; ``answered_by`` through the adapter's too.
Sources: twilio.com/docs/voice/api/call-resource, ../shared/providers.md §8.
"""

from __future__ import annotations

import base64
from typing import Any

from receiver.providers import twilio, twilio_family
from receiver.providers.base import normalized_name, number_or_none, text_or_none
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


def build(config: ApiConfig, call_id: str) -> ApiRequest:
    account = config.secret("account_sid")
    basic = base64.b64encode(f"{account}:{config.secret('auth_token')}".encode()).decode()
    return ApiRequest(
        url=f"{config.base_url}/2010-04-01/Accounts/{segment(account)}/Calls/{segment(call_id)}.json",
        headers={"Authorization": f"Basic {basic}"},
    )


def interpret(answer: Any) -> Finding:
    call = document_of(answer)
    status, trigger = mapped_status("Twilio", call.get("status"), twilio_family.CALL_STATUSES)
    answered_by = text_or_none(call.get("answered_by"))
    extras = {
        "duration_s": number_or_none(call.get("duration")),
        "price": text_or_none(call.get("price")),
        "price_unit": text_or_none(call.get("price_unit")),
        "start_time": twilio_family.timestamp_utc(call.get("start_time")),
        "end_time": twilio_family.timestamp_utc(call.get("end_time")),
        "answered_by": twilio_family.ANSWERED_BY.get(normalized_name(answered_by), "unknown") if answered_by else None,
    }
    return finding(trigger, status, call, extras)


CLIENT = GetCallClient(
    provider=twilio.NAME,
    credentials=("account_sid", "auth_token"),
    build=build,
    interpret=interpret,
    default_base_url="https://api.twilio.com",
)
