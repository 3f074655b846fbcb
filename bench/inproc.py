"""CPU per request of an ASGI app driven in-process, without an HTTP server: the app's own cost.

    .venv/bin/python bench/inproc.py [--requests 20000] [--concurrency 64] [--rounds 3] [--pool json]

The same pool of signed requests as the load rounds is handed to the app as ASGI messages by
``--concurrency`` tasks at once on uvloop, against a private redis-server. What is measured is the
process's CPU time (user + system) per request over a steady stretch, so other load on the machine
disturbs it far less than a throughput figure. The yardstick (unmodified) and the receiver are
measured in alternating rounds; Redis is flushed before each.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
import uvloop  # noqa: E402

from bench import pools, procs  # noqa: E402

Request = tuple[str, str, bytes, list[tuple[bytes, bytes]], bytes]


def parse_pool(path: Path) -> list[Request]:
    """(method, path, query, headers, body) of every request in a pool file."""
    parsed = []
    for raw in path.read_bytes().split(b"\0"):
        if not raw:
            continue
        head, _, body = raw.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        method, target, _version = lines[0].decode().split(" ")
        path_part, _, query = target.partition("?")
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers.append((name.strip().lower(), value.strip()))
        parsed.append((method, path_part, query.encode(), headers, body))
    return parsed


def scope_of(request: Request) -> dict[str, Any]:
    """A scope as uvicorn's httptools protocol builds it."""
    method, path, query, headers, _body = request
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": method,
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "headers": headers,
        "state": {},
    }


async def drive(
    app: Any, requests: list[Request], concurrency: int, warmup: int, redis_server: procs.Server
) -> tuple[float, float]:
    """CPU µs per request of this process and of Redis, over all but the first ``warmup`` requests."""
    position = 0
    done = 0
    marks: dict[str, float] = {}
    statuses: dict[int, int] = {}

    async def one(request: Request) -> None:
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                await asyncio.sleep(3600)
            sent = True
            return {"type": "http.request", "body": request[4], "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses[message["status"]] = statuses.get(message["status"], 0) + 1

        await app(scope_of(request), receive, send)

    async def worker() -> None:
        nonlocal position, done
        while position < len(requests):
            request = requests[position]
            position += 1
            await one(request)
            done += 1
            if done == warmup:
                marks["start"] = time.process_time()
                marks["redis"] = redis_server.cpu_seconds()
                marks["start_n"] = done

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.process_time() - marks["start"]
    redis_elapsed = redis_server.cpu_seconds() - marks["redis"]
    bad = {status: n for status, n in statuses.items() if status >= 300}
    if bad:
        print(f"  non-2xx answers: {bad}", file=sys.stderr)
    count = done - marks["start_n"]
    return 1e6 * elapsed / count, 1e6 * redis_elapsed / count


async def with_lifespan(app: Any, body: Callable[[], Any]) -> Any:
    """Run the app's lifespan start-up, ``body``, then its shutdown."""
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    await queue.put({"type": "lifespan.startup"})

    async def send(message: dict[str, Any]) -> None:
        if message["type"].startswith("lifespan.startup"):
            started.set_result(None)
        elif message["type"].startswith("lifespan.shutdown"):
            finished.set_result(None)

    task = asyncio.ensure_future(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, queue.get, send))
    await started
    try:
        return await body()
    finally:
        await queue.put({"type": "lifespan.shutdown"})
        await finished
        await task


def load_app(name: str) -> Any:
    if name == "receiver":
        from receiver.asgi import app

        return app()
    path = procs.yardstick_file() if name == "yardstick" else ROOT / "bench" / "yardstick_pooled.py"
    spec = importlib.util.spec_from_file_location(f"bench_app_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pool", default="json")
    parser.add_argument("--apps", default="yardstick,receiver")
    args = parser.parse_args(argv)
    from bench.run import write_config

    with tempfile.TemporaryDirectory(prefix="callstream-inproc-") as work:
        directory = Path(work)
        server = procs.start_redis(directory / "redis")
        try:
            os.environ["REDIS_URL"] = f"redis://127.0.0.1:{server.port}/0"
            os.environ["CALLSTREAM_CONFIG"] = str(write_config(directory, maxlen=1_000_000))
            pool = pools.build(directory, args.pool, max(args.requests // 3 + 1, 1000))
            requests = parse_pool(pool.path)[: args.requests]
            names = args.apps.split(",")
            apps = {name: load_app(name) for name in names}
            results: dict[str, list[float]] = {name: [] for name in names}
            redis_results: dict[str, list[float]] = {name: [] for name in names}
            flusher = redis.Redis(port=server.port)

            warmup = len(requests) // 5

            async def rounds() -> None:
                for index in range(args.rounds):
                    for name in names[index % len(names) :] + names[: index % len(names)]:
                        flusher.flushall()
                        app = apps[name]
                        us, redis_us = await with_lifespan(
                            app, lambda app=app: drive(app, requests, args.concurrency, warmup, server)
                        )
                        results[name].append(us)
                        redis_results[name].append(redis_us)
                        print(f"round {index} {name:10} {us:7.1f} µs CPU/request, Redis {redis_us:5.1f}", flush=True)

            uvloop.run(rounds())
            for name, values in results.items():
                redis_median = statistics.median(redis_results[name])
                print(f"{name:10} median {statistics.median(values):7.1f} µs CPU/request, Redis {redis_median:5.1f}")
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
