"""Redis clients from one URL: a single server, Redis Sentinel, or Redis Cluster.

URL forms (``rediss`` in place of ``redis`` turns TLS on, for the data nodes and the sentinels alike)::

    redis://[[user]:password@]host[:port][/db][?options]           one server (also unix://path)
    redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/service_name[/db][?options]
    redis+cluster://[[user]:password@]host[:port][,host[:port]...][?options]

The user and password authenticate to the data nodes (AUTH, or an ACL user). Sentinels that require a
password of their own take ``?sentinel_password=...`` (and ``sentinel_username=...``). Sentinel ports
default to 26379, cluster seed ports to 6379; a cluster seed list needs only one reachable node, the rest
of the topology is discovered (and rediscovered on MOVED/ASK and after a failover). TLS options:
``ssl_cert_reqs`` (``required``, ``optional``, ``none``), ``ssl_ca_certs``, ``ssl_certfile``,
``ssl_keyfile``, ``ssl_check_hostname`` (``true``/``false``). Percent-encode reserved characters of the
user and password.

`async_client` serves the receiver, `sync_client` the command-line tools. A cluster client is returned
typed as the plain client: it offers every command callstream sends (single-slot commands, scripts and
non-transactional pipelines).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import parse_qsl, unquote

import redis
import redis.asyncio
from redis.asyncio.cluster import ClusterNode as AsyncClusterNode
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.asyncio.retry import Retry as AsyncRetry
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.cluster import ClusterNode, RedisCluster
from redis.sentinel import Sentinel

PLAIN_SCHEMES = frozenset({"redis", "rediss", "unix"})
SENTINEL_SCHEMES = {"redis+sentinel": False, "rediss+sentinel": True}
CLUSTER_SCHEMES = {"redis+cluster": False, "rediss+cluster": True}
DEFAULT_PORTS = {"sentinel": 26379, "cluster": 6379}
TLS_OPTIONS = ("ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_check_hostname")
SENTINEL_AUTH_OPTIONS = ("sentinel_username", "sentinel_password")


class RedisURLError(ValueError):
    """The Redis URL cannot be used; the message says which part and why (never the password)."""


@dataclass(frozen=True, slots=True)
class Topology:
    """What a Redis URL describes, with its credentials and TLS options."""

    kind: str  # "single" | "sentinel" | "cluster"
    url: str = ""
    hosts: tuple[tuple[str, int], ...] = ()
    service: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False
    tls_options: Mapping[str, Any] = field(default_factory=dict)
    sentinel_auth: Mapping[str, str] = field(default_factory=dict)

    def node_kwargs(self) -> dict[str, Any]:
        """Connection options for the data nodes."""
        kwargs: dict[str, Any] = {"username": self.username, "password": self.password}
        if self.tls:
            kwargs["ssl"] = True
            kwargs.update(self.tls_options)
        return kwargs

    def sentinel_kwargs(self, timeouts: Mapping[str, Any]) -> dict[str, Any]:
        """Connection options for the sentinels themselves."""
        kwargs: dict[str, Any] = {**timeouts}
        kwargs["username"] = self.sentinel_auth.get("sentinel_username")
        kwargs["password"] = self.sentinel_auth.get("sentinel_password")
        if self.tls:
            kwargs["ssl"] = True
            kwargs.update(self.tls_options)
        return kwargs


def parse(url: str) -> Topology:
    """What ``url`` points at. Plain ``redis://`` URLs are left for redis-py to parse in full."""
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep:
        raise RedisURLError(
            "Redis URL must start with redis://, rediss://, unix://, redis+sentinel:// or redis+cluster://"
        )
    if scheme in PLAIN_SCHEMES:
        return Topology(kind="single", url=url)
    if scheme in SENTINEL_SCHEMES:
        kind, tls = "sentinel", SENTINEL_SCHEMES[scheme]
    elif scheme in CLUSTER_SCHEMES:
        kind, tls = "cluster", CLUSTER_SCHEMES[scheme]
    else:
        raise RedisURLError(f"unsupported Redis URL scheme {scheme!r}")
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    userinfo, _, hostlist = netloc.rpartition("@")
    username, password = _credentials(userinfo)
    hosts = tuple(_host_port(item, DEFAULT_PORTS[kind]) for item in hostlist.split(","))
    options = dict(parse_qsl(query, keep_blank_values=True))
    unknown = sorted(set(options) - set(TLS_OPTIONS) - set(SENTINEL_AUTH_OPTIONS))
    if unknown:
        raise RedisURLError(f"unknown Redis URL option(s): {', '.join(unknown)}")
    service, db = _path(kind, path)
    return Topology(
        kind=kind,
        hosts=hosts,
        service=service,
        db=db,
        username=username,
        password=password,
        tls=tls,
        tls_options=_tls_options(options),
        sentinel_auth={k: v for k, v in options.items() if k in SENTINEL_AUTH_OPTIONS},
    )


def async_client(
    url: str, *, max_connections: int = 64, timeout_s: float = 2.0, retry: AsyncRetry | None = None
) -> redis.asyncio.Redis:
    """An asyncio client for ``url``; a single server's pool queues callers beyond its size.

    ``retry`` applies to single servers and Sentinel-managed primaries; the cluster client has its own
    (it retries on other nodes and refreshes the topology after MOVED, ASK and connection errors).
    """
    topology = parse(url)
    timeouts: dict[str, Any] = {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s}
    if retry is not None:
        timeouts["retry"] = retry
    if topology.kind == "single":
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=timeout_s, **timeouts
        )
        return redis.asyncio.Redis(connection_pool=pool)
    if topology.kind == "sentinel":
        sentinel = AsyncSentinel(  # type: ignore[no-untyped-call]
            list(topology.hosts), sentinel_kwargs=topology.sentinel_kwargs(timeouts), **timeouts
        )
        master = sentinel.master_for(
            topology.service, db=topology.db, max_connections=max_connections, **topology.node_kwargs()
        )
        return cast(redis.asyncio.Redis, master)
    cluster = AsyncRedisCluster(
        startup_nodes=[AsyncClusterNode(host, port) for host, port in topology.hosts],
        max_connections=max_connections,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        **topology.node_kwargs(),
    )
    return cast(redis.asyncio.Redis, cluster)


def sync_client(url: str, *, timeout_s: float = 5.0) -> redis.Redis:
    """A blocking client for ``url``, for command-line tools and tests."""
    topology = parse(url)
    timeouts: dict[str, Any] = {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s}
    if topology.kind == "single":
        return redis.Redis.from_url(url, **timeouts)
    if topology.kind == "sentinel":
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            list(topology.hosts), sentinel_kwargs=topology.sentinel_kwargs(timeouts), **timeouts
        )
        master = sentinel.master_for(  # type: ignore[no-untyped-call]
            topology.service, db=topology.db, **topology.node_kwargs()
        )
        return cast(redis.Redis, master)
    cluster = RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in topology.hosts],  # type: ignore[no-untyped-call]
        **timeouts,
        **topology.node_kwargs(),
    )
    return cast(redis.Redis, cluster)


async def close(client: redis.asyncio.Redis) -> None:
    """Close ``client`` and its connections, whichever kind `async_client` returned."""
    if isinstance(client, AsyncRedisCluster):
        await client.aclose()
        return
    await client.aclose(close_connection_pool=True)
    # A Sentinel-managed client's pool keeps clients of its own to the sentinels: close those too.
    manager = getattr(client.connection_pool, "sentinel_manager", None)
    for sentinel in getattr(manager, "sentinels", ()):
        await sentinel.aclose(close_connection_pool=True)


def redacted(url: str) -> str:
    """``url`` with its passwords replaced (in the user part and in ``...password=`` options), for logs and
    error messages."""
    scheme, sep, rest = url.partition("://")
    rest, question, query = rest.partition("?")
    if query:
        query = re.sub(r"((?:^|&)[^=&]*password=)[^&]*", r"\1***", query)
    netloc, slash, tail = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.split(':', 1)[0]}:***@{hosts}"
    return f"{scheme}{sep}{netloc}{slash}{tail}{question}{query}"


def _credentials(userinfo: str) -> tuple[str | None, str | None]:
    if not userinfo:
        return None, None
    user, colon, password = userinfo.partition(":")
    return (unquote(user) or None), (unquote(password) if colon else None)


def _host_port(item: str, default_port: int) -> tuple[str, int]:
    item = item.strip()
    if not item:
        raise RedisURLError("Redis URL has an empty host in its host list")
    if item.startswith("["):
        host, _, port_text = item[1:].partition("]")
        port_text = port_text.removeprefix(":")
    else:
        host, _, port_text = item.partition(":")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise RedisURLError(f"Redis URL host {host!r} has an invalid port {port_text!r}")
    return host, int(port_text)


def _path(kind: str, path: str) -> tuple[str, int]:
    parts = [part for part in path.split("/") if part]
    if kind == "cluster":
        if parts:
            raise RedisURLError("a redis+cluster:// URL has no path: Redis Cluster has only database 0")
        return "", 0
    if not parts or len(parts) > 2:
        raise RedisURLError("a redis+sentinel:// URL needs /service_name and optionally /db after the hosts")
    if len(parts) == 2 and not parts[1].isdigit():
        raise RedisURLError(f"database {parts[1]!r} in the Redis URL is not a number")
    return unquote(parts[0]), int(parts[1]) if len(parts) == 2 else 0


def _tls_options(options: Mapping[str, str]) -> dict[str, Any]:
    chosen: dict[str, Any] = {k: v for k, v in options.items() if k in TLS_OPTIONS}
    if "ssl_check_hostname" in chosen:
        chosen["ssl_check_hostname"] = chosen["ssl_check_hostname"].lower() in {"1", "true", "yes"}
    return chosen
