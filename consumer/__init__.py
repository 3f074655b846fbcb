"""Consume callstream's transitions streams with a Redis consumer group.

    from consumer import Consumer, Transition

    async def handle(transition: Transition) -> None:
        print(transition.call_id, transition.from_state, "->", transition.to_state)

    await Consumer(redis, "billing", handle, keys=Keys("callstream")).run()

See docs/consumers.md for delivery guarantees, ordering and the dead-letter stream.
"""

from __future__ import annotations

from consumer.deadletter import GivenUp
from consumer.group import Consumer, ConsumerOptions, Handler, default_name
from consumer.transition import Transition, UndecodableEntry

__all__ = [
    "Consumer",
    "ConsumerOptions",
    "GivenUp",
    "Handler",
    "Transition",
    "UndecodableEntry",
    "default_name",
]
