"""Where a receiver worker's CPU goes under load: py-spy samples of one round, summarized by stage.

Each sample is one stack of the worker's thread while it was on CPU (py-spy leaves idle samples out).
A stage's share is the fraction of samples with one of its frames anywhere on the stack (inclusive);
the leaf table says which package the CPU was finally spent in.
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

#: Stage → substrings of "function (file:line)" frames that belong to it.
STAGES: dict[str, tuple[str, ...]] = {
    "signature check (adapter verify)": ("verify (receiver/providers/", "receiver/signatures/"),
    "normalization (adapter normalize)": ("normalize (receiver/providers/",),
    "normalization + signature": (
        "verify (receiver/providers/",
        "receiver/signatures/",
        "normalize (receiver/providers/",
    ),
    "event to JSON (CallEvent.to_json)": ("to_json (statemachine/events.py",),
    "store apply (args, Redis client, batching)": ("statemachine/store.py",),
    "Redis client library (redis-py)": ("redis/",),
    "webhook route (body, headers, delivery)": ("receiver/routes/webhooks.py",),
    "response rendering": ("receiver/responses.py",),
}

#: Leaf frame file → package, first match wins.
LEAVES: tuple[tuple[str, str], ...] = (
    ("receiver/signatures/", "receiver: signatures"),
    ("receiver/providers/", "receiver: providers"),
    ("receiver/", "receiver: other"),
    ("statemachine/", "statemachine"),
    ("redis/", "redis-py"),
    ("starlette/", "starlette"),
    ("uvicorn/", "uvicorn"),
    ("asyncio/", "asyncio"),
    ("dataclasses.py", "dataclasses"),
    ("urllib/", "urllib"),
    ("hmac.py", "hmac"),
    ("datetime", "datetime"),
)


def summarize(raw: Path) -> tuple[int, dict[str, float], dict[str, float]]:
    """(samples, inclusive share per stage, leaf share per package) from a py-spy ``--format raw`` file."""
    stages: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        for stage, needles in STAGES.items():
            if any(needle in stack for needle in needles):
                stages[stage] += count
        leaf = stack.rsplit(";", 1)[-1]
        leaves[next((name for needle, name in LEAVES if needle in leaf), "other (C extensions, interpreter)")] += count
    share = {name: 100 * stages[name] / total for name in STAGES} if total else {}
    leaf_share = {name: 100 * n / total for name, n in leaves.most_common()} if total else {}
    return total, share, leaf_share


def record(bench: Bench, scenario_pool: str = "json", seconds: float = 8.0) -> Path | None:
    """Run one receiver round (1 worker, 64 connections) with py-spy attached; returns the raw samples."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        return None
    directory = bench.directory
    redis_server = procs.start_redis(directory / "redis-profile")
    url = f"redis://127.0.0.1:{redis_server.port}/0"
    app = procs.start_app("receiver", workers=1, redis_url=url, config=bench.config, log=directory / "profile.log")
    raw = directory / f"profile-{scenario_pool}.txt"
    try:
        pool = bench.pool(scenario_pool)
        loadgen.run(app, redis_server, pool, connections=64, duration=2, directory=directory)
        spy = subprocess.Popen(
            [py_spy, "record", "--format", "raw", "--rate", "250", "--duration", str(int(seconds)), "--nonblocking"]
            + ["--pid", str(app.workers()[0]), "--output", str(raw)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        loadgen.run(app, redis_server, pool, connections=64, duration=seconds + 1, directory=directory)
        spy.wait(30)
    finally:
        app.stop()
        redis_server.stop()
    return raw if raw.exists() else None


def section(bench: Bench) -> str:
    parts = ["### Where the receiver's CPU goes (py-spy, 1 worker, 64 connections)\n"]
    for kind in ("json", "form"):
        raw = record(bench, kind)
        if raw is None:
            return "py-spy is not installed (`.venv/bin/pip install -e '.[bench]'`): no profile.\n"
        total, stages, leaves = summarize(raw)
        provider = bench.pool(kind).provider
        parts.append(f"**{kind} ({provider})**, {total} samples\n")
        parts.append(
            report.table(["stage (inclusive)", "% of CPU samples"], [[k, f"{v:.1f}"] for k, v in stages.items()])
        )
        parts.append("")
        parts.append(
            report.table(["spent in (leaf frame)", "% of CPU samples"], [[k, f"{v:.1f}"] for k, v in leaves.items()])
        )
        parts.append("")
    return "\n".join(parts) + "\n"
