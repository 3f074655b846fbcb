"""Goodbox ``GET …/call-details?id=<id>`` (``x-api-key`` / ``x-api-secret``).

The response schema is not published. Assumed shape, the same the Goodbox preset reads from relayed
call-details documents: ``{"data": {"id": …, "status": "completed", "duration": 42, …}}``. The status
path, status table and extras are the preset's own (read through the generic source's loader), so
what a status means is decided in one place. A source's own ``statuses`` overrides are not applied
here. Default base URL: the documentation's example, ``https://api.goodbox.ai/ca/api/v1``.
Sources: ../shared/providers.md §5, ../shared/seeds/goodbox-create-call.txt.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from receiver.providers import goodbox
from receiver.providers.base import dig, text_or_none
from receiver.providers.generic import load_config
from receiver.reconcile.base import ApiConfig, ApiRequest, Finding, GetCallClient, document_of, finding, mapped_status

PRESET = load_config({}, goodbox.NAME, goodbox.PRESET)


def build(config: ApiConfig, call_id: str) -> ApiRequest:
    return ApiRequest(
        url=f"{config.base_url}/call-details?{urllib.parse.urlencode({'id': call_id})}",
        headers={"x-api-key": config.secret("api_key"), "x-api-secret": config.secret("api_secret")},
    )


def interpret(answer: Any) -> Finding:
    document = document_of(answer)
    status_path = PRESET.paths["status"]
    status, trigger = mapped_status(
        "Goodbox", text_or_none(dig(document, status_path) if status_path else None), PRESET.statuses
    )
    extras = {name: dig(document, path) for name, path in PRESET.extras.items()}
    return finding(trigger, status, document, extras, absent=(None, "", {}))


CLIENT = GetCallClient(
    provider=goodbox.NAME,
    credentials=("api_key", "api_secret"),
    build=build,
    interpret=interpret,
    default_base_url="https://api.goodbox.ai/ca/api/v1",
)
