"""Every recorded scenario under fixtures/ replayed through the real app against a real Redis.

Each scenario states, from the provider's documentation, the outcome of each request, the stream
entries the calls must produce (in order) and each call's final state. The same scenario is then
replayed against a source that verifies signatures: signed as the provider signs, it gives the same
result; unsigned or tampered with, every request is refused with 401 and nothing is published
(tampering only where the signature covers the request: a bare shared secret cannot see it).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from starlette.testclient import TestClient

from receiver.providers import PROVIDERS, OutgoingRequest
from receiver.scenario import Scenario
from statemachine.keys import Keys
from tests.conftest import FIXTURES, MakeSettings, signed_source

#: Scenarios written from the field tables, then the corpus of real payloads (``fixtures/<provider>/real/``).
SCENARIOS = sorted(FIXTURES.glob("*/*.json")) + sorted(FIXTURES.glob("*/real/*.json"))
BASE_URL = "http://testserver"
SECRET = "fixture-signing-secret"


def scenario_id(path: Path) -> str:
    return str(path.relative_to(FIXTURES).with_suffix(""))


def signs_request(provider: str) -> bool:
    """Whether the provider's signature depends on the request. A bare shared secret (inTandem's bearer
    token, the Goodbox preset's header) does not, so a body altered in transit cannot be detected."""
    sign = PROVIDERS[provider].sign
    first = OutgoingRequest(url=BASE_URL + "/a", body=b"{}", content_type="application/json")
    second = OutgoingRequest(url=BASE_URL + "/b", body=b"{} ", content_type="application/json")
    return sign(first, SECRET, 0.0) != sign(second, SECRET, 0.0)


def send_all(client: TestClient, scenario: Scenario, secret: str | None) -> list[tuple[int, dict[str, Any]]]:
    replies = []
    for request in scenario.requests:
        headers = request.signed_headers(scenario.provider, BASE_URL + request.target, secret)
        response = client.request(request.method, request.target, content=request.body, headers=headers)
        replies.append((response.status_code, response.json()))
    return replies


def assert_matches_expectations(
    scenario: Scenario, replies: list[tuple[int, dict[str, Any]]], r: redis.Redis, keys: Keys
) -> None:
    for request, (status, body) in zip(scenario.requests, replies, strict=True):
        if request.expect is None:
            assert status in (200, 202), body
        elif status == 200:
            assert [result["outcome"] for result in body["results"]] == [request.expect], body
        else:
            assert body["error"]["code"] == request.expect, body
    expected_entries = scenario.expect.get("entries", [])
    entries = [
        {key.decode(): value.decode() for key, value in fields.items()} for _id, fields in r.xrange(keys.transitions())
    ]
    assert len(entries) == len(expected_entries), entries
    for entry, expected in zip(entries, expected_entries, strict=True):
        assert {name: entry.get(name) for name in expected} == expected
    for call_id, expected_call in scenario.expect.get("calls", {}).items():
        state, attempt = r.hmget(keys.call(scenario.provider, call_id), "state", "attempt")
        assert (state or b"new").decode() == expected_call["state"]
        assert int(attempt or 1) == expected_call.get("attempt", 1)


@pytest.mark.parametrize("path", SCENARIOS, ids=scenario_id)
def test_scenario_replays_to_documented_result(
    path: Path, make_client: Callable[..., TestClient], r: redis.Redis, keys: Keys
) -> None:
    """Unverified source: each scenario yields its documented outcomes, entries and final states."""
    scenario = Scenario.load(path)
    replies = send_all(make_client(), scenario, secret=None)
    assert_matches_expectations(scenario, replies, r, keys)


@pytest.mark.parametrize("path", SCENARIOS, ids=scenario_id)
def test_signed_scenario_is_accepted(
    path: Path,
    make_client: Callable[..., TestClient],
    make_settings: MakeSettings,
    r: redis.Redis,
    keys: Keys,
) -> None:
    """A verifying source accepts the scenario signed the provider's way, with the same result."""
    scenario = Scenario.load(path)
    source = signed_source(scenario.provider, scenario.provider, "old-rotated-secret", SECRET)
    client = make_client(make_settings({scenario.provider: source}))
    replies = send_all(client, scenario, secret=SECRET)
    assert_matches_expectations(scenario, replies, r, keys)


@pytest.mark.parametrize("path", SCENARIOS, ids=scenario_id)
def test_unsigned_or_tampered_scenario_is_refused(
    path: Path,
    make_client: Callable[..., TestClient],
    make_settings: MakeSettings,
    r: redis.Redis,
    keys: Keys,
) -> None:
    """Unsigned, signed with another secret, or altered after signing: 401 each, nothing published."""
    scenario = Scenario.load(path)
    source = signed_source(scenario.provider, scenario.provider, SECRET)
    client = make_client(make_settings({scenario.provider: source}))
    for request in scenario.requests:
        url = BASE_URL + request.target
        attempts = {
            "unsigned": (request.body, request.signed_headers(scenario.provider, url, None)),
            "wrong secret": (request.body, request.signed_headers(scenario.provider, url, "not-the-secret")),
        }
        if signs_request(scenario.provider):
            attempts["tampered"] = (
                request.body + b" ",
                request.signed_headers(scenario.provider, BASE_URL + "/elsewhere", SECRET),
            )
        for name, (body, headers) in attempts.items():
            response = client.request(request.method, request.target, content=body, headers=headers)
            assert response.status_code == 401, (name, response.text)
            assert response.json()["error"]["code"] in {"invalid_signature", "replayed_request"}, name
    assert r.xlen(keys.transitions()) == 0
    assert r.exists(keys.deadletter()) == 0
