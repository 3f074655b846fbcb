"""Every Redis key and stream name callstream uses, built in one place.

Everything one call touches (its state hash, its stream, the nonce marks checked in the same step)
carries the same hash tag, written *before* any provider-supplied text: Redis Cluster hashes the first
``{...}`` of a key, so a call id containing braces cannot move a key to another slot.
"""

from __future__ import annotations

from dataclasses import dataclass

from statemachine.partitions import Partitions, nonce_partition, partition_of

DEFAULT_PREFIX = "callstream"


@dataclass(frozen=True, slots=True)
class Keys:
    """Key names under one prefix. With one partition the hash tag is the constant ``{0}``.

    ``partitions`` is the partition count (``[streams] partitions``): the ``*_of`` methods place a call
    (or a nonce) in its partition, see statemachine/partitions.py.
    """

    prefix: str = DEFAULT_PREFIX
    partitions: int = 1

    def __post_init__(self) -> None:
        if not self.prefix or any(ch in self.prefix for ch in "{} \t\r\n"):
            raise ValueError(f"key prefix {self.prefix!r} must be non-empty, without braces or spaces")
        Partitions(self.partitions)

    def partition_of(self, source: str, call_id: str) -> int:
        """The partition whose hash tag every key of this call carries."""
        return partition_of(source, call_id, self.partitions)

    def call_of(self, source: str, call_id: str) -> str:
        """`call` in the call's own partition."""
        return self.call(source, call_id, self.partition_of(source, call_id))

    def transitions_of(self, source: str, call_id: str) -> str:
        """The transitions stream of the call's partition."""
        return self.transitions(self.partition_of(source, call_id))

    def nonce_of(self, source: str, nonce: str) -> str:
        """`nonce` in the nonce's own partition (not the call's: see CallStore.apply)."""
        return self.nonce(source, nonce, nonce_partition(source, nonce, self.partitions))

    def all_transitions(self) -> list[str]:
        """Every partition's transitions stream, partition 0 first."""
        return [self.transitions(partition) for partition in range(self.partitions)]

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

    def sweeper_status(self) -> str:
        """JSON of the latest sweep (time, duration, report), overwritten by each sweep; read by the console."""
        return f"{self.prefix}:sweeper:last"

    def sink_record(self, sink: str, external_id: str) -> str:
        """Hash mapping a call's external id to the record a sink created for it (uid, last version sent).

        Kept as long as the call's own hash at most (the sink sets the expiry); the hash tag comes before
        the provider-supplied external id for the same reason as in `call`.
        """
        return f"{self.prefix}:{{sink}}:{sink}:{external_id}"

    def deadletter(self) -> str:
        """Stream of requests that passed authentication but could not be processed."""
        return f"{self.prefix}:deadletter"

    def deadletter_account(self, source: str) -> tuple[str, str, str]:
        """One source's dead-letter bookkeeping: its entries, oldest last (list of ``"<id> <bytes> <digest>"``),
        digest → entry id (hash), and the bytes its entries hold (string).

        Their hash tag is the dead-letter stream's whole name, which Redis Cluster hashes as it hashes that
        stream's (tagless) key: one script updates the stream and a source's bookkeeping in one slot.
        """
        tag = f"{self.prefix}:{{{self.deadletter()}}}"
        return f"{tag}:entries:{source}", f"{tag}:digests:{source}", f"{tag}:bytes:{source}"

    def consumer_deadletter(self, group: str) -> str:
        """Stream of transitions consumer group ``group`` gave up on, each with the error. Trimmed, no expiry."""
        if not group or any(ch in group for ch in "{} \t\r\n"):
            raise ValueError(f"consumer group {group!r} must be non-empty, without braces or spaces")
        return f"{self.prefix}:consumer-deadletter:{group}"

    def everything(self) -> str:
        """SCAN pattern matching every key under this prefix."""
        return f"{self.prefix}:*"
