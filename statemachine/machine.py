"""The call lifecycle machine and the decision it makes for one event.

One module-level `transitions.Machine` serves every call: models are never registered with it. For
each event a small `_CallModel` is hydrated with the call's current state and the trigger is fired
with ``MACHINE.events[name].trigger(model)``. Callbacks are synchronous and pure; all I/O happens
after the decision is made (see `statemachine.store`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from transitions import Machine, MachineError

from statemachine.definition import ALL_STATES, TRANSITIONS
from statemachine.states import UNSEEN, Trigger, target_state


class Outcome(StrEnum):
    """What an event did to its call."""

    APPLIED = "applied"  # the call moved to a new state; one transition entry is published
    ANNOTATION = "annotation"  # a fact about the call; one annotation entry is published
    DUPLICATE = "duplicate"  # the same provider event again, or the state the call is already in
    LATE = "late"  # an event whose rank is not above the call's current one; nothing changes


class _CallModel:
    """The per-event model the machine acts on. Deliberately not a dataclass (see the style notes)."""

    __slots__ = ("attempt_opened", "dated_after_end", "state")

    def __init__(self, state: str, dated_after_end: bool = True) -> None:
        self.state = state
        self.attempt_opened = False
        self.dated_after_end = dated_after_end

    def open_attempt(self, _event: Any) -> None:
        self.attempt_opened = True


MACHINE = Machine(
    model=None,
    states=list(ALL_STATES),
    transitions=TRANSITIONS,
    initial=None,
    auto_transitions=False,
    send_event=True,
)


@dataclass(frozen=True, slots=True)
class Decision:
    """The machine's verdict for one trigger from one state."""

    outcome: Outcome
    to_state: str
    new_attempt: bool = False


def decide(state: str, trigger: Trigger | str, *, dated_after_end: bool = True) -> Decision:
    """Decide what ``trigger`` does to a call currently in ``state`` (``UNSEEN`` for an unknown call).

    ``dated_after_end`` says whether the provider dated the event after the event that ended the call's
    current attempt (True when either date is unknown); only such a re-dial opens a new attempt.
    """
    trigger = Trigger(trigger)
    model = _CallModel(state, dated_after_end)
    try:
        moved = MACHINE.events[trigger.value].trigger(model)
    except MachineError:
        moved = False
    if not moved:
        destination = target_state(trigger)
        outcome = Outcome.DUPLICATE if destination is not None and destination == state else Outcome.LATE
        return Decision(outcome, state)
    if trigger is Trigger.ANNOTATION:
        return Decision(Outcome.ANNOTATION, state)
    return Decision(Outcome.APPLIED, model.state, new_attempt=model.attempt_opened)


def decision_table(*, dated_after_end: bool = True) -> dict[tuple[str, Trigger], Decision]:
    """Every (state, trigger) pair and the machine's decision for it; the Redis script is built from this."""
    return {
        (state, trigger): decide(state, trigger, dated_after_end=dated_after_end)
        for state in ALL_STATES
        for trigger in Trigger
    }


__all__ = ["MACHINE", "UNSEEN", "Decision", "Outcome", "decide", "decision_table"]
