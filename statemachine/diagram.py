"""The call lifecycle as a Markdown page with a Mermaid state diagram, generated from the machine itself.

    python -m statemachine.diagram > docs/lifecycle.md

Everything is read from `statemachine.machine.MACHINE` (its states, events and their transitions), so the
page shows exactly what the service decides; a test fails when ``docs/lifecycle.md`` is out of date.
The `transitions` diagrams extension is not used: it needs graphviz, and Mermaid renders where the docs are read.
The console draws the same states and edges as SVG (`receiver.console.lifecycle`).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

from statemachine.machine import MACHINE
from statemachine.states import UNSEEN, is_terminal, rank

COMMAND = "python -m statemachine.diagram > docs/lifecycle.md"


def states() -> list[str]:
    """Every state of the machine, in its order (`new` first)."""
    return list(MACHINE.states)


def edges() -> dict[tuple[str, str], list[str]]:
    """(from, to) → the triggers that make that move, in the machine's order."""
    found: dict[tuple[str, str], list[str]] = {}
    for name, event in MACHINE.events.items():
        for transitions in event.transitions.values():
            for transition in transitions:
                if transition.dest is not None:
                    found.setdefault((transition.source, transition.dest), []).append(name)
    order = {state: index for index, state in enumerate(states())}
    return dict(sorted(found.items(), key=lambda item: (order[item[0][0]], order[item[0][1]])))


def _trigger_rows() -> Iterator[tuple[str, str, str]]:
    """(trigger, sources, destination) for the table, one row per transition definition."""
    every = states()
    for name, event in MACHINE.events.items():
        by_dest: dict[str | None, list[str]] = {}
        for transitions in event.transitions.values():
            for transition in transitions:
                by_dest.setdefault(transition.dest, []).append(transition.source)
        for dest, sources in by_dest.items():
            ordered = [state for state in every if state in sources]
            listed = "every state" if ordered == every else ", ".join(f"`{state}`" for state in ordered)
            yield name, listed, "(no change)" if dest is None else f"`{dest}`"


def mermaid() -> str:
    """The Mermaid ``stateDiagram-v2`` text: every allowed move, labelled with its triggers."""
    lines = ["stateDiagram-v2", "    direction LR", f"    [*] --> {UNSEEN}"]
    lines += [f"    {source} --> {dest} : {', '.join(triggers)}" for (source, dest), triggers in edges().items()]
    terminal = [state for state in states() if is_terminal(state)]
    lines += [
        "    classDef terminal fill:#eee,stroke:#333,stroke-width:2px",
        f"    class {','.join(terminal)} terminal",
    ]
    return "\n".join(lines)


def document() -> str:
    """The whole ``docs/lifecycle.md`` page."""
    states_table = ["| state | rank | terminal |", "|---|---|---|"]
    states_table += [f"| `{state}` | {rank(state)} | {'yes' if is_terminal(state) else ''} |" for state in states()]
    triggers_table = ["| trigger | from | to |", "|---|---|---|"]
    triggers_table += [f"| `{name}` | {sources} | {dest} |" for name, sources, dest in _trigger_rows()]
    return "\n".join(
        [
            "# The call lifecycle",
            "",
            f"<!-- Generated from statemachine.machine.MACHINE by `{COMMAND}`. Do not edit by hand:",
            "     tests/test_state_diagram.py fails when this page and the machine disagree. -->",
            "",
            "Every canonical event is a trigger of one `transitions` machine. A call no event has been seen for",
            f"is in `{UNSEEN}`. Terminal states are drawn with a heavy border. A trigger that is not allowed",
            "from the call's current state changes nothing: it is a **duplicate** when the call is already in",
            "the trigger's state, and **late** otherwise.",
            "",
            "```mermaid",
            mermaid(),
            "```",
            "",
            "## States",
            "",
            *states_table,
            "",
            "## Triggers",
            "",
            *triggers_table,
            "",
        ]
    )


if __name__ == "__main__":
    sys.stdout.write(document())
