"""What the replay and transport defences cost on the hot path: Vobiz (URL+nonce signed) callbacks, each with
its own nonce, against one uvicorn worker, measured for two checkouts and two HTTP protocols.

A Vobiz request now spends its nonce at authentication: inside the same Redis step as its event when it
becomes one (no extra round trip), on its own only on paths that keep no event. This counts the Redis
commands per request (INFO commandstats) and measures requests per second, p99 and the app's CPU per
request with wrk, for ``--source`` checkouts (default: this one) and for uvicorn's own httptools protocol
and the guarded one `callstream serve` runs (receiver/transport.py), rounds alternating.

    python -m bench.security_cost --source /tmp/callstream-before --source . --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from bench import loadgen, pools, procs
from receiver.embedded import free_port

GUARDED = procs.RECEIVER_HTTP


def vobiz_pool(directory: Path, count: int) -> pools.Pool:
    """Every request of ``count`` answered Vobiz calls, signed V3 (a fresh nonce each), phase by phase."""
    scenarios = pools.calls("vobiz", count, "s")
    now = time.time()
    chunks = [
        pools._signed("vobiz", scenario.requests[phase], now)
        for phase in range(len(scenarios[0].requests))
        for scenario in scenarios
    ]
    path = directory / "vobiz.pool"
    path.write_bytes(b"\0".join(chunks) + b"\0")
    return pools.Pool(path=path, provider="vobiz", requests=len(chunks), calls=count, mix={"applied": len(chunks)})


def start(source: Path, http: str, redis_url: str, directory: Path) -> procs.Server:
    port = free_port()
    config = directory / "callstream.toml"
    config.write_text(
        '[streams]\nmaxlen = 1000000\n[sources.vobiz]\nprovider = "vobiz"\n'
        f'secrets = ["{pools.SECRETS["vobiz"]}"]\npublic_url = "{pools.public_url("vobiz")}"\n'
    )
    env = {**os.environ, "REDIS_URL": redis_url, "CALLSTREAM_CONFIG": str(config), "PYTHONPATH": str(source)}
    flags = procs.uvicorn_flags("receiver", http)
    command = [sys.executable, "-m", "uvicorn", "receiver.asgi:app", "--factory", "--port", str(port), *flags]
    log = directory / "app.log"
    with log.open("ab") as out:
        process = subprocess.Popen(command, cwd=source, env=env, stdout=out, stderr=out)
    server = procs.Server(process, port, "receiver", log)
    procs.wait_listening(server, 1)
    return server


def commands(port: int) -> dict[str, int]:
    client = redis.Redis(port=port)
    stats = client.info("commandstats")
    client.close()
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--source", type=Path, action="append", help="checkout to run (repeatable; default: this one)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--calls", type=int, default=20000)
    args = parser.parse_args()
    sources = [path.resolve() for path in (args.source or [procs.ROOT])]
    results: dict[str, list[loadgen.Result]] = {}
    per_request: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as work:
        directory = Path(work)
        pool = vobiz_pool(directory, args.calls)
        redis_server = procs.start_redis(directory / "redis")
        url = f"redis://127.0.0.1:{redis_server.port}/0"
        try:
            for _ in range(args.rounds):
                for source in sources:
                    for http in ("httptools", GUARDED):
                        if http == GUARDED and not (source / "receiver" / "transport.py").exists():
                            continue
                        label = f"{source.name} {http.rsplit(':', 1)[-1]}"
                        loadgen.flush(redis_server)
                        app = start(source, http, url, directory)
                        try:
                            before = commands(redis_server.port)
                            result = loadgen.run(
                                app, redis_server, pool, connections=64, duration=args.duration, directory=directory
                            )
                            after = commands(redis_server.port)
                        finally:
                            app.stop()
                        results.setdefault(label, []).append(result)
                        per_request[label] = {
                            name: round((after[name] - before.get(name, 0)) / max(result.requests, 1), 3)
                            for name in after
                            if after[name] != before.get(name, 0) and name not in ("info", "flushall")
                        }
        finally:
            redis_server.stop()
    print(f"{'run':<42} {'req/s':>8} {'p99 ms':>7} {'app CPU us/req':>15}  Redis commands per request")
    for label, rounds in results.items():
        rps = statistics.median(r.rps for r in rounds)
        p99 = statistics.median(r.p99 for r in rounds) / 1000
        cpu = statistics.median(r.app_cpu_us for r in rounds)
        print(f"{label:<42} {rps:>8.0f} {p99:>7.1f} {cpu:>15.0f}  {per_request[label]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
