"""The canonical event read back from its JSON: what a consumer decodes from every stream entry."""

from __future__ import annotations

import pytest

from statemachine.events import CallEvent
from statemachine.states import Trigger

#: An event as a newer receiver might publish it: every field this version knows, plus one it does not.
NEWER_DOCUMENT = {
    "source": "acme",
    "provider": "generic",
    "call_id": "call-1",
    "event": "answered",
    "provider_event": "in-progress",
    "provider_status": "in-progress",
    "dedupe_key": "call-1:in_progress",
    "received_at": "2025-03-01T10:00:00.000Z",
    "occurred_at": None,
    "from_number": "+15550001111",
    "to_number": "+15550002222",
    "direction": "outbound",
    "correlation": {},
    "extras": {"duration_s": 3},
    "raw": {"status": "in-progress"},
    "tenant": "t-9",
}


def test_an_event_from_a_newer_receiver_decodes_without_the_keys_it_added() -> None:
    event = CallEvent.from_dict(NEWER_DOCUMENT)
    assert event == CallEvent(
        source="acme",
        provider="generic",
        call_id="call-1",
        event=Trigger.ANSWERED,
        provider_event="in-progress",
        provider_status="in-progress",
        dedupe_key="call-1:in_progress",
        received_at="2025-03-01T10:00:00.000Z",
        from_number="+15550001111",
        to_number="+15550002222",
        direction="outbound",
        extras={"duration_s": 3},
        raw={"status": "in-progress"},
    )
    assert event.event is Trigger.ANSWERED


def test_from_json_reads_what_to_json_wrote_and_tolerates_new_keys() -> None:
    event = CallEvent.from_dict(NEWER_DOCUMENT)
    assert CallEvent.from_json(event.to_json()) == event
    assert CallEvent.from_json(b'{"tenant": "t-9", ' + event.to_json()[1:]) == event


def test_a_document_without_a_required_field_or_with_an_unknown_event_is_refused() -> None:
    with pytest.raises(KeyError):
        CallEvent.from_dict({key: value for key, value in NEWER_DOCUMENT.items() if key != "event"})
    with pytest.raises(TypeError):
        CallEvent.from_dict({key: value for key, value in NEWER_DOCUMENT.items() if key != "dedupe_key"})
    with pytest.raises(ValueError, match="'picked_up'"):
        CallEvent.from_dict({**NEWER_DOCUMENT, "event": "picked_up"})
