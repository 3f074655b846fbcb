"""Canonical events built by hand for store-level tests."""

from __future__ import annotations

from statemachine.events import CallEvent
from statemachine.states import Trigger


def call_event(
    call_id: str,
    trigger: Trigger,
    dedupe: str,
    *,
    provider: str = "vobiz",
    occurred_at: str | None = None,
    **extras: object,
) -> CallEvent:
    """An event of source ``src`` for ``call_id``, as an adapter would hand it to the store."""
    return CallEvent(
        source="src",
        provider=provider,
        call_id=call_id,
        event=trigger,
        provider_event=trigger.value,
        provider_status=None,
        dedupe_key=dedupe,
        received_at="2026-05-29T12:00:00.000Z",
        occurred_at=occurred_at,
        extras=dict(extras),
    )
