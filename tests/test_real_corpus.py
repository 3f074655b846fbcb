"""The corpus of real payloads (``fixtures/<provider>/real/``): each file says where its payloads come from and
what every request must produce, and docs/real-callbacks.md lists it. The replay itself (unsigned, signed,
tampered with) is tests/test_fixtures_replay.py, which picks these files up with the others."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from receiver.scenario import Scenario
from tests.conftest import FIXTURES

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
    for provider in ("twilio", "telnyx", "vonage", "vobiz"):
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
