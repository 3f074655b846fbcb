"""Canonical call states, their ranks, and the canonical events (triggers) that move a call between them."""

from __future__ import annotations

from enum import StrEnum


class CallState(StrEnum):
    """Where a call is in its lifecycle, whatever provider carried it."""

    CREATED = "created"
    QUEUED = "queued"
    DIALING = "dialing"
    RINGING = "ringing"
    ANSWERED = "answered"
    COMPLETED = "completed"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    CANCELED = "canceled"
    REJECTED = "rejected"
    FAILED = "failed"


#: The state of a call no event has been seen for. Never stored; the machine's starting point.
UNSEEN = "new"

TERMINAL_STATES: frozenset[CallState] = frozenset(
    {
        CallState.COMPLETED,
        CallState.BUSY,
        CallState.NO_ANSWER,
        CallState.CANCELED,
        CallState.REJECTED,
        CallState.FAILED,
    }
)

_RANKS: dict[str, int] = {
    UNSEEN: -1,
    CallState.CREATED: 0,
    CallState.QUEUED: 1,
    CallState.DIALING: 2,
    CallState.RINGING: 3,
    CallState.ANSWERED: 4,
    **{state: 5 for state in TERMINAL_STATES},
}


def rank(state: str) -> int:
    """Order of a state in the lifecycle: a call only ever moves to a higher rank within one attempt."""
    return _RANKS[state]


def is_terminal(state: str) -> bool:
    """Whether a state ends the current attempt."""
    return state in TERMINAL_STATES


class Trigger(StrEnum):
    """Canonical events. Each state-reaching event is named after the state it reaches.

    ``redial`` is a creation that a provider repeats when it dials the same call again (MiniVoice sends
    ``call.created`` again after a failed attempt): after a terminal state it opens a new attempt.
    ``annotation`` carries facts about the call (machine detection, final cost, staleness) without
    changing its state.
    """

    CREATED = "created"
    QUEUED = "queued"
    DIALING = "dialing"
    RINGING = "ringing"
    ANSWERED = "answered"
    COMPLETED = "completed"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    CANCELED = "canceled"
    REJECTED = "rejected"
    FAILED = "failed"
    REDIAL = "redial"
    ANNOTATION = "annotation"


def target_state(trigger: Trigger) -> CallState | None:
    """The state a trigger moves a call to; None for annotations."""
    if trigger is Trigger.ANNOTATION:
        return None
    if trigger is Trigger.REDIAL:
        return CallState.CREATED
    return CallState(trigger.value)
