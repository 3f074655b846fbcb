"""Every Redis key and stream name callstream uses, built in one place.

Everything one call touches (its state hash, its stream, the nonce marks checked in the same step)
carries the same hash tag, written *before* any provider-supplied text: Redis Cluster hashes the first
``{...}`` of a key, so a call id containing braces cannot move a key to another slot.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PREFIX = "callstream"


@dataclass(frozen=True, slots=True)
class Keys:
    """Key names under one prefix. With one partition the hash tag is the constant ``{0}``."""

    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        if not self.prefix or any(ch in self.prefix for ch in "{} \t\r\n"):
            raise ValueError(f"key prefix {self.prefix!r} must be non-empty, without braces or spaces")

    def _tag(self, partition: int) -> str:
        return f"{self.prefix}:{{{partition}}}"

    def call(self, source: str, call_id: str, partition: int = 0) -> str:
        """Hash holding a call's state, attempt, version, history and dedupe marks."""
        return f"{self._tag(partition)}:call:{source}:{call_id}"

    def call_pattern(self, partition: int = 0) -> str:
        """SCAN pattern matching every call hash of a partition."""
        return f"{self._tag(partition)}:call:*"

    def transitions(self, partition: int = 0) -> str:
        """Stream of applied transitions and annotations."""
        return f"{self._tag(partition)}:transitions"

    def nonce(self, source: str, nonce: str, partition: int = 0) -> str:
        """Replay mark for a signature nonce of a provider whose signature does not cover the body."""
        return f"{self._tag(partition)}:nonce:{source}:{nonce}"

    def sweeper_lease(self) -> str:
        """Lease held by the one process running a stuck-call sweep; expires on its own (sweep interval)."""
        return f"{self.prefix}:sweeper:lease"

    def sink_record(self, sink: str, external_id: str) -> str:
        """Hash mapping a call's external id to the record a sink created for it (uid, last version sent).

        Kept as long as the call's own hash at most (the sink sets the expiry); the hash tag comes before
        the provider-supplied external id for the same reason as in `call`.
        """
        return f"{self.prefix}:{{sink}}:{sink}:{external_id}"

    def deadletter(self) -> str:
        """Stream of requests that passed authentication but could not be processed."""
        return f"{self.prefix}:deadletter"

    def consumer_deadletter(self, group: str) -> str:
        """Stream of transitions consumer group ``group`` gave up on, each with the error. Trimmed, no expiry."""
        if not group or any(ch in group for ch in "{} \t\r\n"):
            raise ValueError(f"consumer group {group!r} must be non-empty, without braces or spaces")
        return f"{self.prefix}:consumer-deadletter:{group}"

    def everything(self) -> str:
        """SCAN pattern matching every key under this prefix."""
        return f"{self.prefix}:*"
