"""`[redis] wait_replicas`: a 2xx only once a replica has the step, so it survives the primary's crash.

A real primary and a real replica (redis-server processes on loopback). Without the option Redis replicates
asynchronously and the write acknowledged just before a crash can be missing on the promoted replica
(tests/test_sentinel.py pins that window); with it, every acknowledged step is on the replica.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from statemachine.errors import StoreUnavailable
from statemachine.events import CallEvent
from statemachine.keys import Keys
from statemachine.machine import Outcome
from statemachine.states import Trigger
from statemachine.store import CallStore
from tests.support.cluster import Node
from tests.support.processes import wait_until

pytestmark = pytest.mark.slow

KEYS = Keys("replica-wait")


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Node, Node]]:
    primary = Node(tmp_path / "primary").start()
    replica = Node(tmp_path / "replica", ["--replicaof", "127.0.0.1", str(primary.port)]).start()
    link = replica.client()
    wait_until(lambda: link.info("replication")["master_link_status"] == "up", 10, "replica linked")
    link.close()
    yield primary, replica
    replica.stop()
    primary.stop()


@pytest.fixture
async def primary_client(pair: tuple[Node, Node]) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis(host="127.0.0.1", port=pair[0].port, socket_timeout=2)
    yield client
    await client.aclose()


def ring(call_id: str) -> CallEvent:
    return CallEvent(
        source="src",
        provider="vobiz",
        call_id=call_id,
        event=Trigger.RINGING,
        provider_event="Ring",
        provider_status="ringing",
        dedupe_key=f"{call_id}:Ring",
        received_at="2026-05-29T12:00:00.000Z",
    )


async def test_acknowledged_steps_are_on_the_replica_when_the_primary_dies(
    pair: tuple[Node, Node], primary_client: aioredis.Redis
) -> None:
    """Every step that returned (the receiver's 2xx) is found on the replica promoted after a SIGKILL."""
    primary, replica = pair
    store = CallStore(primary_client, KEYS, wait_replicas=1, wait_timeout_ms=1000)
    results = [await store.apply(ring(f"call-{n}")) for n in range(200)]
    assert {result.outcome for result in results} == {Outcome.APPLIED}
    primary.kill()
    promoted = replica.client()
    try:
        promoted.replicaof("NO", "ONE")
        found = {entry_id.decode() for entry_id, _fields in promoted.xrange(KEYS.transitions())}
        assert {result.entry_id for result in results} <= found
    finally:
        promoted.close()


async def test_without_a_replica_the_step_is_refused_not_acknowledged(
    pair: tuple[Node, Node], primary_client: aioredis.Redis
) -> None:
    """With the replica gone, no step is acknowledged: the receiver answers 503 and the provider retries."""
    _primary, replica = pair
    store = CallStore(primary_client, KEYS, wait_replicas=1, wait_timeout_ms=200)
    assert (await store.apply(ring("before"))).outcome is Outcome.APPLIED
    replica.kill()
    with pytest.raises(StoreUnavailable, match="0 of 1 replicas confirmed"):
        await store.apply(ring("after"))
