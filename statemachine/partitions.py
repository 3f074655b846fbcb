"""Which partition a call belongs to, so that many Redis primaries can share the load.

Every key one call touches (its state hash, its partition's transitions stream, the nonce mark checked in
the same step) carries the partition's hash tag ``{p}`` (see `statemachine.keys`), so the atomic step of
`apply_step.lua` always runs within one Redis Cluster slot. The partition is a stable hash of
``source + "\\0" + call_id``: CRC-32 (IEEE, as in zlib, gzip and PNG), modulo the partition count. It never
depends on the process (unlike Python's ``hash()``), so every receiver, consumer and CLI command agrees.

With one partition (the default) every call is in partition 0, whose keys are the single-Redis names
``<prefix>:{0}:...``: nothing moves for a deployment that never partitions.

Changing the partition count moves calls: a call whose partition changes is not found in its new
partition, so its next event starts it again from ``new`` there (and a retry of an event already applied
in the old partition is applied once more). Change the count only while no call is in flight, or as
described in docs/scale-out.md.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

#: Upper bound for the partition count: more partitions than Redis Cluster has slots buys nothing.
MAX_PARTITIONS = 16384


def partition_of(source: str, call_id: str, partitions: int) -> int:
    """The partition of the call ``call_id`` of ``source``, among ``partitions`` partitions."""
    if partitions == 1:
        return 0
    return zlib.crc32(f"{source}\0{call_id}".encode()) % partitions


def nonce_partition(source: str, nonce: str, partitions: int) -> int:
    """The partition holding the replay mark of a signature nonce (independent of the call it came with)."""
    if partitions == 1:
        return 0
    return zlib.crc32(f"{source}\0nonce\0{nonce}".encode()) % partitions


@dataclass(frozen=True, slots=True)
class Partitions:
    """A partition count, checked once, with the functions that use it."""

    count: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.count, bool) or not isinstance(self.count, int) or not 1 <= self.count <= MAX_PARTITIONS:
            raise ValueError(f"partition count must be an integer from 1 to {MAX_PARTITIONS}, got {self.count!r}")

    def of(self, source: str, call_id: str) -> int:
        """The partition of one call."""
        return partition_of(source, call_id, self.count)

    def of_nonce(self, source: str, nonce: str) -> int:
        """The partition of one nonce's replay mark."""
        return nonce_partition(source, nonce, self.count)

    def all(self) -> range:
        """Every partition number, in order."""
        return range(self.count)

    def assigned(self, member: int, members: int) -> list[int]:
        """The partitions that consumer ``member`` of ``members`` reads (round robin, each exactly once)."""
        if not 0 <= member < members:
            raise ValueError(f"member must be in 0..{members - 1}, got {member}")
        return [p for p in self.all() if p % members == member]
