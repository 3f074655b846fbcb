"""The call lifecycle: canonical states, the rules between them, and the Redis store that applies them."""

from statemachine.events import CallEvent
from statemachine.machine import Decision, Outcome, decide
from statemachine.states import TERMINAL_STATES, UNSEEN, CallState, Trigger, rank

__all__ = [
    "TERMINAL_STATES",
    "UNSEEN",
    "CallEvent",
    "CallState",
    "Decision",
    "Outcome",
    "Trigger",
    "decide",
    "rank",
]
