"""The Redis script that applies one event atomically, with its decision table generated from the machine."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from statemachine.machine import decision_table
from statemachine.states import TERMINAL_STATES


def _lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def rules_as_lua() -> str:
    """The machine's full decision table as a Lua table literal: RULES[trigger][state] = {outcome, dest, new}."""
    by_trigger: dict[str, list[str]] = {}
    for (state, trigger), decision in sorted(decision_table().items()):
        row = (
            f"[{_lua_string(state)}]={{{_lua_string(decision.outcome.value)},"
            f"{_lua_string(decision.to_state)},{1 if decision.new_attempt else 0}}}"
        )
        by_trigger.setdefault(trigger.value, []).append(row)
    rules = ",\n".join(
        f"  [{_lua_string(trigger)}]={{{','.join(rows)}}}" for trigger, rows in sorted(by_trigger.items())
    )
    terminal = ",".join(f"[{_lua_string(state.value)}]=true" for state in sorted(TERMINAL_STATES))
    return f"local RULES = {{\n{rules}\n}}\nlocal TERMINAL = {{{terminal}}}\n"


@cache
def apply_step_source() -> str:
    """Full text of the apply-step script: generated rules followed by the step itself."""
    body = files("statemachine").joinpath("apply_step.lua").read_text(encoding="utf-8")
    return rules_as_lua() + body
