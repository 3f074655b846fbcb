"""Scale-out: the json scenario with two receiver processes (one worker each, on their own ports) against one
Redis and against a 3-primary Redis Cluster, with the yardstick (two processes) on the same single Redis.

    .venv/bin/python bench/run.py --scale-out     # this part only; prints, writes nothing

Every setup gets the same load: one wrk per app process, each with half of the connections and half of the
pool (every call's requests go to the same process). The receivers run with ``[streams] partitions = 16``
in both setups, so only the Redis behind them differs. The single Redis and the cluster's nodes run the
same redis-server binary (the one the test clusters use), without persistence. The cluster is started
with `tests.support.cluster.LocalCluster` (3 primaries, no replicas).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench import loadgen, procs, report
from bench.loadgen import Result
from receiver.embedded import redis_server_binary

if TYPE_CHECKING:
    from bench.run import Bench

PROCESSES = 2
PARTITIONS = 16
CONNECTIONS = 64
#: (label, app, Redis) in the order of the first round; later rounds rotate it so drift spreads evenly.
SETUPS: tuple[tuple[str, str, str], ...] = (
    ("yardstick, 1 Redis", "yardstick", "single"),
    ("receiver, 1 Redis", "receiver", "single"),
    ("receiver, 3-primary cluster", "receiver", "cluster"),
)


@dataclass
class Measured:
    label: str
    index: int
    result: Result


def run(bench: Bench) -> list[Measured]:
    """Start the two Redis set-ups and the app processes, then run ``bench.args.rounds`` rounds of each setup."""
    from bench.run import write_config
    from tests.support.cluster import LocalCluster

    directory = bench.directory / "scale-out"
    directory.mkdir(parents=True, exist_ok=True)
    config = write_config(directory, maxlen=bench.args.maxlen, partitions=PARTITIONS)
    single = procs.start_redis(directory / "redis", binary=redis_server_binary())
    bench.versions["redis (scale-out)"] = single.extra["version"]
    cluster = LocalCluster(directory / "cluster", primaries=3, replicas=0)
    for node in cluster.nodes:
        # The test clusters persist every write (appendfsync always); the benchmark's Redis persists nothing.
        node.extra_args += ["--appendonly", "no"]
    apps: dict[str, list[procs.Server]] = {}
    try:
        cluster.start()
        assert all(node.process is not None for node in cluster.nodes)
        nodes = [procs.Server(node.process, node.port, "redis-cluster") for node in cluster.nodes if node.process]
        redis_of = {"single": [single], "cluster": nodes}
        urls = {"single": f"redis://127.0.0.1:{single.port}/0", "cluster": cluster.url}
        pool = bench.pool("json")
        for label, app, where in SETUPS:
            apps[label] = [
                procs.start_app(app, workers=1, redis_url=urls[where], config=config, log=directory / f"{app}.log")
                for _ in range(PROCESSES)
            ]
            # Warm-up: open the Redis connections, load the script, fill allocator caches.
            loadgen.run_many(
                apps[label], redis_of[where], pool, connections=CONNECTIONS, duration=2, directory=directory
            )
        measured: list[Measured] = []
        for index in range(bench.args.rounds):
            shift = index % len(SETUPS)
            for label, _app, where in SETUPS[shift:] + SETUPS[:shift]:
                result = loadgen.run_many(
                    apps[label],
                    redis_of[where],
                    pool,
                    connections=CONNECTIONS,
                    duration=bench.args.duration,
                    directory=directory,
                )
                measured.append(Measured(label, index, result))
                print(line(measured[-1]), flush=True)
        return measured
    finally:
        for servers in apps.values():
            for server in servers:
                server.stop()
        cluster.stop()
        single.stop()


def line(m: Measured) -> str:
    res = m.result
    return (
        f"scale-out {m.label:28} #{m.index} {res.rps:8.0f} req/s  p50 {report.ms(res.p50):>6}  "
        f"p99 {report.ms(res.p99):>7} ms  errors {res.unexpected_errors()}  wrk {res.wrk_cpu_pct:3.0f}% CPU  "
        f"apps {res.app_cpu_us:4.0f} µs/req  redis {res.redis_cpu_us:3.0f} µs/req"
        + ("  POOL WRAPPED" if res.wrapped else "")
    )


#: What each setup's per-round ratio is taken against (same round): the receiver on one Redis against the
#: yardstick, the receiver on the cluster against the receiver on one Redis.
BASELINES = {"receiver, 1 Redis": "yardstick, 1 Redis", "receiver, 3-primary cluster": "receiver, 1 Redis"}


def ratios(measured: list[Measured], label: str) -> list[float]:
    """Per round: ``label``'s req/s over its baseline's in the same round."""
    baseline = BASELINES.get(label)
    by_round = {(m.label, m.index): m.result.rps for m in measured}
    return [
        by_round[(label, index)] / by_round[(baseline, index)]
        for index in sorted({m.index for m in measured})
        if baseline and (label, index) in by_round and by_round.get((baseline, index))
    ]


def table(measured: list[Measured]) -> str:
    rows = []
    for label, _app, _where in SETUPS:
        results = [m.result for m in measured if m.label == label]
        if not results:
            continue

        def median(key: str, results: list[Result] = results) -> float:
            return statistics.median(float(getattr(r, key)) for r in results)

        per_round = ratios(measured, label)
        rows.append(
            [
                label,
                " ".join(f"{r.rps:.0f}" for r in results),
                f"**{median('rps'):.0f}**",
                f"{BASELINES[label]}: "
                + " ".join(f"{ratio:.2f}" for ratio in per_round)
                + f", median **{statistics.median(per_round):.2f}**"
                if per_round
                else "-",
                f"{report.ms(median('p50'))} / {report.ms(median('p99'))}",
                sum(r.unexpected_errors() for r in results),
                f"{median('app_cpu_us'):.0f}",
                f"{median('redis_cpu_us'):.0f}",
                f"{median('wrk_cpu_pct'):.0f}",
                "yes" if any(r.wrapped for r in results) else "no",
            ]
        )
    header = [
        "setup (2 processes, 1 worker each)",
        "req/s per round",
        "median req/s",
        "ratio per round, against",
        "p50 / p99 ms",
        "errors",
        "apps CPU µs/req",
        "Redis CPU µs/req (all nodes)",
        "wrk CPU %",
        "pool wrapped",
    ]
    return report.table(header, rows)


def section(bench: Bench) -> str:
    measured = run(bench)
    bench.scale_out = measured
    title = (
        f"### Scale-out: json, 2 receiver processes, {CONNECTIONS} connections, "
        f"`[streams] partitions = {PARTITIONS}` (2 cores: CPU-bound)\n"
    )
    return f"{title}\n{table(measured)}\n"
