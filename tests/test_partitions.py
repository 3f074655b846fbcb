"""Partitioned streams on one Redis: where a call lands, what the default keeps, nonce marks across partitions.

The expected CRC-32 values below were taken from gzip's trailer (``printf 'vobiz\\0call-1' | gzip | tail -c8``),
an implementation independent of the code under test.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import pytest
import redis
from starlette.testclient import TestClient

from receiver.providers import PROVIDERS, OutgoingRequest
from receiver.settings import ConfigError, Settings
from statemachine.events import CallEvent
from statemachine.keys import Keys
from statemachine.partitions import Partitions, partition_of
from statemachine.states import Trigger
from statemachine.store import CallStore
from tests.conftest import MakeSettings, signed_source

GZIP_CRC32 = {("vobiz", "call-1"): 3665228, ("vobiz", "call-2"): 2571025654, ("twilio", "CA123"): 3851240963}


@pytest.mark.parametrize("count", [2, 4, 7, 16])
def test_partition_is_crc32_of_source_and_call_id_modulo_the_count(count: int) -> None:
    """Every process agrees on a call's partition: CRC-32 of ``source\\0call_id`` modulo the count."""
    for (source, call_id), crc in GZIP_CRC32.items():
        assert partition_of(source, call_id, count) == crc % count


def test_one_partition_keeps_the_single_redis_key_names() -> None:
    """The default layout is today's: tag {0} for every call, one stream, no migration."""
    keys = Keys("callstream")
    assert keys.call_of("vobiz", "call-2") == "callstream:{0}:call:vobiz:call-2"
    assert keys.transitions_of("vobiz", "call-2") == "callstream:{0}:transitions"
    assert keys.all_transitions() == ["callstream:{0}:transitions"]


def test_a_calls_keys_share_its_partition_tag() -> None:
    """With 4 partitions the call hash and its stream carry the same tag, before the provider's text."""
    keys = Keys("cs", 4)
    expected = GZIP_CRC32[("vobiz", "call-2")] % 4
    assert keys.call_of("vobiz", "call-2") == f"cs:{{{expected}}}:call:vobiz:call-2"
    assert keys.transitions_of("vobiz", "call-2") == f"cs:{{{expected}}}:transitions"
    assert keys.call_of("vobiz", "{9}x").startswith("cs:{")
    assert keys.all_transitions() == [
        "cs:{0}:transitions",
        "cs:{1}:transitions",
        "cs:{2}:transitions",
        "cs:{3}:transitions",
    ]


def test_calls_spread_over_every_partition() -> None:
    """A thousand call ids fill each of 4 partitions to within a few percent of a quarter."""
    counts = Counter(partition_of("twilio", f"CA{n:032x}", 4) for n in range(1000))
    assert sorted(counts) == [0, 1, 2, 3]
    assert all(200 <= count <= 300 for count in counts.values()), counts


def test_partition_assignment_gives_each_partition_to_exactly_one_consumer() -> None:
    """Two consumers over 4 partitions read 0,2 and 1,3; three over 4 read 0,3 / 1 / 2."""
    partitions = Partitions(4)
    assert [partitions.assigned(member, 2) for member in range(2)] == [[0, 2], [1, 3]]
    assert [partitions.assigned(member, 3) for member in range(3)] == [[0, 3], [1], [2]]


def test_partitions_setting() -> None:
    """``[streams] partitions`` defaults to 1; zero, text and more than 16384 are refused, naming the key."""
    base = "[sources.vobiz]\nverify = false\n"
    providers = list(PROVIDERS)
    assert Settings.from_toml(base, {}, providers).partitions == 1
    settings = Settings.from_toml("[streams]\npartitions = 4\n" + base, {}, providers)
    assert settings.partitions == 4
    assert settings.keys.partitions == 4
    for bad in ("0", '"4"', "20000"):
        with pytest.raises(ConfigError, match="partitions"):
            Settings.from_toml(f"[streams]\npartitions = {bad}\n" + base, {}, providers)


def event(call_id: str, trigger: Trigger, dedupe: str) -> CallEvent:
    return CallEvent(
        source="vobiz", provider="vobiz", call_id=call_id, event=trigger, provider_event=trigger.value,
        provider_status=None, dedupe_key=dedupe, received_at="2025-01-01T00:00:00Z",
    )  # fmt: skip


async def test_changing_the_partition_count_restarts_in_flight_calls(redis_url: str, prefix: str) -> None:
    """As documented: a call whose partition changes is not found in the new one and starts from ``new``."""
    from redis.asyncio import Redis

    call_id = next(f"moved-{n}" for n in range(100) if partition_of("vobiz", f"moved-{n}", 4) != 0)
    client = Redis.from_url(redis_url)
    try:
        before = await CallStore(client, Keys(prefix, 1)).apply(event(call_id, Trigger.RINGING, "r"))
        after = await CallStore(client, Keys(prefix, 4)).apply(event(call_id, Trigger.ANSWERED, "a"))
        retried = await CallStore(client, Keys(prefix, 4)).apply(event(call_id, Trigger.RINGING, "r"))
    finally:
        await client.aclose()
    assert (before.from_state, before.to_state) == ("new", "ringing")
    assert (after.from_state, after.to_state) == ("new", "answered")
    assert retried.outcome.value == "late"


def test_replayed_nonce_with_another_call_is_refused_across_partitions(
    make_client: Callable[..., TestClient], make_settings: MakeSettings, r: redis.Redis, prefix: str
) -> None:
    """Vobiz signs only URL + nonce: the captured headers replayed with another call's body get 401."""
    source = signed_source("vobiz", "vobiz", "vobiz-secret")
    client = make_client(make_settings({"vobiz": source}, partitions=4))
    url = "http://testserver/webhooks/vobiz"
    first = "nonce-call-a"
    second = next(
        f"nonce-call-{n}"
        for n in range(100)
        if partition_of("vobiz", f"nonce-call-{n}", 4) != partition_of("vobiz", first, 4)
    )

    def body(call_id: str) -> bytes:
        return f"CallUUID={call_id}&Event=Ring&CallStatus=ringing&From=1&To=2&Direction=inbound".encode()

    content_type = "application/x-www-form-urlencoded"
    headers = {"content-type": content_type}
    headers.update(
        PROVIDERS["vobiz"].sign(
            OutgoingRequest(url=url, body=body(first), content_type=content_type), "vobiz-secret", time.time()
        )
    )
    accepted = client.post("/webhooks/vobiz", content=body(first), headers=headers)
    retried = client.post("/webhooks/vobiz", content=body(first), headers=headers)
    forged = client.post("/webhooks/vobiz", content=body(second), headers=headers)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["results"][0]["outcome"] == "applied"
    assert retried.status_code == 200 and retried.json()["results"][0]["outcome"] == "duplicate"
    assert forged.status_code == 401, forged.text
    assert forged.json()["error"]["code"] == "replayed_request"
    keys = Keys(prefix, 4)
    assert r.exists(keys.call_of("vobiz", second)) == 0
    assert sum(r.xlen(stream) for stream in keys.all_transitions()) == 1
