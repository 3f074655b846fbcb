"""Fuzzing every registered adapter's verify and normalize: only `ReceiverError` may escape.

Anything else would surface as a 500 and make the provider retry a request that can never succeed.
Events an adapter does produce must be publishable: a call id that is safe in a Redis key and an event
that serializes for the stream entry. Adapters are taken from ``receiver.providers.PROVIDERS`` and
near-valid payloads from their recorded scenarios, so new providers are fuzzed as they land.
"""

from __future__ import annotations

import time
import urllib.parse
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from receiver.delivery import FORM, JSON, Delivery
from receiver.errors import ReceiverError
from receiver.providers import PROVIDERS, OutgoingRequest
from receiver.settings import Secret, Source
from statemachine.events import CallEvent
from statemachine.states import Trigger
from tests.support.histories import SCENARIOS

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
URL = "https://hooks.example.com/webhooks/fuzzed"
CONTROL = {chr(code) for code in range(0x21)} | {"\x7f"}

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
content_types = st.sampled_from(
    [FORM, JSON, "", "text/plain", "application/json; charset=utf-8", "multipart/form-data; boundary=x"]
)
header_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=80)


def delivery_for(provider: str, body: bytes, headers: dict[str, str], *, verify: bool = False) -> Delivery:
    source = Source(name="fuzzed", provider=provider, secrets=(Secret("fuzz-secret"),), verify=verify)
    return Delivery(source, body, {k.lower(): v for k, v in headers.items()}, URL, time.time())


def assert_publishable(events: list[CallEvent]) -> None:
    for event in events:
        assert isinstance(event.event, Trigger)
        assert 0 < len(event.call_id) <= 256 and not CONTROL & set(event.call_id), event.call_id
        assert CallEvent.from_json(event.to_json()).call_id == event.call_id


def normalize_or_refuse(provider: str, delivery: Delivery) -> None:
    try:
        events = PROVIDERS[provider].normalize(delivery)
    except ReceiverError:
        return
    assert_publishable(events)


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
@FUZZ
@given(body=st.binary(max_size=600), content_type=content_types)
def test_arbitrary_bytes_are_refused_cleanly(provider: str, body: bytes, content_type: str) -> None:
    """Random bytes under any Content-Type: events or a ReceiverError, never another exception."""
    normalize_or_refuse(provider, delivery_for(provider, body, {"content-type": content_type}))


def recorded_bodies(provider: str) -> list[tuple[str, bytes]]:
    return [
        (request.content_type, request.body)
        for scenario in SCENARIOS
        if scenario.provider == provider
        for request in scenario.requests
    ]


FUZZED_PROVIDERS = sorted(name for name in PROVIDERS if recorded_bodies(name))


def mutate_json(document: Any, path: list[int], replacement: Any) -> Any:
    """Replace the value at a path of child positions (taken modulo each container's size)."""
    if not path or not isinstance(document, dict | list) or not document:
        return replacement
    if isinstance(document, dict):
        key = sorted(document)[path[0] % len(document)]
        return {**document, key: mutate_json(document[key], path[1:], replacement)}
    index = path[0] % len(document)
    return [*document[:index], mutate_json(document[index], path[1:], replacement), *document[index + 1 :]]


@pytest.mark.parametrize("provider", FUZZED_PROVIDERS)
@FUZZ
@given(data=st.data())
def test_near_valid_payloads_are_refused_cleanly(provider: str, data: st.DataObject) -> None:
    """A recorded callback with fields replaced by arbitrary values, dropped or added: never a crash."""
    content_type, body = data.draw(st.sampled_from(recorded_bodies(provider)), label="recorded")
    if content_type.startswith(JSON):
        document = orjson.loads(body)
        for _ in range(data.draw(st.integers(1, 3), label="mutations")):
            path = data.draw(st.lists(st.integers(0, 50), max_size=4), label="path")
            document = mutate_json(document, path, data.draw(json_values, label="value"))
        mutated = orjson.dumps(document)
    else:
        pairs = urllib.parse.parse_qsl(body.decode(), keep_blank_values=True)
        names = sorted({name for name, _ in pairs})
        replaced = data.draw(st.dictionaries(st.sampled_from(names), st.text(max_size=300), max_size=4))
        dropped = data.draw(st.sets(st.sampled_from(names), max_size=3))
        added = data.draw(st.lists(st.tuples(st.sampled_from(names), st.text(max_size=40)), max_size=3))
        kept = [(name, replaced.get(name, value)) for name, value in pairs if name not in dropped]
        mutated = urllib.parse.urlencode(kept + added).encode()
    normalize_or_refuse(provider, delivery_for(provider, mutated, {"content-type": content_type}))


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
@FUZZ
@given(
    headers=st.dictionaries(st.text(min_size=1, max_size=30), header_text, max_size=4),
    signature_values=st.lists(header_text, max_size=3),
    body=st.binary(max_size=200),
)
def test_arbitrary_signature_headers_are_refused_cleanly(
    provider: str, headers: dict[str, str], signature_values: list[str], body: bytes
) -> None:
    """Garbage in the provider's own signature headers: a ReceiverError (401 family), never a crash."""
    known = sorted(PROVIDERS[provider].sign(OutgoingRequest(URL, b"{}", JSON), "fuzz-secret", time.time()))
    for name, value in zip(known, signature_values, strict=False):
        headers[name] = value
    delivery = delivery_for(provider, body, {"content-type": JSON, **headers}, verify=True)
    try:
        PROVIDERS[provider].verify(delivery, time.time())
    except ReceiverError:
        return
