"""Scale out end to end on loopback: a Redis Cluster, two receivers, two consumers, every fixture replayed.

Run from a checkout (it uses the test helpers that start a throw-away cluster)::

    .venv/bin/python examples/scale_out_demo.py            # 3 primaries + 3 replicas, 4 partitions
    .venv/bin/python examples/scale_out_demo.py --rounds 3 --partitions 8

What it does, as docs/scale-out.md describes:

1. starts a local Redis Cluster (3 primaries, 3 replicas) in a temporary directory;
2. starts two receivers (``uvicorn receiver.asgi:app``) on the same ``redis+cluster://`` URL with
   ``[streams] partitions = N``;
3. starts two consumers of one consumer group, each reading its own half of the partitions (so each
   partition, hence each call, has exactly one reader and its transitions are handled in order);
4. replays every scenario under ``fixtures/`` (with fresh call ids, ``--rounds`` times), sending the
   requests of each call alternately to the two receivers;
5. waits until the consumers have handled everything the streams hold, and checks that every
   transition was consumed exactly once and, per call, in version order. Prints the counts; exits 1 if
   anything is missing, doubled or out of order.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import TextIO

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from receiver import redis_client  # noqa: E402
from receiver.commands.replay import send  # noqa: E402
from receiver.scenario import Scenario  # noqa: E402
from statemachine.keys import Keys  # noqa: E402
from statemachine.partitions import Partitions  # noqa: E402

GROUP = "demo"
PREFIX = "demo"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--partitions", type=int, default=4, help="partitions of the transitions stream")
    parser.add_argument("--rounds", type=int, default=2, help="times every scenario is replayed (fresh call ids)")
    sub = parser.add_subparsers(dest="role")
    consume = sub.add_parser("consume", help="(internal) run one consumer and log what it handles")
    consume.add_argument("--url", required=True)
    consume.add_argument("--member", type=int, required=True)
    consume.add_argument("--members", type=int, required=True)
    consume.add_argument("--out", required=True)
    return parser.parse_args()


# -- one consumer process -------------------------------------------------------------------------


async def consume(args: argparse.Namespace, out: TextIO) -> int:
    from consumer import Consumer, ConsumerOptions, Transition

    keys = Keys(PREFIX, args.partitions)
    mine = Partitions(args.partitions).assigned(args.member, args.members)
    client = redis_client.async_client(args.url, timeout_s=5.0)

    def handle(transition: Transition) -> None:
        out.write(
            json.dumps(
                {
                    "stream": transition.stream,
                    "id": transition.entry_id,
                    "source": transition.source,
                    "call_id": transition.call_id,
                    "version": transition.version,
                    "to_state": transition.to_state,
                }
            )
            + "\n"
        )
        out.flush()

    consumer = Consumer(
        client,
        GROUP,
        handle,
        keys=keys,
        streams=[keys.transitions(p) for p in mine],
        name=f"consumer-{args.member}",
        options=ConsumerOptions(block_ms=500),
    )
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, consumer.stop)
    try:
        await consumer.run()
    finally:
        await redis_client.close(client)
    return 0


# -- the whole demo -------------------------------------------------------------------------------


def receiver_config(partitions: int) -> str:
    from receiver.providers import PROVIDERS

    sources = "\n".join(f"[sources.{name}]\nverify = false\n" for name in sorted(PROVIDERS))
    return f'[streams]\nprefix = "{PREFIX}"\npartitions = {partitions}\n\n{sources}'


def replay(receivers: list[str], rounds: int) -> tuple[int, Counter[int]]:
    """Every fixture scenario ``rounds`` times with fresh ids; requests alternate between the receivers."""
    sent, statuses = 0, Counter[int]()
    for round_number in range(rounds):
        for path in sorted((REPO / "fixtures").glob("*/*.json")):
            scenario = Scenario.load(path).renamed(f"-{round_number}-{uuid.uuid4().hex[:6]}")
            for index, request in enumerate(scenario.requests):
                url = receivers[index % len(receivers)] + request.target
                headers = request.signed_headers(scenario.provider, url, None)
                status, _body = send(url, None if request.method == "GET" else request.body, headers, request.method)
                statuses[status] += 1
                sent += 1
    return sent, statuses


def published(url: str, keys: Keys) -> list[dict[str, str]]:
    client = redis_client.sync_client(url)
    try:
        return [
            {"stream": stream, "id": entry_id.decode(), "call_id": fields[b"call_id"].decode()}
            for stream in keys.all_transitions()
            for entry_id, fields in client.xrange(stream)
        ]
    finally:
        client.close()


def consumed(files: list[Path]) -> list[list[dict[str, object]]]:
    return [
        [json.loads(line) for line in file.read_text().splitlines() if line.strip()] if file.exists() else []
        for file in files
    ]


def check(entries: list[dict[str, str]], handled: list[list[dict[str, object]]]) -> list[str]:
    """Problems found: entries not consumed, consumed twice, or a call's versions out of order."""
    problems = []
    seen = Counter((str(row["stream"]), str(row["id"])) for rows in handled for row in rows)
    for entry in entries:
        count = seen.get((entry["stream"], entry["id"]), 0)
        if count != 1:
            problems.append(f"{entry['stream']} {entry['id']} ({entry['call_id']}) consumed {count} times")
    extra = set(seen) - {(e["stream"], e["id"]) for e in entries}
    problems += [f"consumed an entry that is not in the streams: {key}" for key in sorted(extra)]
    for rows in handled:
        versions: dict[tuple[str, str], list[int]] = defaultdict(list)
        for row in rows:
            versions[(str(row["source"]), str(row["call_id"]))].append(int(str(row["version"])))
        for call, seq in versions.items():
            if seq != sorted(seq) or len(set(seq)) != len(seq):
                problems.append(f"call {call} handled out of order: versions {seq}")
    return problems


def main() -> int:
    args = parse_args()
    if args.role == "consume":
        with Path(args.out).open("a", encoding="utf-8") as out:
            return asyncio.run(consume(args, out))
    from tests.support.cluster import LocalCluster
    from tests.support.processes import Receiver, wait_until

    work = Path(tempfile.mkdtemp(prefix="callstream-scale-out-"))
    keys = Keys(PREFIX, args.partitions)
    cluster = LocalCluster(work / "cluster")
    receivers: list[Receiver] = []
    consumers: list[subprocess.Popen[bytes]] = []
    started = time.monotonic()
    try:
        cluster.start()
        print(f"cluster:   3 primaries + 3 replicas, {cluster.url}")
        for _ in range(2):
            receiver = Receiver(work, cluster.url, PREFIX, workers=1)
            receiver.config.write_text(receiver_config(args.partitions))
            receivers.append(receiver.start())
        print(f"receivers: {', '.join(r.url for r in receivers)} ({args.partitions} partitions)")
        outputs = [work / f"consumer-{member}.jsonl" for member in range(2)]
        for member, output in enumerate(outputs):
            command = [sys.executable, __file__, "--partitions", str(args.partitions), "consume", "--url",
                       cluster.url, "--member", str(member), "--members", "2", "--out", str(output)]  # fmt: skip
            consumers.append(subprocess.Popen(command, cwd=REPO, start_new_session=True))
            print(f"consumer-{member}: partitions {Partitions(args.partitions).assigned(member, 2)}")
        sent, statuses = replay([r.url for r in receivers], args.rounds)
        print(f"replayed:  {sent} requests, statuses {dict(sorted(statuses.items()))}")
        entries = published(cluster.url, keys)

        def caught_up() -> bool:
            return sum(len(rows) for rows in consumed(outputs)) >= len(entries)

        wait_until(caught_up, 60, "consumers handling every published transition")
        time.sleep(1.0)  # anything handled twice would show up now
        handled = consumed(outputs)
        per_partition = Counter(entry["stream"] for entry in entries)
        print(f"published: {len(entries)} entries; per partition: {[per_partition[s] for s in keys.all_transitions()]}")
        print(
            f"consumed:  {sum(len(rows) for rows in handled)} ({', '.join(str(len(r)) for r in handled)} per consumer)"
        )
        calls = {(row["source"], row["call_id"]) for rows in handled for row in rows}
        problems = check(entries, handled)
        print(f"calls:     {len(calls)}; problems: {len(problems)}")
        for problem in problems[:20]:
            print(f"  {problem}")
        bad_status = sum(count for status, count in statuses.items() if status not in (200, 202))
        ok = not problems and bad_status == 0
        print(f"result:    {'OK' if ok else 'FAILED'}: every transition consumed exactly once, in per-call order"
              if ok else "result:    FAILED")  # fmt: skip
        print(f"took {time.monotonic() - started:.1f} s; files in {work}")
        return 0 if ok else 1
    finally:
        for process in consumers:
            process.send_signal(signal.SIGTERM)
        for process in consumers:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        for receiver in receivers:
            receiver.stop()
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
