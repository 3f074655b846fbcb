"""The stuck-call sweeper on a real Redis: stale annotations once per stuck state, reconciliation through
a local stand-in of the providers' get-call APIs, and the periodic run inside the server."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
import redis.asyncio as aioredis

from receiver import cli
from receiver.settings import Settings, Source
from receiver.sweeper import Sweeper, run_periodically
from statemachine.events import CallEvent
from statemachine.keys import Keys
from statemachine.states import Trigger
from statemachine.store import CallStore, entry_fields
from tests.conftest import MakeSettings
from tests.support.provider_api import ProviderApi

HOUR_MS = 3600 * 1000


def callingbox_source(api: ProviderApi | None = None, **options: Any) -> Source:
    if api is not None:
        options["reconcile"] = {"base_url": api.url, "api_key": api.credentials.callingbox_api_key}
    return Source(name="cb", provider="callingbox", verify=False, options=options)


async def start_call(store: CallStore, call_id: str, trigger: Trigger = Trigger.RINGING, source: str = "cb") -> None:
    """A call whose last callback was ``trigger``, received now."""
    await store.apply(
        CallEvent(
            source=source,
            provider="callingbox",
            call_id=call_id,
            event=trigger,
            provider_event=f"call.{trigger.value}",
            provider_status=trigger.value,
            dedupe_key=f"{call_id}:call.{trigger.value}",
            received_at="2026-05-29T12:00:00.000Z",
        )
    )


def entries(r: redis.Redis, keys: Keys) -> list[dict[str, Any]]:
    return [entry_fields(fields) for _id, fields in r.xrange(keys.transitions())]


def later(hours: float) -> int:
    return int(time.time() * 1000 + hours * HOUR_MS)


async def test_stuck_call_gets_one_stale_annotation(
    store: CallStore, make_settings: MakeSettings, r: redis.Redis, keys: Keys
) -> None:
    """A call ringing for over two hours gets one `stale` annotation; sweeping again adds nothing."""
    await start_call(store, "stuck-1")
    sweeper = Sweeper(store, make_settings(sources={"cb": callingbox_source()}), {})
    first = await sweeper.sweep(later(2.1))
    again = await sweeper.sweep(later(9))
    assert (first.stuck, first.annotated, again.annotated, again.already_annotated) == (1, 1, 0, 1)
    stream = entries(r, keys)
    assert [(e["kind"], e["name"], e["to_state"]) for e in stream] == [
        ("transition", "ringing", "ringing"),
        ("annotation", "stale", "ringing"),
    ]
    extras = stream[1]["event"]["extras"]
    assert extras["annotation"] == "stale"
    assert (extras["state"], extras["stale_after_s"], extras["reconciliation"]) == ("ringing", 7200, "not_configured")
    assert r.hget(keys.call("cb", "stuck-1"), "state") == b"ringing"


async def test_fresh_and_finished_calls_are_left_alone(
    store: CallStore, make_settings: MakeSettings, r: redis.Redis, keys: Keys
) -> None:
    """Calls younger than the limit, and calls in a terminal state however old, are not flagged."""
    await start_call(store, "fresh")
    await start_call(store, "done", Trigger.COMPLETED)
    sweeper = Sweeper(store, make_settings(sources={"cb": callingbox_source()}), {})
    assert (await sweeper.sweep(later(1.9))).stuck == 0
    report = await sweeper.sweep(later(2.1))
    assert (report.scanned, report.stuck) == (2, 1)
    assert [e["call_id"] for e in entries(r, keys) if e["kind"] == "annotation"] == ["fresh"]


async def test_limit_is_per_source(store: CallStore, make_settings: MakeSettings, r: redis.Redis, keys: Keys) -> None:
    """``stale_after_seconds`` on one source does not change another source's default limit."""
    await start_call(store, "quick-call", source="quick")
    await start_call(store, "slow-call", source="slow")
    sources = {
        "quick": Source(name="quick", provider="callingbox", verify=False, options={"stale_after_seconds": 60}),
        "slow": Source(name="slow", provider="callingbox", verify=False),
    }
    report = await Sweeper(store, make_settings(sources=sources), {}).sweep(later(0.1))
    assert report.annotated == 1
    assert [e["call_id"] for e in entries(r, keys) if e["kind"] == "annotation"] == ["quick-call"]


async def test_provider_says_completed_so_the_call_completes(
    store: CallStore, make_settings: MakeSettings, api: ProviderApi, r: redis.Redis, keys: Keys
) -> None:
    """With a get-call API configured, a lost `call.completed` is recovered as a normal transition."""
    await start_call(store, "cb-lost")
    api.callingbox["cb-lost"] = {"id": "cb-lost", "status": "completed", "duration_seconds": 61}
    sweeper = Sweeper(store, make_settings(sources={"cb": callingbox_source(api)}), {})
    report = await sweeper.sweep(later(3))
    again = await sweeper.sweep(later(30))
    assert (report.reconciled, report.annotated, again.stuck) == (1, 0, 0)
    last = entries(r, keys)[-1]
    assert (last["kind"], last["from_state"], last["to_state"]) == ("transition", "ringing", "completed")
    assert last["event"]["provider_event"] == "reconciliation"
    assert last["event"]["extras"] == {"via": "reconciliation", "duration_s": 61}
    assert len(api.received("callingbox.get")) == 1


async def test_provider_says_still_in_progress_so_no_stale_flag(
    store: CallStore, make_settings: MakeSettings, api: ProviderApi, r: redis.Redis, keys: Keys
) -> None:
    """A provider that still has the call up moves it forward if needed, and it is not flagged stale."""
    await start_call(store, "long-call")
    api.callingbox["long-call"] = {"id": "long-call", "status": "in_progress"}
    sweeper = Sweeper(store, make_settings(sources={"cb": callingbox_source(api)}), {})
    first = await sweeper.sweep(later(3))
    second = await sweeper.sweep(later(6))
    assert (first.reconciled, second.live, first.annotated + second.annotated) == (1, 1, 0)
    assert [(e["kind"], e["to_state"]) for e in entries(r, keys)] == [
        ("transition", "ringing"),
        ("transition", "answered"),
    ]


@pytest.mark.parametrize(("answer", "reason"), [(404, "not_found"), (503, "unavailable"), (500, "unavailable")])
async def test_lookup_failure_falls_back_to_the_stale_flag(
    store: CallStore,
    make_settings: MakeSettings,
    api: ProviderApi,
    r: redis.Redis,
    keys: Keys,
    answer: int,
    reason: str,
) -> None:
    """404 and 5xx for one call: it is flagged stale saying why, and the sweep goes on to the next call."""
    await start_call(store, "broken")
    await start_call(store, "fine")
    api.callingbox["fine"] = {"id": "fine", "status": "busy"}
    if answer != 404:
        api.callingbox["broken"] = {"id": "broken", "status": "completed"}
        api.failing["broken"] = answer
    sweeper = Sweeper(store, make_settings(sources={"cb": callingbox_source(api)}), {})
    report = await sweeper.sweep(later(3))
    by_call = {e["call_id"]: e for e in entries(r, keys)[2:]}
    assert (by_call["broken"]["kind"], by_call["broken"]["name"]) == ("annotation", "stale")
    assert by_call["broken"]["event"]["extras"]["reconciliation"] == reason
    assert (by_call["fine"]["kind"], by_call["fine"]["to_state"]) == ("transition", "busy")
    assert (report.reconciled, report.annotated, report.lookup_failures) == (1, 1, {reason: 1})


async def test_second_sweeper_waits_for_the_lease(
    store: CallStore, make_settings: MakeSettings, r: redis.Redis, keys: Keys
) -> None:
    """While another process holds the sweep lease, a periodic sweeper does not sweep."""
    await start_call(store, "leased")
    settings = make_settings(sources={"cb": callingbox_source(stale_after_seconds=1)})
    await asyncio.sleep(1.1)
    r.set(keys.sweeper_lease(), "someone-else", px=60_000)
    stop = asyncio.Event()
    task = asyncio.create_task(run_periodically(Sweeper(store, settings, {}), 0.2, stop))
    await asyncio.sleep(0.8)
    assert [e["kind"] for e in entries(r, keys)] == ["transition"]
    r.delete(keys.sweeper_lease())
    for _ in range(50):
        await asyncio.sleep(0.1)
        if len(entries(r, keys)) == 2:
            break
    stop.set()
    await task
    assert [e["name"] for e in entries(r, keys)] == ["ringing", "stale"]


async def test_server_runs_the_sweeper_when_configured(
    store: CallStore, make_settings: MakeSettings, make_client: Any, r: redis.Redis, keys: Keys
) -> None:
    """With ``[sweeper] interval_seconds`` set, the running server flags stuck calls by itself."""
    await start_call(store, "in-app")
    await asyncio.sleep(1.1)
    settings = make_settings(sources={"cb": callingbox_source(stale_after_seconds=1)}, sweeper_interval_s=1)
    make_client(settings)
    for _ in range(60):
        if len(entries(r, keys)) >= 2:
            break
        await asyncio.sleep(0.1)
    assert [e["name"] for e in entries(r, keys)] == ["ringing", "stale"]


def test_sweeper_interval_is_read_from_the_configuration() -> None:
    """``[sweeper] interval_seconds`` turns the in-server sweeper on; without it, it is off."""
    base = '[sources.cb]\nprovider = "callingbox"\nverify = false\n'
    on = Settings.from_toml(base + "[sweeper]\ninterval_seconds = 300\n", {}, ["callingbox"])
    off = Settings.from_toml(base, {}, ["callingbox"])
    assert (on.sweeper_interval_s, off.sweeper_interval_s) == (300, None)


async def test_cli_sweeps_once_and_prints_the_report(
    store: CallStore,
    redis_url: str,
    prefix: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    r: redis.Redis,
    keys: Keys,
) -> None:
    """``callstream sweep --config`` flags a stuck call and prints what it did as JSON."""
    await start_call(store, "cli-call")
    await asyncio.sleep(1.1)
    config = tmp_path / "callstream.toml"
    config.write_text(
        f'[streams]\nprefix = "{prefix}"\n'
        '[sources.cb]\nprovider = "callingbox"\nverify = false\nstale_after_seconds = 1\n'
    )
    monkeypatch.setenv("REDIS_URL", redis_url)
    code = await asyncio.to_thread(cli.main, ["sweep", "--config", str(config)])
    report = orjson.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0
    assert (report["stuck"], report["annotated"]) == (1, 1)
    assert [e["name"] for e in entries(r, keys)] == ["ringing", "stale"]


async def test_every_partition_is_swept(redis_url: str, prefix: str, make_settings: MakeSettings) -> None:
    """With the stream split in partitions, stuck calls in every partition are found and flagged."""
    keys = Keys(prefix, 4)
    client = aioredis.Redis.from_url(redis_url)
    try:
        store = CallStore(client, keys)
        call_ids = [f"part-{n}" for n in range(8)]
        for call_id in call_ids:
            await start_call(store, call_id)
        assert len({keys.partition_of("cb", call_id) for call_id in call_ids}) > 1
        report = await Sweeper(store, make_settings(sources={"cb": callingbox_source()}), {}).sweep(later(3))
    finally:
        await client.aclose()
    assert (report.scanned, report.annotated) == (8, 8)
