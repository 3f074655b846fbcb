"""The benchmark: the receiver against the yardstick, side by side, in one go.

    .venv/bin/python bench/run.py            # everything; rewrites the results part of docs/performance.md
    .venv/bin/python bench/run.py --quick    # a short smoke run of the harness; writes nothing

The yardstick is the shared one, unmodified (`procs.yardstick_file`). Both apps run under the same uvicorn
flags and worker count, against one private redis-server on a free port (never the shared one), loaded by
the same wrk with the same pool of signed requests. Rounds alternate between the apps (yardstick first in
even rounds, receiver first in odd ones) so that machine drift cancels out of the per-round ratio
receiver/yardstick, whose median is the verdict. Some scenarios also load the pool-matched yardstick
(`bench/yardstick_pooled.py`), reported as a second, labelled line.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `bench` and the project importable
    sys.path.insert(0, str(ROOT))

from bench import loadgen, pools, procs, report  # noqa: E402
from bench.loadgen import Result  # noqa: E402

APPS = ("yardstick", "receiver")
#: The parts after the load rounds, in the order they run.
PARTS = ("scale-out", "failover", "micro", "memory", "rss", "profile")
#: Apps of the scenarios that also carry the pool-matched yardstick's line.
WITH_POOLED = ("yardstick", "receiver", "pooled")


@dataclass(frozen=True, slots=True)
class Scenario:
    """One load shape. ``rate`` is a fraction of the receiver's measured maximum (both apps get the same rate)."""

    name: str
    pool: str
    setup: str = "1 worker"
    connections: int = 64
    rate: float = 0.0
    track: bool = False
    expected: frozenset[str] = frozenset()
    apps: tuple[str, ...] = APPS


#: Setups: (uvicorn workers, Redis append-only file with fsync every second).
SETUPS: dict[str, tuple[int, bool]] = {"1 worker": (1, False), "2 workers": (2, False), "1 worker, AOF": (1, True)}

SCENARIOS: tuple[Scenario, ...] = (
    Scenario("form", "form"),
    Scenario("json", "json", apps=WITH_POOLED),
    Scenario("mix", "mix", track=True, expected=frozenset({"401"})),
    Scenario("json @25%", "json", rate=0.25),
    Scenario("json @50%", "json", rate=0.50),
    Scenario("json @75%", "json", rate=0.75),
    Scenario("json c256", "json", connections=256),
    Scenario("json c1024", "json", connections=1024),
    Scenario("form", "form", setup="2 workers"),
    Scenario("json", "json", setup="2 workers", apps=WITH_POOLED),
    Scenario("json", "json", setup="1 worker, AOF"),
)


def write_config(directory: Path, maxlen: int, partitions: int = 1, name: str = "callstream.toml") -> Path:
    """The receiver's configuration: one verified source per pool provider, with the pools' secrets."""
    lines = [f"[streams]\nmaxlen = {maxlen}\npartitions = {partitions}\n", "[server]\nredis_max_connections = 64\n"]
    for provider, secret in pools.SECRETS.items():
        if provider not in pools.PROVIDERS:
            continue
        lines.append(
            f'[sources.{provider}]\nprovider = "{provider}"\nsecrets = ["{secret}"]\n'
            f'public_url = "{pools.public_url(provider)}"\n'
            # Pools are signed once, before the rounds: a wide window keeps their timestamps valid.
            "timestamp_tolerance_seconds = 86400\n"
        )
    path = directory / name
    path.write_text("\n".join(lines))
    return path


@dataclass
class Round:
    scenario: Scenario
    app: str
    index: int
    result: Result
    rate: float


class Bench:
    """Holds the pools, the work directory and every measured round."""

    def __init__(self, args: argparse.Namespace, directory: Path) -> None:
        self.args = args
        self.directory = directory
        self.rounds: list[Round] = []
        self.pools: dict[str, pools.Pool] = {}
        self.config = write_config(directory, maxlen=args.maxlen)
        self.versions: dict[str, str] = {}
        #: Results the targets table reads, filled by their parts.
        self.scale_out: list[Any] = []
        self.failover: list[Any] = []

    def pool(self, kind: str) -> pools.Pool:
        if kind not in self.pools:
            self.pools[kind] = pools.build(self.directory, kind, self.args.calls)
        return self.pools[kind]

    def receiver_max(self) -> float:
        done = [r.result.rps for r in self.rounds if r.app == "receiver" and r.scenario == SCENARIOS[1]]
        return statistics.median(done) if done else 1000.0

    def run_setup(self, setup: str, scenarios: list[Scenario]) -> None:
        workers, aof = SETUPS[setup]
        redis_server = procs.start_redis(self.directory / f"redis-{workers}-{aof}", appendonly=aof)
        self.versions["redis"] = redis_server.extra["version"]
        url = f"redis://127.0.0.1:{redis_server.port}/0"
        servers: dict[str, procs.Server] = {}
        try:
            for app in dict.fromkeys(app for scenario in scenarios for app in scenario.apps):
                servers[app] = procs.start_app(
                    app, workers=workers, redis_url=url, config=self.config, log=self.directory / f"{app}.log"
                )
                # Warm-up: open the Redis pool's connections, load the script, fill allocator caches.
                loadgen.run(
                    servers[app], redis_server, self.pool("json"), connections=64, duration=2, directory=self.directory
                )
            for scenario in scenarios:
                rate = scenario.rate * self.receiver_max() if scenario.rate else 0.0
                for index in range(self.args.rounds):
                    for app in round_order(scenario.apps, index):
                        result = loadgen.run(
                            servers[app],
                            redis_server,
                            self.pool(scenario.pool),
                            connections=scenario.connections,
                            duration=self.args.duration,
                            directory=self.directory,
                            rate=rate,
                            track=scenario.track,
                        )
                        self.rounds.append(Round(scenario, app, index, result, rate))
                        print(report.round_line(self.rounds[-1]), flush=True)
        finally:
            for server in servers.values():
                server.stop()
            redis_server.stop()


def round_order(apps: tuple[str, ...], index: int) -> tuple[str, ...]:
    """The apps rotated by one per round: with two, yardstick first in even rounds, receiver in odd ones; with
    three, each takes each place once every three rounds."""
    shift = index % len(apps)
    return apps[shift:] + apps[:shift]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short rounds, one of each; write nothing")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per scenario and app (default 3)")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per round (default 8)")
    parser.add_argument("--calls", type=int, default=40_000, help="calls per pool (default 40000)")
    parser.add_argument("--maxlen", type=int, default=1_000_000, help="transitions stream MAXLEN (default 1000000)")
    parser.add_argument("--only", action="append", default=[], help="only scenarios whose name contains this")
    parser.add_argument("--skip", action="append", default=[], help="skip parts: load, " + ", ".join(PARTS))
    parser.add_argument(
        "--scale-out",
        action="store_true",
        help="only the scale-out part (2 receivers, 1 Redis and a 3-primary cluster); write nothing",
    )
    parser.add_argument(
        "--failover", action="store_true", help="only the failover part (Redis Cluster, repeated kills); write nothing"
    )
    parser.add_argument("--rss-minutes", type=float, default=8.0, help="time budget of the RSS run (default 8)")
    parser.add_argument("--write", default=str(ROOT / "docs" / "performance.md"), help="results document")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.duration, args.calls, args.rss_minutes = 1, 3.0, 8000, 0.5
        args.write = ""
    for flag, part in ((args.scale_out, "scale-out"), (args.failover, "failover")):
        if flag:  # the other parts' results would be lost: this one is printed only
            args.skip = ["load", *(other for other in PARTS if other != part)]
            args.write = ""
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    loadgen.check_wrk()
    started = time.time()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="callstream-bench-") as work:
        bench = Bench(args, Path(work))
        sections: dict[str, str] = {}
        if "load" not in args.skip:
            for setup in SETUPS:
                chosen = [s for s in SCENARIOS if s.setup == setup and _wanted(s, args.only)]
                if chosen:
                    bench.run_setup(setup, chosen)
            sections["load"] = report.load_tables(bench.rounds)
            print(sections["load"])
        for part in PARTS:
            if part not in args.skip:
                sections[part] = _part(part, bench)
                print(sections[part], flush=True)
        targets = report.targets(bench.rounds, bench.scale_out, bench.failover)
        print(targets)
        environment = report.environment(bench.versions, load_before, os.getloadavg(), started, argv)
        print(environment)
        if args.write:
            report.write(Path(args.write), environment, {"targets": targets, **sections})
            print(f"wrote {args.write}")
    return 0


def _part(name: str, bench: Bench) -> str:
    """One of the parts after the load rounds; a failure is reported in its section, not fatal to the run."""
    from bench import failover, memory, micro, profile, scaleout

    quick = bench.args.quick
    try:
        if name == "scale-out":
            return scaleout.section(bench)
        if name == "failover":
            return failover.section(bench)
        if name == "micro":
            return report.micro_table(micro.run_all(quick=quick))
        if name == "memory":
            return memory.redis_section(bench.directory, calls=10_000 if quick else 100_000)
        if name == "rss":
            return memory.rss_section(bench, minutes=bench.args.rss_minutes)
        return profile.section(bench)
    except Exception as err:  # the other parts' figures are still worth writing down
        return f"### {name}\n\nThis part failed: `{type(err).__name__}: {err}`\n"


def _wanted(scenario: Scenario, only: list[str]) -> bool:
    label = f"{scenario.name} ({scenario.setup})"
    return not only or any(part in label for part in only)


if __name__ == "__main__":
    raise SystemExit(main())
