"""Errors raised while applying events to Redis."""

from __future__ import annotations


class StoreError(Exception):
    """Base class for errors of the Redis store."""


class StoreUnavailable(StoreError):
    """Redis could not be reached or did not answer in time: nothing was applied, the sender may retry."""


class ReplayedNonce(StoreError):
    """A signature nonce was seen before on a different event: a captured request replayed with a new body."""
