"""Redis URLs: what each form means, the mistakes refused with a message naming the part at fault, and a
real ACL user connecting through the receiver's client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from receiver.redis_client import RedisURLError, async_client, parse, redacted, sync_client
from tests.support.cluster import Node


def test_single_server_urls_are_left_to_redis_py() -> None:
    """redis://, rediss:// and unix:// keep their redis-py meaning, options included."""
    for url in ("redis://127.0.0.1:6379/0", "rediss://u:p@host:6380/2?ssl_cert_reqs=none", "unix:///tmp/r.sock?db=1"):
        topology = parse(url)
        assert (topology.kind, topology.url) == ("single", url)


def test_sentinel_url() -> None:
    """Hosts (default port 26379), service name, db, data-node ACL user, sentinel password from the query."""
    topology = parse("redis+sentinel://app:p%40ss%3Aw@s1:26380,s2,[::1]:26381/mymaster/3?sentinel_password=sp")
    assert topology.kind == "sentinel"
    assert topology.hosts == (("s1", 26380), ("s2", 26379), ("::1", 26381))
    assert (topology.service, topology.db) == ("mymaster", 3)
    assert (topology.username, topology.password) == ("app", "p@ss:w")
    assert topology.node_kwargs() == {"username": "app", "password": "p@ss:w"}
    assert topology.sentinel_kwargs({})["password"] == "sp"
    assert topology.tls is False


def test_cluster_url_with_tls() -> None:
    """A seed list (default port 6379); rediss+cluster turns TLS on with the given certificate options."""
    topology = parse("rediss+cluster://:secret@n1:7000,n2?ssl_ca_certs=/ca.pem&ssl_check_hostname=false")
    assert topology.kind == "cluster"
    assert topology.hosts == (("n1", 7000), ("n2", 6379))
    assert topology.node_kwargs() == {
        "username": None,
        "password": "secret",
        "ssl": True,
        "ssl_ca_certs": "/ca.pem",
        "ssl_check_hostname": False,
    }


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("127.0.0.1:6379", "must start with"),
        ("memcached://h:1", "unsupported Redis URL scheme 'memcached'"),
        ("redis+sentinel://s1:26379", "needs /service_name"),
        ("redis+sentinel://s1:26379/svc/x", "database 'x'"),
        ("redis+cluster://n1:7000/0", "has no path"),
        ("redis+cluster://n1:port", "invalid port 'port'"),
        ("redis+cluster://n1:7000,,n2", "empty host"),
        ("redis+cluster://n1:7000?timeout=3", "unknown Redis URL option(s): timeout"),
    ],
)
def test_bad_urls_are_refused_naming_the_part(url: str, message: str) -> None:
    """Each mistake gets a message that says what is wrong."""
    with pytest.raises(RedisURLError) as caught:
        parse(url)
    assert message in str(caught.value)


def test_passwords_are_redacted() -> None:
    """Messages and logs show the user and hosts, never the password."""
    assert redacted("redis+cluster://app:s3cret@n1:7000,n2:7001") == "redis+cluster://app:***@n1:7000,n2:7001"
    assert redacted("redis://:s3cret@h:6379/0") == "redis://:***@h:6379/0"
    assert redacted("redis://h:6379/0") == "redis://h:6379/0"
    assert redacted("redis+sentinel://s1,s2/svc?sentinel_password=x1&ssl_cert_reqs=none") == (
        "redis+sentinel://s1,s2/svc?sentinel_password=***&ssl_cert_reqs=none"
    )
    assert redacted("redis://h:6379/0?password=x2") == "redis://h:6379/0?password=***"


@pytest.fixture(scope="module")
def acl_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """A private redis-server whose only user is ``app`` with a password full of reserved characters."""
    node = Node(
        tmp_path_factory.mktemp("acl"),
        ["--user", "default", "off", "--user", "app", "on", ">p@ss:w/rd", "~*", "&*", "+@all"],
    )
    node.client = lambda: redis.Redis(  # type: ignore[method-assign]
        host="127.0.0.1", port=node.port, username="app", password="p@ss:w/rd", socket_timeout=5
    )
    node.start()
    yield node
    node.stop()


@pytest.mark.slow
async def test_acl_user_from_the_url(acl_server: Node) -> None:
    """The percent-encoded ACL user in the URL authenticates; a wrong password is an authentication error."""
    url = f"redis://app:p%40ss%3Aw%2Frd@127.0.0.1:{acl_server.port}/0"
    client = async_client(url)
    try:
        assert await client.ping() is True
    finally:
        await client.aclose(close_connection_pool=True)
    wrong = sync_client(f"redis://app:nope@127.0.0.1:{acl_server.port}/0")
    try:
        with pytest.raises(redis.AuthenticationError):
            wrong.ping()
    finally:
        wrong.close()
