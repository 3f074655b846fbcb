"""The lifecycle diagram as inline SVG, with one call's path drawn on it.

States and moves come from `statemachine.diagram` (the same machine-generated edges as docs/lifecycle.md).
Layout: the non-terminal states in rank order on one row, the terminal states in a column at the right.
Moves between row states arc above the row, moves to a terminal state fan out below it, re-dials (back to
``created``) are dashed and pass over the top. The call's moves are drawn thick and numbered in order.
Pure: states and path in, SVG text out; every text is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from statemachine.diagram import edges, states
from statemachine.states import UNSEEN, is_terminal

BOX_W, BOX_H = 96, 30
COLUMN = 118
ROW_Y = 150
LEFT = 34
TERMINAL_GAP = 46
#: SVG coordinates of a point.
Point = tuple[float, float]


@dataclass(frozen=True, slots=True)
class Layout:
    """Where each state's box sits (its top-left corner), and the drawing's size."""

    boxes: dict[str, Point]
    width: float
    height: float


def layout() -> Layout:
    row = [state for state in states() if not is_terminal(state)]
    terminals = [state for state in states() if is_terminal(state)]
    boxes: dict[str, Point] = {state: (LEFT + index * COLUMN, ROW_Y) for index, state in enumerate(row)}
    column_x = LEFT + len(row) * COLUMN + 60
    top = ROW_Y + BOX_H / 2 - (len(terminals) - 1) * TERMINAL_GAP / 2 - BOX_H / 2
    boxes.update({state: (column_x, top + index * TERMINAL_GAP) for index, state in enumerate(terminals)})
    height = max(y for _x, y in boxes.values()) + BOX_H + 20
    return Layout(boxes=boxes, width=column_x + BOX_W + 14, height=height)


def _route(source: str, dest: str, boxes: dict[str, Point]) -> tuple[str, Point]:
    """The SVG path of one move and the point where its step number goes."""
    (sx, sy), (dx, dy) = boxes[source], boxes[dest]
    if is_terminal(source):  # a re-dial: from the terminal's top, over the row, down into `created`
        start, end = (sx + BOX_W / 2, sy), (dx + BOX_W / 2, dy)
        lift = 10.0  # just inside the top edge, above every arc of the row
        return (
            f"M{start[0]:.0f},{start[1]:.0f} C{start[0]:.0f},{lift:.0f} {end[0]:.0f},{lift:.0f} "
            f"{end[0]:.0f},{end[1]:.0f}",
            ((start[0] + end[0]) / 2, lift + 18),
        )
    if is_terminal(dest):  # fan out from the bottom of the row state to the terminal's left side
        start, end = (sx + BOX_W / 2, sy + BOX_H), (dx, dy + BOX_H / 2)
        return (
            f"M{start[0]:.0f},{start[1]:.0f} C{start[0]:.0f},{end[1] + 40:.0f} {end[0] - 80:.0f},{end[1]:.0f} "
            f"{end[0]:.0f},{end[1]:.0f}",
            (start[0] + (end[0] - start[0]) * 0.35, start[1] + (end[1] - start[1]) * 0.7 + 12),
        )
    span = round((dx - sx) / COLUMN)
    if span == 1:  # neighbours: a straight line between facing sides
        start, end = (sx + BOX_W, sy + BOX_H / 2), (dx, dy + BOX_H / 2)
        return f"M{start[0]:.0f},{start[1]:.0f} L{end[0]:.0f},{end[1]:.0f}", ((start[0] + end[0]) / 2, start[1] - 9)
    start, end = (sx + BOX_W / 2 + 10, sy), (dx + BOX_W / 2 - 10, dy)
    peak = sy - 22 * span
    return (
        f"M{start[0]:.0f},{start[1]:.0f} Q{(start[0] + end[0]) / 2:.0f},{peak:.0f} {end[0]:.0f},{end[1]:.0f}",
        ((start[0] + end[0]) / 2, (start[1] + peak) / 2),
    )


def path_of(history: Sequence[dict[str, object]]) -> list[tuple[str, str]]:
    """The (from, to) moves of a call's history, in order (annotations and trimmed entries left out)."""
    moves = []
    for entry in history:
        if entry.get("kind") == "transition":
            moves.append((str(entry.get("from_state", "")), str(entry.get("to_state", ""))))
    return moves


def svg(moves: Sequence[tuple[str, str]], current: str | None = None) -> Markup:
    """The diagram with ``moves`` drawn and numbered; ``current`` (the call's state) outlined."""
    shape = layout()
    known = edges()
    taken = [(source, dest) for source, dest in moves if source in shape.boxes and dest in shape.boxes]
    visited = {state for move in taken for state in move}
    described = " → ".join([taken[0][0], *(dest for _source, dest in taken)]) if taken else "no transitions"
    parts = [
        f'<svg class="lifecycle" viewBox="0 0 {shape.width:.0f} {shape.height:.0f}" role="img" '
        'aria-labelledby="lifecycle-title lifecycle-desc" xmlns="http://www.w3.org/2000/svg">',
        '<title id="lifecycle-title">Call lifecycle with this call\'s path</title>',
        f'<desc id="lifecycle-desc">Path: {escape(described)}</desc>',
        "<defs>"
        '<marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" orient="auto">'
        '<path d="M0,0 L10,5 L0,10 z" fill="#9aa3ad"/></marker>'
        '<marker id="arrow-taken" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="5" markerHeight="5" '
        'orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#0b62c4"/></marker>'
        "</defs>",
    ]
    for source, dest in known:
        if (source, dest) in taken:
            continue
        d, _label = _route(source, dest, shape.boxes)
        dash = ' stroke-dasharray="4 3"' if is_terminal(source) else ""
        parts.append(
            f'<path class="move" d="{d}" fill="none" stroke="#c5ccd3" stroke-width="1"{dash} marker-end="url(#arrow)">'
            f"<title>{escape(source)} → {escape(dest)}: {escape(', '.join(known[(source, dest)]))}</title></path>"
        )
    start_x, start_y = shape.boxes[UNSEEN]
    parts.append(f'<circle cx="{start_x - 18:.0f}" cy="{start_y + BOX_H / 2:.0f}" r="6" fill="#3b4652"/>')
    for state, (x, y) in shape.boxes.items():
        classes = ["state", "terminal" if is_terminal(state) else "open"]
        if state in visited:
            classes.append("visited")
        if state == current:
            classes.append("current")
        fill = "#dbeafe" if state in visited else "#ffffff"
        stroke, width = ("#0b62c4", 3) if state == current else ("#3b4652", 2 if is_terminal(state) else 1)
        parts.append(
            f'<g class="{" ".join(classes)}" data-state="{escape(state)}">'
            f'<rect x="{x:.0f}" y="{y:.0f}" width="{BOX_W}" height="{BOX_H}" rx="6" fill="{fill}" '
            f'stroke="{stroke}" stroke-width="{width}"/>'
            f'<text x="{x + BOX_W / 2:.0f}" y="{y + BOX_H / 2 + 4:.0f}" text-anchor="middle" font-size="12" '
            f'fill="#1b232c">{escape(state)}</text></g>'
        )
    for step, (source, dest) in enumerate(taken, start=1):
        d, (lx, ly) = _route(source, dest, shape.boxes)
        parts.append(
            f'<g class="taken" data-step="{step}"><path d="{d}" fill="none" stroke="#0b62c4" stroke-width="3" '
            f'marker-end="url(#arrow-taken)"><title>step {step}: {escape(source)} → {escape(dest)}</title></path>'
            f'<circle cx="{lx:.0f}" cy="{ly:.0f}" r="9" fill="#0b62c4"/>'
            f'<text x="{lx:.0f}" y="{ly + 4:.0f}" text-anchor="middle" font-size="11" fill="#ffffff">{step}</text></g>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated text above is escaped
