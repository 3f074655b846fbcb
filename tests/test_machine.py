"""The lifecycle rules, tested directly on the machine for every (state, event) pair."""

from __future__ import annotations

import pytest

from statemachine.machine import MACHINE, Decision, Outcome, _CallModel, decide
from statemachine.states import Trigger

# The rules as the specification states them, written out independently of the implementation.
RANKS = {
    "new": -1,
    "created": 0,
    "queued": 1,
    "dialing": 2,
    "ringing": 3,
    "answered": 4,
    "completed": 5,
    "busy": 5,
    "no_answer": 5,
    "canceled": 5,
    "rejected": 5,
    "failed": 5,
}
TERMINAL = {"completed", "busy", "no_answer", "canceled", "rejected", "failed"}
DESTINATIONS = {trigger.value: trigger.value for trigger in Trigger} | {"redial": "created", "annotation": None}


def specified(state: str, trigger: str, dated_after_end: bool = True) -> Decision:
    """What the specification says: forward jumps apply, not-above is late, same state is a duplicate,
    terminal states absorb everything but a re-dial dated after the attempt ended, annotations never change
    state."""
    destination = DESTINATIONS[trigger]
    if destination is None:
        return Decision(Outcome.ANNOTATION, state)
    if trigger == "redial" and state in TERMINAL and dated_after_end:
        return Decision(Outcome.APPLIED, "created", new_attempt=True)
    if state not in TERMINAL and RANKS[destination] > RANKS[state]:
        return Decision(Outcome.APPLIED, destination)
    if destination == state:
        return Decision(Outcome.DUPLICATE, state)
    return Decision(Outcome.LATE, state)


PAIRS = [(state, trigger.value) for state in RANKS for trigger in Trigger]


@pytest.mark.parametrize(("state", "trigger"), PAIRS, ids=[f"{s}+{t}" for s, t in PAIRS])
@pytest.mark.parametrize("dated_after_end", [True, False], ids=["dated-after-end", "dated-before-end"])
def test_every_state_and_event(state: str, trigger: str, dated_after_end: bool) -> None:
    """The machine's decision for each pair is the specified one, for events dated after the attempt's
    end (or undated) and for events dated before it."""
    assert decide(state, trigger, dated_after_end=dated_after_end) == specified(state, trigger, dated_after_end)


@pytest.mark.parametrize(
    ("state", "trigger", "expected"),
    [
        ("new", "completed", Decision(Outcome.APPLIED, "completed")),  # the first event may be any state
        ("created", "answered", Decision(Outcome.APPLIED, "answered")),  # ringing may never arrive
        ("answered", "ringing", Decision(Outcome.LATE, "answered")),
        ("ringing", "ringing", Decision(Outcome.DUPLICATE, "ringing")),
        ("completed", "failed", Decision(Outcome.LATE, "completed")),  # one terminal per attempt
        ("busy", "busy", Decision(Outcome.DUPLICATE, "busy")),
        ("failed", "redial", Decision(Outcome.APPLIED, "created", new_attempt=True)),
        ("ringing", "redial", Decision(Outcome.LATE, "ringing")),
        ("failed", "created", Decision(Outcome.LATE, "failed")),
        ("completed", "created", Decision(Outcome.LATE, "completed")),  # only a re-dial reopens a call
        ("completed", "annotation", Decision(Outcome.ANNOTATION, "completed")),
        ("new", "annotation", Decision(Outcome.ANNOTATION, "new")),
    ],
)
def test_rules_named_in_the_specification(state: str, trigger: str, expected: Decision) -> None:
    """Spot checks of the rules as worded: forward jumps, late, duplicate, absorbing terminals, re-dial."""
    assert decide(state, trigger) == expected


def test_machine_keeps_no_reference_to_calls() -> None:
    """One module-level machine serves all calls; deciding never registers (and so never leaks) a model."""
    model = _CallModel("ringing")
    MACHINE.events["answered"].trigger(model)
    for _ in range(1000):
        decide("ringing", "answered")
    assert model.state == "answered"
    assert MACHINE.models == []


def test_creation_dated_before_the_end_does_not_reopen() -> None:
    """The original call.created delivered after the call failed is late, not a new attempt."""
    assert decide("failed", "redial", dated_after_end=False) == Decision(Outcome.LATE, "failed")


def test_unknown_trigger_is_refused() -> None:
    """A trigger that is not a canonical event is a programming error, not a silent no-op."""
    with pytest.raises(ValueError, match="not_an_event"):
        decide("new", "not_an_event")
