"""The call lifecycle as data: which trigger may move a call from which state to which.

This table is the single source of truth for the rules. The Python machine is built from it
(`statemachine.machine`) and the Redis script's decision table is derived from that machine
(`statemachine.script`), so the two can never disagree.
"""

from __future__ import annotations

from typing import Any

from statemachine.states import UNSEEN, CallState, Trigger, is_terminal, rank, target_state

ALL_STATES: tuple[str, ...] = (UNSEEN, *(state.value for state in CallState))


def _forward_sources(destination: CallState) -> list[str]:
    """States from which a call may jump forward to ``destination``: any lower rank, never a terminal."""
    return [state for state in ALL_STATES if not is_terminal(state) and rank(state) < rank(destination)]


def build_transitions() -> list[dict[str, Any]]:
    """The `transitions` library's transition list for the call lifecycle."""
    table: list[dict[str, Any]] = []
    for trigger in Trigger:
        destination = target_state(trigger)
        if destination is None:
            # Annotations never change state: an internal transition valid from anywhere.
            table.append({"trigger": trigger.value, "source": "*", "dest": None})
            continue
        table.append({"trigger": trigger.value, "source": _forward_sources(destination), "dest": destination.value})
    table.append(
        {
            "trigger": Trigger.REDIAL.value,
            "source": [state.value for state in CallState if is_terminal(state)],
            "dest": CallState.CREATED.value,
            # A provider's original creation delivered late must not pass for a re-dial: only one dated
            # after the event that ended the attempt opens the next (unknown dates give the benefit of the doubt).
            "conditions": "dated_after_end",
            "after": "open_attempt",
        }
    )
    return table


TRANSITIONS: list[dict[str, Any]] = build_transitions()
