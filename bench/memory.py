"""Memory: Redis bytes per tracked call and per stream entry, and the receiver's RSS over a long run."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis

from bench import loadgen, pools, procs, report
from receiver.delivery import Delivery
from receiver.providers import PROVIDERS
from receiver.settings import Source
from statemachine.events import CallEvent
from statemachine.keys import Keys
from statemachine.store import CallStore, NonceClaim, Retention

if TYPE_CHECKING:
    from bench.run import Bench

PHASES = {1: "after its first event", 2: "active (two events)", 3: "ended (three events)"}


def _events(provider: str, calls: int) -> list[list[CallEvent]]:
    """The calls' events by phase, normalized by the provider's own adapter from the fixture bodies."""
    adapter = PROVIDERS[provider]
    source = Source(name=provider, provider=provider, verify=False, public_url=pools.public_url(provider))
    scenarios = pools.calls(provider, calls, "mem")
    now = time.time()
    phases: list[list[CallEvent]] = []
    for phase in range(len(scenarios[0].requests)):
        batch = []
        for scenario in scenarios:
            request = scenario.requests[phase]
            delivery = Delivery(
                source, request.body, {"content-type": request.content_type}, source.public_url or "", now
            )
            batch.extend(adapter.normalize(delivery))
        phases.append(batch)
    return phases


def _nonce(index: int) -> str:
    return f"{index:020d}"


async def _measure(url: str, provider: str, calls: int, nonces: bool) -> list[dict[str, Any]]:
    client = aioredis.Redis.from_url(url)
    keys = Keys()
    store = CallStore(client, keys, Retention())
    await client.flushall()
    rows = []
    base = int((await client.info("memory"))["used_memory"])
    phases = _events(provider, calls)
    sequence = 0
    for number, events in enumerate(phases, start=1):
        for start in range(0, len(events), 512):
            chunk = events[start : start + 512]
            # A Vobiz request spends its nonce with the request's fingerprint (32 hex digits) as the mark.
            claims = [
                NonceClaim(
                    provider, (_nonce(sequence + offset),), f"{sequence + offset:032x}", store.retention.nonce_ms
                )
                if nonces
                else None
                for offset in range(len(chunk))
            ]
            sequence += len(chunk)
            await asyncio.gather(*(store.apply(e, claim=c) for e, c in zip(chunk, claims, strict=True)))
        used = int((await client.info("memory"))["used_memory"])
        sample = [keys.call(provider, e.call_id) for e in events[:: max(1, len(events) // 500)]]
        hash_bytes = [await client.memory_usage(key, samples=0) or 0 for key in sample]
        stream = keys.transitions()
        entries = await client.xlen(stream)
        stream_bytes = await client.memory_usage(stream, samples=0) or 0
        nonce_keys = [key async for key in client.scan_iter(match=keys.nonce(provider, "*"), count=1000)][:500]
        nonce_bytes = [await client.memory_usage(key, samples=0) or 0 for key in nonce_keys]
        rows.append(
            {
                "provider": provider,
                "phase": PHASES.get(number, f"after {number} events"),
                "hash": sum(hash_bytes) / len(hash_bytes),
                "nonces": (sum(nonce_bytes) / len(nonce_bytes) * number) if nonce_bytes else 0.0,
                "total": (used - base) / calls,
                "entry": stream_bytes / entries if entries else 0.0,
                "entries": entries,
            }
        )
    await client.flushall()
    await client.aclose()
    return rows


def redis_section(directory: Path, calls: int) -> str:
    server = procs.start_redis(directory / "redis-memory")
    url = f"redis://127.0.0.1:{server.port}/0"
    try:
        rows = asyncio.run(_measure(url, "minivoice", calls, nonces=False))
        rows += asyncio.run(_measure(url, "vobiz", calls, nonces=True))
    finally:
        server.stop()
    body = [
        [
            row["provider"],
            row["phase"],
            f"{row['hash']:.0f}",
            f"{row['nonces']:.0f}" if row["nonces"] else "-",
            f"{row['total']:.0f}",
            f"{row['entry']:.0f}",
            row["entries"],
        ]
        for row in rows
    ]
    return (
        f"### Redis memory for {calls:,} calls (Redis {server.extra['version']})\n\n"
        + report.table(
            [
                "provider",
                "call",
                "call hash bytes (MEMORY USAGE)",
                "nonce marks bytes per call",
                "used_memory growth per call (hash + nonces + stream)",
                "stream bytes per entry",
                "stream entries",
            ],
            body,
        )
        + "\n"
    )


def rss_section(bench: Bench, minutes: float, target: int = 1_000_000) -> str:
    """Load one receiver worker until ``target`` requests or ``minutes`` pass; RSS after each chunk."""
    directory = bench.directory
    redis_server = procs.start_redis(directory / "redis-rss")
    url = f"redis://127.0.0.1:{redis_server.port}/0"
    app = procs.start_app("receiver", workers=1, redis_url=url, config=bench.config, log=directory / "rss.log")
    pool = bench.pool("json")
    worker = app.workers()[0]
    samples: list[tuple[int, int]] = [(0, procs.rss_bytes(worker))]
    served, chunk, deadline = 0, 5.0, time.monotonic() + minutes * 60
    try:
        while served < target and time.monotonic() < deadline:
            # Each chunk replays the pool against a flushed Redis: every request a real transition.
            result = loadgen.run(app, redis_server, pool, connections=64, duration=chunk, directory=directory)
            served += result.requests
            samples.append((served, procs.rss_bytes(worker)))
            chunk = max(3.0, min(30.0, 0.8 * pool.requests / max(result.rps, 1.0)))
    finally:
        app.stop()
        redis_server.stop()
    half = next((rss for count, rss in samples if count >= served / 2), samples[-1][1])
    growth = 100 * (samples[-1][1] - half) / half if half else 0.0
    rows = [[f"{count:,}", f"{rss / 2**20:.1f}"] for count, rss in samples]
    reached = "the target" if served >= target else f"{served:,} requests within the {minutes:g}-minute budget"
    return (
        f"### Receiver RSS under sustained load (1 worker; {reached})\n\n"
        + report.table(["requests served", "worker RSS MiB"], rows)
        + f"\n\nGrowth from {served / 2:,.0f} to {served:,} requests: **{growth:+.1f} %**.\n"
    )


def main() -> int:  # pragma: no cover - manual entry point
    import tempfile

    with tempfile.TemporaryDirectory() as work:
        print(redis_section(Path(work), 100_000))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
