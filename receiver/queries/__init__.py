"""Read-side operations and the redrive action, shared by the operator commands and the console.

Each function takes a Redis client and key names (or the pipeline) and returns plain data; printing a
table or rendering a page is left to the caller.
"""

from __future__ import annotations

import re

from receiver.errors import RedisUnavailable
from statemachine.errors import StoreUnavailable
from statemachine.store import UNAVAILABLE_ERRORS

#: Errors meaning Redis could not be reached or answered too late (the commands and the console say so).
REDIS_DOWN: tuple[type[Exception], ...] = (StoreUnavailable, RedisUnavailable, *UNAVAILABLE_ERRORS)
_ENTRY_ID = re.compile(r"[0-9]{1,20}(-[0-9]{1,20})?")


def is_entry_id(text: str) -> bool:
    """Whether ``text`` is a stream entry id (``<ms>-<seq>`` or ``<ms>``), as Redis would accept it."""
    return _ENTRY_ID.fullmatch(text) is not None


def entry_order(entry_id: str) -> tuple[int, int]:
    """A stream entry id as (ms, seq), which sorts as Redis orders entries (``<ms>`` alone is ``<ms>-0``)."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)
