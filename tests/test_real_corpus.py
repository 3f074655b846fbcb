"""The corpus of real payloads (``fixtures/<provider>/real/``): each file says where its payloads come from and
what every request must produce, and docs/real-callbacks.md lists it. The replay itself (unsigned, signed,
tampered with) is tests/test_fixtures_replay.py, which picks these files up with the others; here, payloads
published with the provider's own signature are also checked against that signature."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from starlette.testclient import TestClient

from receiver.scenario import Scenario
from statemachine.keys import Keys
from tests.conftest import FIXTURES, MakeSettings, signed_source

REAL = sorted(FIXTURES.glob("*/real/*.json"))
DOC = FIXTURES.parent / "docs" / "real-callbacks.md"
COMMIT = re.compile(r"^[0-9a-f]{40}$")


def test_the_corpus_covers_the_providers_that_publish_payloads() -> None:
    """At least five real payloads for each provider whose payloads are published (docs/real-callbacks.md)."""
    payloads: dict[str, int] = {}
    for path in REAL:
        scenario = Scenario.load(path)
        family = "vobiz" if scenario.provider.startswith("vobiz") else scenario.provider
        payloads[family] = payloads.get(family, 0) + len(scenario.requests)
    for provider in ("twilio", "telnyx", "vonage", "vobiz", "plivo"):
        assert payloads.get(provider, 0) >= 5, (provider, payloads)


@pytest.mark.parametrize("path", REAL, ids=lambda path: f"{path.parent.parent.name}/{path.stem}")
def test_every_real_payload_names_its_origin_and_its_outcome(path: Path) -> None:
    """A documentation page, or a repository, path and commit; what the payload represents; and an expected
    outcome for every request, with the entries and final states the calls must reach."""
    scenario = Scenario.load(path)
    origin = scenario.origin
    assert origin.get("represents"), path
    if "url" in origin:
        assert str(origin["url"]).startswith("https://"), origin
    else:
        assert origin.get("repository", "").count("/") == 1 and origin.get("path"), origin
        assert COMMIT.match(str(origin.get("commit", ""))), origin
    assert scenario.description
    assert all(request.expect for request in scenario.requests), path
    assert "entries" in scenario.expect, path


def test_the_corpus_page_lists_every_file() -> None:
    """docs/real-callbacks.md names each file of the corpus, so a reader finds every payload's origin there."""
    text = DOC.read_text()
    missing = [str(path.relative_to(FIXTURES)) for path in REAL if str(path.relative_to(FIXTURES)) not in text]
    assert not missing, missing


#: plivo-go's V3 test vectors (utils_test.go): the auth token Plivo signed them with and the URL it signed,
#: configured as the source's public_url so the receiver checks the very URL Plivo signed.
PLIVO_GO_TOKEN = "Y2Q2ZDgxZmY5YWRiOTI5YmQ1Njg0MTAxZWIyOTc4"
PLIVO_GO_URL = "https://plivobin.non-prod.plivops.com/api/v1/validate_signature03.xml/"
PLIVO_SIGNED = [FIXTURES / "plivo" / "real" / f"sdk-go-v3-vector-{method}.json" for method in ("post", "get")]


@pytest.mark.parametrize("path", PLIVO_SIGNED, ids=lambda path: path.stem)
def test_plivo_signed_callbacks_verify_with_the_signature_plivo_computed(
    path: Path, make_client: Callable[..., TestClient], make_settings: MakeSettings, r: redis.Redis, keys: Keys
) -> None:
    """Sent with the X-Plivo-Signature-V3 headers Plivo computed (kept in the file), to a verifying source with
    Plivo's token and the signed URL as its public_url: accepted and applied. The same headers for another URL
    are refused, and nothing more is published."""
    scenario = Scenario.load(path)
    (request,) = scenario.requests
    assert request.headers["X-Plivo-Signature-V3-Nonce"] == "31627761595286130198"
    source = signed_source("plivo", "plivo", PLIVO_GO_TOKEN, public_url=PLIVO_GO_URL)
    client = make_client(make_settings({"plivo": source}))
    headers = request.signed_headers("plivo", PLIVO_GO_URL, None)
    response = client.request(request.method, request.target, content=request.body, headers=headers)
    assert response.status_code == 200, response.text
    assert [result["outcome"] for result in response.json()["results"]] == ["applied"]
    elsewhere = make_client(
        make_settings({"plivo": signed_source("plivo", "plivo", PLIVO_GO_TOKEN, public_url=PLIVO_GO_URL + "other")})
    )
    refused = elsewhere.request(request.method, request.target, content=request.body, headers=headers)
    assert refused.status_code == 401, refused.text
    assert r.xlen(keys.transitions()) == 1
