"""Where each app's CPU goes: py-spy samples of one worker under load, the yardstick's and the receiver's.

Each sample is one stack of the worker's thread while it was on CPU (py-spy leaves idle samples out). The
component table attributes each sample to the code it was spent in (its leaf frame) and converts shares
into microseconds per request with the app's CPU per request measured in the same round, so the two apps
can be compared part by part: what the receiver spends that the yardstick does not, and what it saves.
The stage table says, for the receiver, how much of its CPU ran under each stage (inclusive).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from bench import loadgen, procs, report

if TYPE_CHECKING:
    from bench.run import Bench

#: Leaf frame file → component, first match wins.
COMPONENTS: tuple[tuple[str, str], ...] = (
    ("uvicorn/", "uvicorn (HTTP parsing, ASGI messages, socket writes)"),
    ("receiver/transport.py", "receiver's HTTP protocol (limits; the answer's one socket write)"),
    ("asyncio/", "asyncio (tasks, futures, streams, timeouts)"),
    ("starlette/", "Starlette (middleware, routing, Request, Response)"),
    ("redis/", "redis-py (pool, command packing, parsing)"),
    ("yardstick_app.py", "yardstick handler (body parse, XADD call)"),
    ("receiver/signatures/", "signature check"),
    ("hmac.py", "signature check"),
    ("receiver/providers/", "normalization"),
    ("receiver/delivery.py", "normalization"),
    ("statemachine/store.py", "store step (arguments, event JSON, reply)"),
    ("statemachine/events.py", "store step (arguments, event JSON, reply)"),
    ("statemachine/keys.py", "store step (arguments, event JSON, reply)"),
    ("statemachine/partitions.py", "store step (arguments, event JSON, reply)"),
    ("statemachine/batching.py", "batching (one write per loop turn)"),
    ("statemachine/pipelined.py", "batching (one write per loop turn)"),
    ("receiver/routes/", "webhook endpoint (ASGI)"),
    ("receiver/responses.py", "webhook endpoint (ASGI)"),
    ("receiver/app.py", "webhook endpoint (ASGI)"),
    ("receiver/pipeline.py", "pipeline (verify, normalize, apply, count)"),
    ("receiver/observe.py", "request observer, metrics, log context"),
    ("receiver/metrics.py", "request observer, metrics, log context"),
    ("receiver/logs.py", "request observer, metrics, log context"),
    ("prometheus_client/", "request observer, metrics, log context"),
    ("<string>", "dataclass construction (events, results)"),
    ("dataclasses.py", "dataclass construction (events, results)"),
)
OTHER = "other (interpreter, C extensions, standard library)"


def summarize(raw: Path) -> tuple[int, dict[str, float]]:
    """(samples, leaf share per component) from a py-spy ``--format raw`` file."""
    components: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        leaf = stack.rsplit(";", 1)[-1]
        components[next((name for needle, name in COMPONENTS if needle in leaf), OTHER)] += count
    return total, ({name: 100 * n / total for name, n in components.most_common()} if total else {})


def record(bench: Bench, app_name: str, scenario_pool: str = "json", seconds: float = 8.0) -> tuple[Path, float]:
    """One round (1 worker, 64 connections) of ``app_name`` with py-spy attached: the raw samples, and the
    app's CPU µs per request in that round."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        raise FileNotFoundError("py-spy is not installed (`.venv/bin/pip install -e '.[bench]'`)")
    directory = bench.directory
    redis_server = procs.start_redis(directory / f"redis-profile-{app_name}")
    url = f"redis://127.0.0.1:{redis_server.port}/0"
    app = procs.start_app(app_name, workers=1, redis_url=url, config=bench.config, log=directory / "profile.log")
    raw = directory / f"profile-{app_name}-{scenario_pool}.txt"
    try:
        pool = bench.pool(scenario_pool)
        loadgen.run(app, redis_server, pool, connections=64, duration=2, directory=directory)
        spy = subprocess.Popen(
            [py_spy, "record", "--format", "raw", "--rate", "250", "--duration", str(int(seconds)), "--nonblocking"]
            + ["--pid", str(app.workers()[0]), "--output", str(raw)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        result = loadgen.run(app, redis_server, pool, connections=64, duration=seconds + 1, directory=directory)
        spy.wait(30)
    finally:
        app.stop()
        redis_server.stop()
    return raw, result.app_cpu_us


def section(bench: Bench) -> str:
    parts = ["### Where each app's CPU goes (py-spy, 1 worker, 64 connections)\n"]
    for kind in ("json", "form"):
        summaries = {}
        for app_name in ("yardstick", "receiver"):
            raw, cpu_us = record(bench, app_name, kind)
            summaries[app_name] = (*summarize(raw), cpu_us)
        provider = bench.pool(kind).provider
        names = list(dict.fromkeys([*summaries["receiver"][1], *summaries["yardstick"][1]]))
        rows = []
        for name in names:
            cells = [name]
            for app_name in ("yardstick", "receiver"):
                _total, components, cpu_us = summaries[app_name]
                share = components.get(name, 0.0)
                cells.append(f"{share:.1f} % · {share * cpu_us / 100:.0f} µs" if share else "-")
            rows.append(cells)
        rows.append(
            [
                "**all (the app's CPU per request in the profiled round)**",
                f"{summaries['yardstick'][2]:.0f} µs",
                f"{summaries['receiver'][2]:.0f} µs",
            ]
        )
        samples = ", ".join(f"{app_name} {summaries[app_name][0]}" for app_name in ("yardstick", "receiver"))
        parts.append(f"**{kind} ({provider})**, samples: {samples}\n")
        parts.append(report.table(["spent in (leaf frame)", "yardstick", "receiver"], rows))
        parts.append("")
    return "\n".join(parts) + "\n"
