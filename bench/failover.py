"""Failover under load on Redis Cluster: a partition's primary SIGKILLed several times in a row while calls
keep coming, with and without ``[redis] wait_replicas = 1``; how many acknowledged (2xx) transitions are
missing afterwards.

    .venv/bin/python bench/run.py --failover     # this part only; prints, writes nothing

The cluster (3 primaries, 1 replica each, `appendfsync always`, `cluster-node-timeout` 1 s) and the load
are the test suite's own (`tests/support/cluster.py`): the real app in-process, Vobiz answered calls one
after another, a refused request and the rest of its call sent again after the failover, as a provider
retries. After each kill the killed node is started again and rejoins as the new primary's replica, so
the next kill finds a primary with a replica again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import report

if TYPE_CHECKING:
    from bench.run import Bench

KILLS = 3
PARTITIONS = 4
FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "vobiz" / "answered.json"


@dataclass
class Losses:
    """One setting's run: requests sent, answered 2xx and 503, transitions acknowledged and missing."""

    wait_replicas: int
    kills: int
    requests: int
    ok: int
    unavailable: int
    acknowledged: int
    missing: int
    calls: int
    incomplete_calls: int


def run(directory: Path, wait_replicas: int, kills: int = KILLS) -> Losses:
    from redis.cluster import RedisCluster
    from starlette.testclient import TestClient

    from receiver.app import create_app
    from receiver.providers import PROVIDERS
    from receiver.scenario import Scenario
    from receiver.settings import Settings
    from statemachine.keys import Keys
    from tests.support.cluster import LocalCluster, kill_and_rejoin, missing_acknowledgements, run_failover_load

    cluster = LocalCluster(directory / f"failover-{wait_replicas}", primaries=3, replicas=1).start()
    keys = Keys(f"failover-{wait_replicas}", PARTITIONS)
    base = Settings.default({}, list(PROVIDERS))
    settings = replace(
        Settings(sources=base.sources, redis_url=cluster.url, key_prefix=keys.prefix, partitions=PARTITIONS),
        redis_wait_replicas=wait_replicas,
        redis_wait_timeout_ms=500,
    )
    answered = Scenario.load(FIXTURE)
    acknowledged: list[Any] = []
    calls: list[str] = []
    statuses: list[int] = []
    try:
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            for round_ in range(kills):
                victim = cluster.node_serving(keys.transitions(0))
                kill, rejoined = kill_and_rejoin(cluster, victim, keys.transitions(0))
                load = run_failover_load(
                    client, answered, kill, suffix=f"-k{round_}-", timeout_s=60, recovered_after=60, window=30
                )
                rejoined.join()
                cluster.wait_healthy()
                acknowledged += load.acknowledged
                calls += load.calls
                statuses += load.statuses + [200] * len(load.refused)
        reader: RedisCluster = cluster.client()
        try:
            rows = {
                entry_id.decode(): {k.decode(): v.decode() for k, v in fields.items()}
                for partition in range(PARTITIONS)
                for entry_id, fields in reader.xrange(keys.transitions(partition))
            }
        finally:
            reader.close()
    finally:
        cluster.stop()
    missing = missing_acknowledgements(acknowledged, rows)
    paths: dict[str, int] = {}
    for row in rows.values():
        paths[row["call_id"]] = paths.get(row["call_id"], 0) + 1
    return Losses(
        wait_replicas=wait_replicas,
        kills=kills,
        requests=len(statuses),
        ok=statuses.count(200),
        unavailable=statuses.count(503),
        acknowledged=sum(1 for _, result in acknowledged if result["outcome"] == "applied"),
        missing=len(missing),
        calls=len(calls),
        incomplete_calls=sum(1 for call_id in calls if paths.get(call_id, 0) != 3),
    )


def section(bench: Bench) -> str:
    rows = []
    # Every 503 during a failover is logged as it should be in service; here they are counted instead.
    logging.getLogger("callstream").setLevel(logging.CRITICAL)
    for wait in (1, 0):
        losses = run(bench.directory, wait)
        bench.failover.append(losses)
        print(f"failover wait_replicas={wait}: {losses}", flush=True)
        rows.append(
            [
                f"`wait_replicas = {wait}`",
                losses.kills,
                losses.requests,
                losses.ok,
                losses.unavailable,
                losses.acknowledged,
                f"**{losses.missing}**",
                f"{losses.incomplete_calls} of {losses.calls}",
            ]
        )
    header = [
        "setting",
        "primaries killed",
        "requests (retries included)",
        "200",
        "503 (retried)",
        "transitions acknowledged",
        "acknowledged but missing",
        "calls not complete",
    ]
    return (
        "### Failover: Redis Cluster, a partition's primary SIGKILLed under load, again and again\n\n"
        + report.table(header, rows)
        + "\n"
    )
