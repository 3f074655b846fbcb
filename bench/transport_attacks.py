"""Hostile clients against one `callstream serve`: what they cost the server (RSS) and how long it holds them.

Starts a private redis-server and ``callstream serve`` (from ``--source``, a checkout of the code to run,
default this one) and runs, one after the other:

- **header flood**: one connection sends a request line then 1 KiB headers, up to ``--header-mb`` MiB;
- **trickle**: ``--trickle`` connections each send a request's headers one byte per second, as many more
  send nothing at all, and as many more send full headers then a body one byte per second;
- **connection flood**: ``--flood`` connections opened and left silent;
- **413 under --workers 2**: bodies of 3 MiB and 8 MiB (over the 256 KiB limit), sent whole before the
  answer is read (as ``http.client`` does), ``--rounds`` times each with ``Connection: close`` and with
  keep-alive: how many clients read the 413 and how many saw the connection reset instead.

Worker RSS is read from /proc (VmRSS before, VmHWM peak after). Held times are capped at ``--cap`` seconds.

    python -m bench.transport_attacks                                 # this checkout
    python -m bench.transport_attacks --source /tmp/callstream-old    # another checkout, same tools
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import procs
from receiver.embedded import free_port

CONFIG = '[server]\nmax_body_bytes = 262144\n\n[sources.vobiz]\nprovider = "vobiz"\nverify = false\n'
REQUEST_HEAD = b"POST /webhooks/vobiz HTTP/1.1\r\nHost: 127.0.0.1\r\n"


def start_serve(source: Path, workers: int, redis_url: str, directory: Path) -> procs.Server:
    port = free_port()
    config = directory / "callstream.toml"
    config.write_text(CONFIG)
    env = {**os.environ, "REDIS_URL": redis_url, "PYTHONPATH": str(source), "CALLSTREAM_LOG_LEVEL": "WARNING"}
    command = [sys.executable, "-m", "receiver.cli", "serve", "--config", str(config), "--port", str(port)]
    command += ["--workers", str(workers)]
    log = directory / f"serve-{workers}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(command, cwd=source, env=env, stdout=out, stderr=out)
    server = procs.Server(process, port, "receiver", log)
    procs.wait_listening(server, workers)
    return server


def memory(server: procs.Server) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of the worker processes, in KiB, summed."""
    totals = {"VmRSS": 0, "VmHWM": 0}
    for pid in server.workers():
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in totals:
                totals[name] += int(value.split()[0])
    return totals


async def header_flood(port: int, megabytes: int) -> dict[str, object]:
    """One connection sending headers until the server stops it (or ``megabytes`` are sent)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(REQUEST_HEAD)
    line = b"X-Filler: " + b"a" * 1012 + b"\r\n"
    sent = 0
    started = time.monotonic()
    try:
        while sent < megabytes * 1024 * 1024:
            writer.write(line * 64)
            await writer.drain()
            sent += len(line) * 64
    except (ConnectionError, OSError):
        pass
    answer = b""
    try:
        answer = await asyncio.wait_for(reader.read(200), 5)
    except (TimeoutError, ConnectionError, OSError):
        pass
    writer.close()
    status = answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP/1.1") else "none"
    return {"sent_mib": round(sent / 1048576, 1), "answer": status, "seconds": round(time.monotonic() - started, 1)}


async def held(port: int, kind: str, cap: float) -> float:
    """Seconds until the server closes a connection sending ``kind`` (trickled headers, nothing, a trickled body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    if kind == "body":
        writer.write(REQUEST_HEAD + b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n")
    # Headers that never end: the request line, then one header value growing a byte a second.
    payload = REQUEST_HEAD + b"X-Slow: " if kind == "headers" else b""

    async def trickle() -> None:
        index = 0
        while kind != "idle":
            await asyncio.sleep(1)
            writer.write(payload[index : index + 1] or b"a")
            await writer.drain()
            index += 1

    sender = asyncio.ensure_future(trickle())
    try:
        while time.monotonic() - started < cap:
            data = await asyncio.wait_for(reader.read(4096), cap)
            if not data:
                break
    except (TimeoutError, ConnectionError, OSError):
        pass
    finally:
        sender.cancel()
        writer.close()
    return min(time.monotonic() - started, cap)


async def trickle_attack(port: int, count: int, cap: float) -> dict[str, object]:
    results = {}
    for kind in ("headers", "idle", "body"):
        results[kind] = asyncio.ensure_future(asyncio.gather(*(held(port, kind, cap) for _ in range(count))))
    report: dict[str, object] = {}
    for kind, future in results.items():
        times = await future
        report[kind] = {"median_s": round(statistics.median(times), 1), "max_s": round(max(times), 1)}
    return report


async def connection_flood(port: int, count: int) -> dict[str, int]:
    """Open ``count`` silent connections; one second later, how many the server still holds, and how many it
    answered and closed at once."""
    connections = []
    failed = 0
    for _ in range(count):
        try:
            connections.append(await asyncio.open_connection("127.0.0.1", port))
        except OSError:
            failed += 1
    await asyncio.sleep(1)

    async def fate(reader: asyncio.StreamReader) -> str:
        try:
            data = await asyncio.wait_for(reader.read(64), 0.5)
        except TimeoutError:
            return "held"
        except (ConnectionError, OSError):
            return "reset"
        return "answered 503" if data.startswith(b"HTTP/1.1 503") else "closed" if not data else "answered"

    fates = await asyncio.gather(*(fate(reader) for reader, _ in connections))
    for _, writer in connections:
        writer.close()
    report = {"opened": len(connections), "failed": failed}
    for name in sorted(set(fates)):
        report[name] = fates.count(name)
    return report


def oversized(port: int, size: int, keep_alive: bool) -> str:
    """Send a ``size``-byte body whole, then read the answer: its status, or the error met instead."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if not keep_alive:
        headers["Connection"] = "close"
    try:
        connection.request("POST", "/webhooks/vobiz", body=b"x" * size, headers=headers)
        return str(connection.getresponse().status)
    except OSError as err:
        return type(err).__name__
    finally:
        connection.close()


def oversized_attack(port: int, rounds: int) -> dict[str, dict[str, int]]:
    report: dict[str, dict[str, int]] = {}
    for size_mib in (3, 8):
        for keep_alive in (False, True):
            outcomes: dict[str, int] = {}
            for _ in range(rounds):
                outcome = oversized(port, size_mib * 1024 * 1024, keep_alive)
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
            report[f"{size_mib} MiB {'keep-alive' if keep_alive else 'close'}"] = outcomes
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--source", type=Path, default=procs.ROOT, help="checkout whose receiver to run")
    parser.add_argument("--header-mb", type=int, default=51)
    parser.add_argument("--trickle", type=int, default=40)
    parser.add_argument("--flood", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--cap", type=float, default=75.0)
    args = parser.parse_args()
    socket.setdefaulttimeout(60)
    with tempfile.TemporaryDirectory() as work:
        directory = Path(work)
        redis_server = procs.start_redis(directory / "redis")
        url = f"redis://127.0.0.1:{redis_server.port}/0"
        try:
            server = start_serve(args.source.resolve(), 1, url, directory)
            try:
                print(f"source {args.source}  one worker, memory before: {memory(server)} KiB")
                print("header flood:", asyncio.run(header_flood(server.port, args.header_mb)), memory(server))
                print("trickle (held seconds):", asyncio.run(trickle_attack(server.port, args.trickle, args.cap)))
                print("memory after trickle:", memory(server))
                print("connection flood:", asyncio.run(connection_flood(server.port, args.flood)), memory(server))
            finally:
                server.stop()
            server = start_serve(args.source.resolve(), 2, url, directory)
            try:
                print("413 under --workers 2:", oversized_attack(server.port, args.rounds))
            finally:
                server.stop()
        finally:
            redis_server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
