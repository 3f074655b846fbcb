"""Shared fixtures: a real Redis (REDIS_URL when set, else an embedded redis-server), a key prefix per
test whose keys are deleted afterwards, clients and a call store on it, a local stand-in for the providers'
HTTP APIs, and factories for settings and app clients."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from starlette.testclient import TestClient

from receiver.app import create_app
from receiver.cli import main
from receiver.embedded import EmbeddedRedis
from receiver.settings import Secret, Settings, Source
from statemachine.keys import Keys
from statemachine.store import CallStore
from tests.support.provider_api import ProviderApi

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The Redis every test talks to: REDIS_URL when set, else an embedded real redis-server."""
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), appendonly=False)
    yield server.start()
    server.stop()


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own; every key under it is deleted afterwards (and only those)."""
    name = new_prefix()
    yield name
    delete_prefix(redis_url, name)


def new_prefix() -> str:
    """A key prefix no other test uses."""
    return f"cstest-{uuid.uuid4().hex[:10]}"


def delete_prefix(redis_url: str, name: str) -> None:
    """Delete every key under the prefix ``name`` (and nothing else)."""
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{name}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def r(redis_url: str, prefix: str) -> Iterator[redis.Redis]:
    """A synchronous client for assertions."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def keys(prefix: str) -> Keys:
    return Keys(prefix)


@pytest.fixture
async def async_redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """An asyncio client, as the receiver, the store and consumers use."""
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def store(async_redis: aioredis.Redis, keys: Keys) -> CallStore:
    """The call store under this test's prefix, with the default retention."""
    return CallStore(async_redis, keys)


@pytest.fixture
def api() -> Iterator[ProviderApi]:
    """A local stand-in for the providers' HTTP APIs (get-call, inTandem), serving their documented shapes."""
    server = ProviderApi().start()
    yield server
    server.stop()


MakeSettings = Callable[..., Settings]


@pytest.fixture
def make_settings(redis_url: str, prefix: str) -> MakeSettings:
    """Settings under this test's prefix. ``sources`` maps name → Source; default: each provider unverified."""

    def build(sources: dict[str, Source] | None = None, **overrides: Any) -> Settings:
        from receiver.providers import PROVIDERS

        base = Settings.default({"REDIS_URL": redis_url}, list(PROVIDERS))
        values: dict[str, Any] = {
            "sources": sources if sources is not None else base.sources,
            "redis_url": redis_url,
            "key_prefix": prefix,
        }
        values.update(overrides)
        return Settings(**values)

    return build


def signed_source(name: str, provider: str, *secrets: str, **options: Any) -> Source:
    """A verifying source with the given secrets."""
    return Source(name=name, provider=provider, secrets=tuple(Secret(s) for s in secrets), verify=True, **options)


@pytest.fixture
def make_client(make_settings: MakeSettings) -> Iterator[Callable[..., TestClient]]:
    """Start the real app (lifespan included) for given settings; closed after the test."""
    clients: list[TestClient] = []

    def build(settings: Settings | None = None, **kwargs: Any) -> TestClient:
        client = TestClient(create_app(settings or make_settings()), raise_server_exceptions=False, **kwargs)
        client.__enter__()
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.__exit__(None, None, None)


Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def callstream(capsys: pytest.CaptureFixture[str]) -> Iterator[Run]:
    """Run ``callstream ARGS`` in this process; returns (code, stdout, stderr).

    The command configures logging for a process; the root logger is put back afterwards.
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    yield run
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def cli(callstream: Run, redis_url: str, prefix: str) -> Run:
    """Run ``callstream ARGS --redis-url <test redis> --prefix <test prefix>`` (``target=False``: ARGS only)."""

    def run(*args: str, target: bool = True) -> tuple[int, str, str]:
        return callstream(*args, "--redis-url", redis_url, "--prefix", prefix) if target else callstream(*args)

    return run


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that reaches Redis is marked ``redis`` so CI can run them again against another server."""
    for item in items:
        if "redis_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.redis)
