"""One load round: wrk replays a pool against one app; CPU of wrk, the app and Redis is read over a steady window."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from bench.pools import Pool
from bench.procs import Server, cpu_seconds

LUA = Path(__file__).resolve().parent / "wrk" / "pool.lua"
INSTALL_HINT = "wrk is not installed: apt-get update && apt-get install -y wrk (Debian/Ubuntu package 'wrk')"


def check_wrk() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit(INSTALL_HINT)
    return found


@dataclass
class Result:
    """What one round measured. Latencies in microseconds; CPU per request in microseconds."""

    requests: int
    seconds: float
    p50: int
    p99: int
    p999: int
    socket_errors: int
    non_2xx: int
    statuses: dict[str, int]
    wrapped: bool
    wrk_cpu_pct: float
    app_cpu_us: float
    redis_cpu_us: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def unexpected_errors(self, expected_statuses: frozenset[str] = frozenset()) -> int:
        """Socket errors plus non-2xx answers other than the ones the scenario provokes on purpose."""
        provoked = sum(n for status, n in self.statuses.items() if status in expected_statuses)
        return self.socket_errors + self.non_2xx - provoked


def script_for(pool: Pool, rate: float, track: bool, directory: Path, shard: int = 0, shards: int = 1) -> Path:
    """The pool script with its options; with ``shards`` > 1 it sends every ``shards``-th request from ``shard``."""
    header = f'POOL = "{pool.path}"\nRATE = {rate:.1f}\nTRACK = {"true" if track else "false"}\nTHREADS = 1\n'
    header += f"SHARD = {shard}\nSHARDS = {shards}\n"
    path = directory / f"{pool.path.stem}-{int(rate)}-{int(track)}-{shard}of{shards}.lua"
    path.write_text(header + LUA.read_text())
    return path


def flush(redis_server: Server) -> None:
    client = redis.Redis(port=redis_server.port)
    client.flushall()
    client.close()


def run(
    app: Server,
    redis_server: Server,
    pool: Pool,
    *,
    connections: int,
    duration: float,
    directory: Path,
    rate: float = 0.0,
    track: bool = False,
) -> Result:
    """Flush the private Redis, then load ``app`` for ``duration`` seconds with one wrk thread."""
    return run_many(
        [app],
        [redis_server],
        pool,
        connections=connections,
        duration=duration,
        directory=directory,
        rate=rate,
        track=track,
    )


def run_many(
    apps: Sequence[Server],
    redis_servers: Sequence[Server],
    pool: Pool,
    *,
    connections: int,
    duration: float,
    directory: Path,
    rate: float = 0.0,
    track: bool = False,
) -> Result:
    """Flush every Redis node, then load the ``apps`` at once, one wrk per app, each with its share of the
    pool (every call's requests go to one app) and of the ``connections``.

    Counts are summed over the wrk instances; latency percentiles are the highest of the instances' (one
    wrk cannot merge another's histogram); CPU per request is the sum over all apps and all Redis nodes.
    """
    for redis_server in redis_servers:
        flush(redis_server)
    shards = len(apps)
    commands = [
        [
            check_wrk(),
            "-t1",
            f"-c{connections // shards}",
            f"-d{max(1, round(duration))}s",
            "--timeout",
            "10s",
            "-s",
            str(script_for(pool, rate / shards, track, directory, shard, shards)),
            f"http://127.0.0.1:{app.port}/",
        ]
        for shard, app in enumerate(apps)
    ]
    window: dict[str, float] = {}

    def cpu(processes: list[subprocess.Popen[str]]) -> tuple[float, float, float]:
        return (
            sum(cpu_seconds(process.pid) for process in processes),
            sum(app.cpu_seconds() for app in apps),
            sum(redis_server.cpu_seconds() for redis_server in redis_servers),
        )

    def sample(processes: list[subprocess.Popen[str]]) -> None:
        # A steady window: after wrk has read its pool and opened its connections, before it stops.
        time.sleep(1.0)
        window["start"] = time.monotonic()
        window["wrk0"], window["app0"], window["redis0"] = cpu(processes)
        time.sleep(max(0.5, duration - 1.5))
        window["wrk1"], window["app1"], window["redis1"] = cpu(processes)
        window["end"] = time.monotonic()

    processes = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for command in commands
    ]
    sampler = threading.Thread(target=sample, args=(processes,))
    sampler.start()
    outputs = [process.communicate(timeout=duration + 120)[0] for process in processes]
    sampler.join()
    results = [_parse(output) for output in outputs]
    seconds = max(data["duration_us"] for data in results) / 1e6
    requests = sum(data["requests"] for data in results)
    span = window["end"] - window["start"]
    served = max(requests / seconds * span, 1.0)
    statuses: dict[str, int] = {}
    for data in results:
        for status, n in data["statuses"].items():
            statuses[str(status)] = statuses.get(str(status), 0) + n
    return Result(
        requests=requests,
        seconds=seconds,
        p50=max(data["p50"] for data in results),
        p99=max(data["p99"] for data in results),
        p999=max(data["p999"] for data in results),
        socket_errors=sum(data["connect"] + data["read"] + data["write"] + data["timeout"] for data in results),
        non_2xx=sum(data["status"] for data in results),
        statuses=statuses,
        wrapped=any(data["wrapped"] for data in results),
        wrk_cpu_pct=100 * (window["wrk1"] - window["wrk0"]) / span,
        app_cpu_us=1e6 * (window["app1"] - window["app0"]) / served,
        redis_cpu_us=1e6 * (window["redis1"] - window["redis0"]) / served,
    )


def _parse(output: str) -> dict[str, Any]:
    line = next((row for row in output.splitlines() if row.startswith("BENCH-RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result:\n{output}")
    data: dict[str, Any] = json.loads(line.removeprefix("BENCH-RESULT "))
    return data
