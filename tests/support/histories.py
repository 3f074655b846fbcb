"""Recorded call histories from ``fixtures/*/*.json`` and an independent model of the delivery contract.

Every scenario file of every provider is picked up, so property tests cover a provider's scenarios as soon
as they land. The model below is written from the documented rules (docs/reliability.md, providers.md
§10.1), not from the state machine's code: ranks only go up within an attempt, terminal states absorb
everything except a re-dial (which opens a new attempt), annotations always publish, and a provider
event seen before (same dedupe key) changes nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import redis

from receiver.delivery import Delivery
from receiver.errors import ReceiverError
from receiver.providers import PROVIDERS
from receiver.scenario import Scenario, ScenarioRequest
from receiver.settings import Source

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
SCENARIO_PATHS = sorted(FIXTURES.glob("*/*.json"))
SCENARIOS: tuple[Scenario, ...] = tuple(Scenario.load(path) for path in SCENARIO_PATHS)

#: Ranks of the canonical states, as documented (providers.md §10.1); "new" is a call never seen.
RANK: dict[str, int] = {
    "new": -1,
    "created": 0,
    "queued": 1,
    "dialing": 2,
    "ringing": 3,
    "answered": 4,
    **{state: 5 for state in ("completed", "busy", "no_answer", "canceled", "rejected", "failed")},
}
TERMINAL = frozenset(state for state, rank in RANK.items() if rank == 5)


@dataclass(frozen=True, slots=True)
class Step:
    """What one request means, per its adapter: (call id, trigger, dedupe key, provider's time) per event."""

    request: ScenarioRequest
    provider: str
    events: tuple[tuple[str, str, str, str | None], ...]
    error: str | None = None  # the adapter's refusal (e.g. an unknown event), when it has one


def steps_of(scenario: Scenario) -> list[Step]:
    """Each request of ``scenario`` with the canonical events its adapter reads from it."""
    adapter = PROVIDERS[scenario.provider]
    source = Source(name=scenario.provider, provider=scenario.provider, verify=False)
    steps = []
    for request in scenario.requests:
        headers = {"content-type": request.content_type, **{k.lower(): v for k, v in request.headers.items()}}
        delivery = Delivery(source, request.body, headers, "http://testserver" + request.path, time.time())
        try:
            events = tuple(
                (event.call_id, event.event.value, event.dedupe_key, event.occurred_at)
                for event in adapter.normalize(delivery)
            )
        except ReceiverError as err:
            steps.append(Step(request, scenario.provider, (), type(err).__name__))
            continue
        steps.append(Step(request, scenario.provider, events))
    return steps


@dataclass
class CallModel:
    """The documented contract for one call, fed events in delivery order."""

    state: str = "new"
    attempt: int = 1
    version: int = 0
    seen: set[str] = field(default_factory=set)
    ended_at: str | None = None  # the provider's time of the event that ended the current attempt
    entries: list[tuple[str, str, str, int, int]] = field(default_factory=list)

    def feed(self, trigger: str, dedupe_key: str, occurred_at: str | None = None) -> str:
        """Apply one delivery; returns the outcome the receiver must report."""
        if dedupe_key in self.seen:
            return "duplicate"
        self.seen.add(dedupe_key)
        if trigger == "annotation":
            self._publish("annotation", self.state, self.state)
            return "annotation"
        target = "created" if trigger == "redial" else trigger
        if trigger == "redial" and self.state in TERMINAL and not _not_after(occurred_at, self.ended_at):
            self.attempt += 1
            self._publish("transition", self.state, target)
            return "applied"
        if self.state not in TERMINAL and RANK[target] > RANK[self.state]:
            self._publish("transition", self.state, target)
            if target in TERMINAL:
                self.ended_at = occurred_at
            return "applied"
        return "duplicate" if target == self.state else "late"

    def _publish(self, kind: str, from_state: str, to_state: str) -> None:
        self.version += 1
        self.state = to_state
        self.entries.append((kind, from_state, to_state, self.version, self.attempt))


def _not_after(moment: str | None, end: str | None) -> bool:
    """Whether a re-dial dated ``moment`` is the original creation: dated no later than the attempt's end.
    Either date unknown: it counts as a re-dial."""
    if moment is None or end is None:
        return False
    return datetime.fromisoformat(moment) <= datetime.fromisoformat(end)


def stream_entries(client: redis.Redis, stream: str, start: str = "-") -> list[dict[str, Any]]:
    """Stream entries after ``start`` as dicts of text, with the event's JSON left as text."""
    rows = client.xrange(stream, min=start, max="+")
    return [
        {"id": entry_id.decode(), **{key.decode(): value.decode() for key, value in fields.items()}}
        for entry_id, fields in rows
    ]


def last_entry_id(client: redis.Redis, stream: str) -> str:
    """An exclusive lower bound for entries added from now on."""
    rows = client.xrevrange(stream, count=1)
    return "(" + rows[0][0].decode() if rows else "-"
