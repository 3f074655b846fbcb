"""One load round: wrk replays a pool against one app; CPU of wrk, the app and Redis is read over a steady window."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
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


def script_for(pool: Pool, rate: float, track: bool, directory: Path) -> Path:
    header = f'POOL = "{pool.path}"\nRATE = {rate:.1f}\nTRACK = {"true" if track else "false"}\nTHREADS = 1\n'
    path = directory / f"{pool.path.stem}-{int(rate)}-{int(track)}.lua"
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
    flush(redis_server)
    script = script_for(pool, rate, track, directory)
    command = [
        check_wrk(),
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
    ]
    command.append(f"http://127.0.0.1:{app.port}/")
    window: dict[str, float] = {}

    def sample(process: subprocess.Popen[str]) -> None:
        # A steady window: after wrk has read its pool and opened its connections, before it stops.
        time.sleep(1.0)
        window["start"] = time.monotonic()
        window["wrk0"], window["app0"], window["redis0"] = (
            cpu_seconds(process.pid),
            app.cpu_seconds(),
            redis_server.cpu_seconds(),
        )
        time.sleep(max(0.5, duration - 1.5))
        window["wrk1"], window["app1"], window["redis1"] = (
            cpu_seconds(process.pid),
            app.cpu_seconds(),
            redis_server.cpu_seconds(),
        )
        window["end"] = time.monotonic()

    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sampler = threading.Thread(target=sample, args=(process,))
    sampler.start()
    output, _ = process.communicate(timeout=duration + 120)
    sampler.join()
    line = next((row for row in output.splitlines() if row.startswith("BENCH-RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result:\n{output}")
    data = json.loads(line.removeprefix("BENCH-RESULT "))
    seconds = data["duration_us"] / 1e6
    rps = data["requests"] / seconds
    span = window["end"] - window["start"]
    served = max(rps * span, 1.0)
    socket_errors = data["connect"] + data["read"] + data["write"] + data["timeout"]
    return Result(
        requests=data["requests"],
        seconds=seconds,
        p50=data["p50"],
        p99=data["p99"],
        p999=data["p999"],
        socket_errors=socket_errors,
        non_2xx=data["status"],
        statuses={str(status): n for status, n in data["statuses"].items()},
        wrapped=bool(data["wrapped"]),
        wrk_cpu_pct=100 * (window["wrk1"] - window["wrk0"]) / span,
        app_cpu_us=1e6 * (window["app1"] - window["app0"]) / served,
        redis_cpu_us=1e6 * (window["redis1"] - window["redis0"]) / served,
    )
