"""Print every call transition callstream publishes, as a member of a consumer group.

Usage::

    REDIS_URL=redis://127.0.0.1:6379/0 python examples/print_consumer.py --group printer
    python examples/print_consumer.py --redis-url redis://host:6379/0 --prefix callstream \\
        --group printer --name printer-1 --json

Run several with the same ``--group`` and different ``--name`` to share the work; each transition is
handled by one of them. Stop with Ctrl-C or SIGTERM: the transition being handled is finished and
acknowledged first. A consumer that was killed leaves its unacknowledged transitions pending: started
again under the same ``--name`` it handles them first; its peers take them over after
``--claim-idle-ms``. Lines are printed after the transition is handled and before it is acknowledged,
so a kill in between prints that transition again later (at-least-once delivery).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time

import orjson
from redis.asyncio import Redis

from consumer import Consumer, ConsumerOptions, Transition
from statemachine.keys import DEFAULT_PREFIX, Keys


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--prefix", default=os.environ.get("CALLSTREAM_PREFIX", DEFAULT_PREFIX))
    parser.add_argument(
        "--partitions",
        type=int,
        default=1,
        help="partitions of the transitions stream ([streams] partitions, default 1)",
    )
    parser.add_argument("--group", default="printer", help="consumer group (default printer)")
    parser.add_argument("--name", help="consumer name, unique in the group (default host-pid)")
    parser.add_argument("--json", action="store_true", help="print JSON lines")
    parser.add_argument("--claim-idle-ms", type=int, default=30_000, help="take over entries idle this long")
    parser.add_argument("--max-deliveries", type=int, default=5, help="dead-letter an entry after this many")
    parser.add_argument("--delay-ms", type=int, default=0, help="pretend each transition takes this long")
    return parser.parse_args(argv)


def line(transition: Transition, as_json: bool) -> str:
    if as_json:
        return orjson.dumps(
            {
                "id": transition.entry_id,
                "stream": transition.stream,
                "kind": transition.kind,
                "source": transition.source,
                "call_id": transition.call_id,
                "from_state": transition.from_state,
                "to_state": transition.to_state,
                "version": transition.version,
                "deliveries": transition.deliveries,
            }
        ).decode()
    return (
        f"{transition.entry_id} {transition.source}/{transition.call_id} "
        f"{transition.from_state}->{transition.to_state} v{transition.version}"
    )


async def main(args: argparse.Namespace) -> int:
    redis = Redis.from_url(args.redis_url)
    keys = Keys(args.prefix, args.partitions)

    async def handle(transition: Transition) -> None:
        if args.delay_ms:
            await asyncio.sleep(args.delay_ms / 1000)
        print(line(transition, args.json), flush=True)

    consumer = Consumer(
        redis,
        args.group,
        handle,
        keys=keys,
        name=args.name,
        options=ConsumerOptions(
            claim_idle_ms=args.claim_idle_ms,
            claim_every_ms=min(5000, args.claim_idle_ms),
            max_deliveries=args.max_deliveries,
            block_ms=1000,
        ),
    )
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, consumer.stop)
    print(f"# consumer {consumer.name} of group {args.group} on {', '.join(consumer.streams)}", file=sys.stderr)
    started = time.monotonic()
    try:
        await consumer.run()
    finally:
        await redis.aclose()
    print(f"# stopped after {time.monotonic() - started:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
