"""docs/lifecycle.md: the state diagram generated from the machine, kept in sync with it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from statemachine import diagram
from statemachine.machine import Outcome, decide, decision_table

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "lifecycle.md"
EDGE = re.compile(r"^    (\w+) --> (\w+) : (.+)$")


def edges(text: str) -> dict[tuple[str, str], list[str]]:
    found = {}
    for line in text.splitlines():
        match = EDGE.match(line)
        if match:
            found[(match[1], match[2])] = match[3].split(", ")
    return found


def test_doc_is_in_sync_with_the_machine() -> None:
    """The committed page is exactly what the generator prints for the current machine."""
    assert DOC.read_text(encoding="utf-8") == diagram.document(), (
        f"docs/lifecycle.md is out of date: regenerate it with `{diagram.COMMAND}`"
    )


def test_generator_command_prints_the_page() -> None:
    """The documented command writes the page to stdout."""
    result = subprocess.run(
        [sys.executable, "-m", "statemachine.diagram"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout == DOC.read_text(encoding="utf-8")


def test_diagram_shows_the_documented_lifecycle() -> None:
    """Moves from the README's rules are drawn; backward moves and moves out of a terminal state are not,
    except a re-dial; terminal states are marked; annotations change no state."""
    page = DOC.read_text(encoding="utf-8")
    drawn = edges(page)
    assert drawn[("new", "ringing")] == ["ringing"]
    assert drawn[("ringing", "answered")] == ["answered"]
    assert drawn[("created", "completed")] == ["completed"]  # forward jumps are allowed
    assert drawn[("completed", "created")] == ["redial"]
    assert drawn[("failed", "created")] == ["redial"]
    assert ("answered", "ringing") not in drawn
    assert ("completed", "answered") not in drawn
    assert ("busy", "completed") not in drawn
    assert "    [*] --> new" in page
    assert "    class completed,busy,no_answer,canceled,rejected,failed terminal" in page
    assert "| `annotation` | every state | (no change) |" in page
    assert "```mermaid\nstateDiagram-v2\n" in page


def test_every_drawn_move_is_one_the_machine_applies() -> None:
    """Each arrow, for each trigger on it, is a move the machine makes; no applied move is missing."""
    drawn = edges(DOC.read_text(encoding="utf-8"))
    for (source, dest), triggers in drawn.items():
        for trigger in triggers:
            decision = decide(source, trigger)
            assert (decision.outcome, decision.to_state) == (Outcome.APPLIED, dest), (source, trigger)
    applied = {
        (state, decision.to_state)
        for (state, _trigger), decision in decision_table().items()
        if decision.outcome is Outcome.APPLIED
    }
    assert applied == set(drawn)
