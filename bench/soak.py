"""Soak: mixed-provider load against a real receiver while Redis and a worker are restarted.

Every recorded scenario under ``fixtures/`` (all providers) is replayed over and over as new calls (each
instance renamed with a fresh suffix), many calls at once. Like a provider, the load generator retries
any request that did not get a 2xx, until it does; it also re-sends some requests that did succeed, as
providers do when an acknowledgement is lost. A call's requests are sent in recorded order, so the
scenario's documented entries are exactly what the transitions stream must hold for it afterwards.

Meanwhile redis-server (append-only, ``appendfsync always``) is SIGKILLed and restarted, and one
receiver worker is SIGKILLed (uvicorn starts a new one). At the end the stream is compared with the
documented entries: any expected entry missing is "lost", any extra one is a "duplicate".

Run from the repository root (loopback only, private Redis, nothing shared is touched)::

    .venv/bin/python -m bench.soak --minutes 2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from receiver.scenario import Scenario
from statemachine.keys import Keys
from tests.support.histories import SCENARIOS, stream_entries
from tests.support.processes import Receiver, RedisServer

PREFIX = "soak"
EXPECTED_FIELDS = ("kind", "call_id", "from_state", "to_state")


@dataclass
class Tally:
    sent: int = 0
    ok: int = 0
    retried: int = 0
    resent: int = 0
    calls: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    expected: list[tuple[str, ...]] = field(default_factory=list)


async def run_call(client: httpx.AsyncClient, scenario: Scenario, tally: Tally, rng: random.Random) -> None:
    """Deliver one call's requests in order, retrying each until it gets a 2xx."""
    for request in scenario.requests:
        copies = 2 if rng.random() < 0.1 else 1
        for _ in range(copies):
            while True:
                tally.sent += 1
                try:
                    response = await client.post(
                        request.path, content=request.body, headers={"content-type": request.content_type}
                    )
                    status = response.status_code
                except httpx.HTTPError:
                    status = 0
                tally.statuses[status] += 1
                if 200 <= status < 300:
                    tally.ok += 1
                    break
                tally.retried += 1
                await asyncio.sleep(0.2)
        tally.resent += copies - 1
    tally.calls += 1
    for entry in scenario.expect.get("entries", []):
        tally.expected.append(tuple(entry.get(name, "") for name in EXPECTED_FIELDS))


async def load(base_url: str, deadline: float, senders: int, tally: Tally, seed: int) -> None:
    rng = random.Random(seed)

    async def sender(client: httpx.AsyncClient) -> None:
        while time.monotonic() < deadline:
            scenario = rng.choice(SCENARIOS).renamed("-" + uuid.uuid4().hex[:12])
            await run_call(client, scenario, tally, rng)

    limits = httpx.Limits(max_connections=senders, max_keepalive_connections=senders)
    async with httpx.AsyncClient(base_url=base_url, timeout=10, limits=limits) as client:
        await asyncio.gather(*(sender(client) for _ in range(senders)))


async def chaos(server: RedisServer, receiver: Receiver, deadline: float, every_s: float, log: list[str]) -> None:
    """Alternately SIGKILL+restart redis-server and SIGKILL one receiver worker, every ``every_s``."""
    turn = 0
    while time.monotonic() + every_s < deadline:
        await asyncio.sleep(every_s)
        if turn % 2 == 0:
            server.kill()
            await asyncio.sleep(1.0)
            await asyncio.to_thread(server.start)
            log.append(f"{time.strftime('%H:%M:%S')} redis-server SIGKILLed, down 1 s, restarted")
        else:
            workers = receiver.worker_pids()
            if workers:
                os.kill(workers[0], signal.SIGKILL)
                log.append(f"{time.strftime('%H:%M:%S')} receiver worker {workers[0]} SIGKILLed")
        turn += 1


def compare(server: RedisServer, tally: Tally) -> tuple[int, int, int]:
    """(transitions found, duplicates found, lost found) for the calls the load generator completed."""
    client = server.client()
    try:
        entries = stream_entries(client, Keys(PREFIX).transitions())
    finally:
        client.close()
    found = Counter(tuple(entry[name] for name in EXPECTED_FIELDS) for entry in entries)
    expected = Counter(tally.expected)
    return sum(found.values()), sum((found - expected).values()), sum((expected - found).values())


async def soak(args: argparse.Namespace, work: Path) -> int:
    with RedisServer(work / "redis", appendfsync="always").start() as server:
        receiver = Receiver(work, server.url, PREFIX, workers=args.workers, redis_timeout_s=2.0)
        with receiver.start():
            started = time.monotonic()
            deadline = started + args.minutes * 60
            tally, log = Tally(), list[str]()
            await asyncio.gather(
                load(receiver.url, deadline, args.senders, tally, args.seed),
                chaos(server, receiver, deadline, args.chaos_every, log),
            )
            elapsed = time.monotonic() - started
        found, duplicates, lost = compare(server, tally)
    print("\n".join(log))
    print(f"duration                 {elapsed:.0f} s ({args.workers} workers, {args.senders} senders)")
    print(f"calls completed          {tally.calls}")
    print(f"events sent              {tally.sent}")
    print(f"2xx                      {tally.ok}")
    print(f"retried                  {tally.retried}")
    print(f"replies by status        {dict(sorted(tally.statuses.items()))}  (0: connection failed)")
    print(f"re-sent after a 2xx      {tally.resent}")
    print(f"transitions expected     {len(tally.expected)}")
    print(f"transitions found        {found}")
    print(f"duplicates found         {duplicates}")
    print(f"lost found               {lost}")
    return 1 if duplicates or lost or found != len(tally.expected) else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--senders", type=int, default=12, help="concurrent calls in flight")
    parser.add_argument("--chaos-every", type=float, default=20.0, help="seconds between restarts")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="callstream-soak-") as work:
        return asyncio.run(soak(args, Path(work)))


if __name__ == "__main__":
    sys.exit(main())
