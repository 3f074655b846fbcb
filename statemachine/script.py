"""The Redis script that applies one event atomically, and the rows of the machine's decision table it reads.

The script does not embed the whole decision table: a Lua table literal in the script text is rebuilt on
every call (scripts keep no state between calls), which cost most of the script's time. Instead each call
carries the one row it can need, the decisions of its own trigger from every state (`decision_row`), all
generated from the machine in one pass at start-up, so the machine stays the single source of truth.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from statemachine.machine import decision_table
from statemachine.states import TERMINAL_STATES, Trigger


@cache
def _decision_rows(dated_after_end: bool) -> dict[Trigger, str]:
    """Every trigger's row, from one pass over the machine's table (which runs the machine ~300 times)."""
    terminal = {state.value for state in TERMINAL_STATES}
    rows: dict[Trigger, str] = {}
    for (state, trigger), decision in sorted(decision_table(dated_after_end=dated_after_end).items()):
        rows[trigger] = (
            rows.get(trigger, "")
            + f" {state}={decision.outcome.value}/{decision.to_state}/{int(decision.new_attempt)}/"
            + f"{int(decision.to_state in terminal)}"
        )
    return {trigger: row + " " for trigger, row in rows.items()}


def decision_row(trigger: Trigger, dated_after_end: bool = True) -> str:
    """The machine's decisions for ``trigger`` as the script reads them.

    ``" <state>=<outcome>/<destination>/<opens attempt 0|1>/<destination is terminal 0|1> ..."``, one entry
    per state, each preceded by a space (states and outcomes are ``[a-z_]`` words).
    """
    return _decision_rows(dated_after_end)[trigger]


@cache
def early_row(trigger: Trigger) -> str:
    """The decisions for an event dated no later than the end of the call's current attempt, or "" when
    they are the same as `decision_row` (every trigger but a re-dial)."""
    row = decision_row(trigger, dated_after_end=False)
    return "" if row == decision_row(trigger) else row


def prepare_decision_rows() -> None:
    """Work every row out now, at start-up: otherwise each trigger's first event would wait for the
    machine's whole table to be worked out (several milliseconds each time)."""
    for trigger in Trigger:
        early_row(trigger)


@cache
def apply_step_source() -> str:
    """Full text of the apply-step script."""
    return files("statemachine").joinpath("apply_step.lua").read_text(encoding="utf-8")
