"""The atomic Redis step: its decisions match the machine's, and what it writes is what consumers read."""

from __future__ import annotations

import hashlib

import pytest
import redis.asyncio as aioredis

from statemachine import script
from statemachine.definition import ALL_STATES
from statemachine.errors import ReplayedNonce
from statemachine.events import CallEvent
from statemachine.keys import Keys
from statemachine.machine import Outcome, decide
from statemachine.states import UNSEEN, Trigger
from statemachine.store import CallStore, NonceClaim, Retention
from tests.support.events import call_event as event


@pytest.fixture
def store(async_redis: aioredis.Redis, keys: Keys) -> CallStore:
    """Short retention, so that expiry times are easy to tell apart."""
    return CallStore(async_redis, keys, Retention(terminal_call_ms=60_000, active_call_ms=600_000))


async def test_script_decides_like_the_machine_for_every_pair(store: CallStore, keys: Keys) -> None:
    """For each (state, trigger), the Redis script reaches the machine's outcome, state and attempt."""
    client = store.redis
    for state in ALL_STATES:
        for trigger in Trigger:
            call_id = f"{state}-{trigger.value}"
            if state != "new":
                await client.hset(keys.call("src", call_id), mapping={"state": state, "attempt": 1, "version": 3})
            result = await store.apply(event(call_id, trigger, f"{call_id}:x"))
            expected = decide(state, trigger)
            assert (result.outcome, result.to_state) == (expected.outcome, expected.to_state), (state, trigger)
            assert result.attempt == (2 if expected.new_attempt else 1)
            published = expected.outcome in (Outcome.APPLIED, Outcome.ANNOTATION)
            assert (result.entry_id is not None) == published


def digest_mark(key: str) -> bytes:
    return b"d#" + hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest()[:16].encode()


@pytest.mark.parametrize(
    ("dedupe", "field"),
    [
        ("c:Ring", b"d:c:Ring"),
        ("k" * 62, b"d:" + b"k" * 62),  # a 64-byte mark still fits
        # 63 bytes of key make a 65-byte mark: kept as the SHA-1 digest of the key (computed here by hand).
        ("k" * 63, digest_mark("k" * 63)),
        # Bytes count, not characters: 32 two-byte characters are over the limit.
        (
            "\u00e9" * 32,
            b"d#" + hashlib.sha1(("\u00e9" * 32).encode(), usedforsecurity=False).hexdigest()[:16].encode(),
        ),
    ],
)
async def test_dedupe_mark_is_readable_or_a_digest_and_the_hash_stays_compact(
    store: CallStore, keys: Keys, dedupe: str, field: bytes
) -> None:
    """The mark is ``d:<key>`` while it fits 64 bytes, else ``d#`` + 16 hex digits of the key's SHA-1 (so the
    call's hash keeps Redis's compact encoding); either way a retry is recognised."""
    first = await store.apply(event("c", Trigger.RINGING, dedupe))
    again = await store.apply(event("c", Trigger.RINGING, dedupe))
    assert (first.outcome, again.outcome) == (Outcome.APPLIED, Outcome.DUPLICATE)
    marks = [name for name in await store.redis.hkeys(keys.call("src", "c")) if name.startswith(b"d")]
    assert marks == [field]
    assert await store.redis.object("encoding", keys.call("src", "c")) in (b"listpack", b"ziplist")


async def test_same_provider_event_twice_is_a_duplicate(store: CallStore, keys: Keys) -> None:
    """A retried delivery (same dedupe key) changes nothing and publishes nothing."""
    first = await store.apply(event("c", Trigger.RINGING, "c:Ring"))
    again = await store.apply(event("c", Trigger.RINGING, "c:Ring"))
    assert first.outcome is Outcome.APPLIED
    assert again.outcome is Outcome.DUPLICATE
    assert (again.version, again.entry_id) == (1, None)
    assert await store.redis.xlen(keys.transitions()) == 1


async def test_operator_replay_is_processed_again_and_marked(store: CallStore, keys: Keys) -> None:
    """A replay skips dedupe on purpose; if it makes a change the entry says replay=1."""
    await store.apply(event("c", Trigger.ANNOTATION, "c:amd", annotation="machine_detection"))
    replayed = await store.apply(event("c", Trigger.ANNOTATION, "c:amd", annotation="machine_detection"), replay=True)
    assert replayed.outcome is Outcome.ANNOTATION
    entries = await store.redis.xrange(keys.transitions())
    assert [fields[b"replay"] for _id, fields in entries] == [b"0", b"1"]


async def test_call_history_and_expiry(store: CallStore, keys: Keys) -> None:
    """get_call returns state, attempt, version and the published history; a terminal call expires sooner."""
    await store.apply(event("c", Trigger.RINGING, "c:1"))
    assert 500_000 < await store.redis.pttl(keys.call("src", "c")) <= 600_000
    await store.apply(event("c", Trigger.ANSWERED, "c:2"))
    await store.apply(event("c", Trigger.COMPLETED, "c:3"))
    record = await store.get_call("src", "c")
    assert record is not None
    assert (record.state, record.attempt, record.version) == ("completed", 1, 3)
    assert [(h["from_state"], h["to_state"]) for h in record.history] == [
        ("new", "ringing"),
        ("ringing", "answered"),
        ("answered", "completed"),
    ]
    assert 0 < record.ttl_ms <= 60_000
    assert await store.get_call("src", "unknown") is None


async def test_nonce_reused_for_another_request_is_refused(store: CallStore, keys: Keys) -> None:
    """A nonce spent by one request cannot authenticate another (a different fingerprint), in the step or on
    its own; the same request again (its own fingerprint) passes, and its event is then a duplicate."""
    first = NonceClaim("src", ("12345678901234567890",), "request-a", 60_000)
    await store.apply(event("c", Trigger.RINGING, "c:Ring"), claim=first)
    again = await store.apply(event("c", Trigger.RINGING, "c:Ring"), claim=first)
    assert again.outcome is Outcome.DUPLICATE
    other = NonceClaim("src", ("12345678901234567890",), "request-b", 60_000)
    with pytest.raises(ReplayedNonce):
        await store.apply(event("c", Trigger.COMPLETED, "c:Hangup"), claim=other)
    with pytest.raises(ReplayedNonce):
        await store.spend(other)
    await store.spend(first)
    assert await store.redis.hget(keys.call("src", "c"), "state") == b"ringing"
    assert 0 < await store.redis.pttl(keys.nonce_of("src", "12345678901234567890")) <= 60_000


async def test_a_request_spends_every_nonce_it_carries(store: CallStore) -> None:
    """A request carrying two nonces (two signature versions) spends both: either one alone, with another
    request, is then a replay."""
    both = NonceClaim("src", ("11111111111111111111", "22222222222222222222"), "request-a", 60_000)
    await store.apply(event("c", Trigger.RINGING, "c:Ring"), claim=both)
    for nonce in both.nonces:
        with pytest.raises(ReplayedNonce):
            await store.spend(NonceClaim("src", (nonce,), "request-b", 60_000))


def minivoice(trigger: Trigger, at: str) -> CallEvent:
    """A MiniVoice event of call ``c`` dated ``at`` on 2026-05-29 (its dedupe key carries the time)."""
    return event("c", trigger, f"c:{trigger.value}@{at}", provider="minivoice", occurred_at=f"2026-05-29T{at}Z")


async def test_creation_delivered_after_the_end_is_late_but_a_later_redial_opens_attempt_two(
    store: CallStore,
) -> None:
    """MiniVoice's first call.created (12:00:00) delivered after call.failed (12:00:31) is late; the re-dial's
    call.created (12:05:00) opens attempt 2."""
    await store.apply(
        event("c", Trigger.FAILED, "c:failed@12:00:31", provider="minivoice", occurred_at="2026-05-29T12:00:31Z")
    )
    original = await store.apply(
        event("c", Trigger.REDIAL, "c:created@12:00:00", provider="minivoice", occurred_at="2026-05-29T12:00:00Z")
    )
    assert (original.outcome, original.to_state, original.attempt) == (Outcome.LATE, "failed", 1)
    redial = await store.apply(
        event("c", Trigger.REDIAL, "c:created@12:05:00", provider="minivoice", occurred_at="2026-05-29T12:05:00Z")
    )
    assert (redial.outcome, redial.to_state, redial.attempt) == (Outcome.APPLIED, "created", 2)


async def test_undated_redial_after_the_end_opens_a_new_attempt(store: CallStore) -> None:
    """Without provider dates the rule cannot tell, and gives the re-dial the benefit of the doubt."""
    await store.apply(event("c", Trigger.FAILED, "c:failed"))
    redial = await store.apply(event("c", Trigger.REDIAL, "c:created"))
    assert (redial.outcome, redial.attempt) == (Outcome.APPLIED, 2)


def test_a_store_works_every_decision_row_out_when_it_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    """A trigger's first event does not wait for the machine's whole table to be worked out: the store does
    it when it is built, at start-up (building a store makes no round trip to Redis)."""
    for cached in (script._decision_rows, script.early_row):
        cached.cache_clear()
    CallStore(aioredis.Redis(port=1))

    def no_table(**_: object) -> None:
        raise AssertionError("the decision table was worked out after start-up")

    monkeypatch.setattr(script, "decision_table", no_table)
    for trigger in Trigger:
        assert f" {UNSEEN}=" in script.decision_row(trigger)  # a row names every state
        script.early_row(trigger)
