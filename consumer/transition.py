"""The typed view of one transitions-stream entry, as consumers' handlers receive it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from statemachine.events import CallEvent
from statemachine.store import entry_fields


class UndecodableEntry(ValueError):
    """A stream entry lacks a field a transition needs, or holds a value of the wrong shape."""


@dataclass(frozen=True, slots=True)
class Transition:
    """One published transition (``kind == "transition"``) or annotation (``kind == "annotation"``).

    ``version`` counts the changes of this call (1, 2, ...): a handler that must not go backwards
    remembers the highest version it handled per call and ignores lower ones. ``deliveries`` is how
    many times the consumer group has handed this entry out, this time included (1 on the first try).
    """

    stream: str
    entry_id: str
    kind: str
    source: str
    provider: str
    call_id: str
    from_state: str
    to_state: str
    name: str
    version: int
    attempt: int
    replay: bool
    event: CallEvent
    deliveries: int = 1

    @classmethod
    def from_entry(cls, stream: str, entry_id: str, fields: dict[Any, Any], deliveries: int = 1) -> Transition:
        """Decode an entry as read from Redis (bytes or str keys and values).

        Raises `UndecodableEntry` naming what is wrong.
        """
        try:
            entry = entry_fields(fields)
            event = CallEvent.from_dict(entry["event"])
            return cls(
                stream=stream,
                entry_id=entry_id,
                kind=entry["kind"],
                source=entry["source"],
                provider=entry["provider"],
                call_id=entry["call_id"],
                from_state=entry["from_state"],
                to_state=entry["to_state"],
                name=entry["name"],
                version=entry["version"],
                attempt=entry["attempt"],
                replay=entry["replay"],
                event=event,
                deliveries=deliveries,
            )
        except KeyError as err:
            raise UndecodableEntry(f"entry {entry_id} has no {err.args[0]!r} field") from err
        except (ValueError, TypeError, AttributeError) as err:
            raise UndecodableEntry(f"entry {entry_id} cannot be decoded: {err}") from err
