"""Goodbox: a preset of the generic JSON source.

Goodbox publishes no webhook: its documentation covers creating a call (whose response carries the
call's id as ``data.id``) and fetching it again with ``GET …/call-details?id=<data.id>``, whose
response schema is not published. Whatever relays Goodbox calls to callstream (a poller, or a
Goodbox workflow) posts that call-details document, and this preset reads it:

- call id ``data.id``; status ``data.status``, an **assumed** field, with the lower-case status names
  Goodbox's peers use (``queued``, ``ringing``, ``in_progress``, ``completed``, ``busy``…); time
  ``data.updated_at``; numbers ``data.from_number`` / ``data.mobile_number`` as in the create request;
- dedupe ``<data.id>:<status>``;
- authenticated by a shared secret in ``X-Goodbox-Secret``.

Every key can be overridden in the source's options exactly as for a generic source (``status``,
``signature_header``, ``[sources.<name>.statuses]`` entries, which are added to the preset's…).
Sources: ../shared/providers.md §5; the Goodbox create-call page (goodbox.ai/documentation).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from receiver.providers import generic
from receiver.providers.generic import SHARED_HEADER, adapter_for, load_config

NAME = "goodbox"
#: Every option of a generic source can override the preset.
KNOWN_OPTIONS = generic.KNOWN_OPTIONS

PRESET: dict[str, Any] = {
    "call_id": "data.id",
    "status": "data.status",
    "time": "data.updated_at",
    "from": "data.from_number",
    "to": "data.mobile_number",
    "direction": "data.direction",
    "signature": SHARED_HEADER,
    "signature_header": "X-Goodbox-Secret",
    "statuses": {
        "created": "created",
        "scheduled": "queued",
        "queued": "queued",
        "initiated": "dialing",
        "dialing": "dialing",
        "ringing": "ringing",
        "in_progress": "answered",
        "ongoing": "answered",
        "answered": "answered",
        "completed": "completed",
        "busy": "busy",
        "no_answer": "no_answer",
        "not_answered": "no_answer",
        "canceled": "canceled",
        "cancelled": "canceled",
        "rejected": "rejected",
        "failed": "failed",
    },
    "extras": {
        "duration_s": "data.duration",
        "chatbot_id": "data.chatbot_id",
        "custom_variables": "data.custom_variables",
    },
}


def check_options(options: Mapping[str, Any], where: str) -> None:
    """Refuse a Goodbox source's overrides at load time; the error names the key."""
    load_config(options, where, PRESET)


ADAPTER = adapter_for(NAME, PRESET)
