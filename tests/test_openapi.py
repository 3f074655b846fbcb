"""The OpenAPI description: served by the app, in sync with docs/openapi.json, complete, and true.

The property-based test lets schemathesis generate requests (valid and invalid) for every documented
operation and sends them to the real ASGI app on a real Redis: no answer may be a 5xx, and every answer's
status, content type and body must be the ones the description documents.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation.case import Case
from schemathesis.generation.modes import GenerationMode
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.routing import Route
from starlette.testclient import TestClient

from receiver.app import create_app
from receiver.openapi import build_spec, render
from receiver.settings import Secret
from tests.conftest import MakeSettings

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "openapi.json"
TOKEN = "openapi-test-operator-token"


def statuses(spec: dict[str, Any], path: str, method: str) -> set[str]:
    return set(spec["paths"][path][method]["responses"])


def test_docs_copy_is_in_sync() -> None:
    """docs/openapi.json is what the generator prints (regenerate: python -m receiver.commands.openapi)."""
    assert DOC.read_bytes() == render(build_spec()), (
        "docs/openapi.json is out of date: python -m receiver.commands.openapi > docs/openapi.json"
    )


def test_app_serves_its_description_with_configured_sources(
    make_client: Callable[..., TestClient], make_settings: MakeSettings
) -> None:
    """GET /openapi.json is OpenAPI 3.1 and offers the configured source names as examples."""
    client = make_client(make_settings(make_settings().sources, operator_token=Secret(TOKEN)))
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    spec = response.json()
    assert spec["openapi"] == "3.1.0"
    [source] = [p for p in spec["paths"]["/webhooks/{source}"]["post"]["parameters"] if p["name"] == "source"]
    assert {"vobiz", "minivoice"} <= set(source["examples"])


def test_every_documented_error_status_is_described() -> None:
    """Each operation lists every status it can answer (from the README's table and the operator rules)."""
    spec = build_spec()
    assert statuses(spec, "/webhooks/{source}", "post") == {
        "200", "202", "400", "401", "404", "408", "413", "415", "422", "431", "503",
    }  # fmt: skip
    assert statuses(spec, "/webhooks/{source}", "get") == {
        "200", "202", "400", "401", "404", "405", "408", "413", "422", "431", "503",
    }  # fmt: skip
    assert statuses(spec, "/calls/{source}/{call_id}", "get") == {"200", "401", "403", "404", "503"}
    assert statuses(spec, "/metrics", "get") == {"200", "401"}
    assert statuses(spec, "/readyz", "get") == {"200", "503"}
    assert statuses(spec, "/healthz", "get") == {"200"}
    codes_401 = spec["paths"]["/webhooks/{source}"]["post"]["responses"]["401"]["content"]["application/json"]
    assert set(codes_401["schema"]["properties"]["error"]["properties"]["code"]["enum"]) == {
        "invalid_signature",
        "replayed_request",
    }


def test_every_route_of_the_app_is_described(make_settings: MakeSettings) -> None:
    """No HTTP route exists that the description leaves out, with the same methods."""
    app = create_app(make_settings())
    served = {
        (route.path_format, method.lower())
        for route in app.routes
        if isinstance(route, Route)
        for method in (route.methods or ()) - {"HEAD"}
    }
    described = {(path, method) for path, item in build_spec()["paths"].items() for method in item}
    assert served == described


def test_form_and_json_bodies_are_both_described() -> None:
    """Webhooks take the provider's form fields or JSON object."""
    body = build_spec()["paths"]["/webhooks/{source}"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/x-www-form-urlencoded", "application/json"}


OPERATIONS = [(path, method) for path, item in build_spec()["paths"].items() for method in item]
#: Negative data needs something to break: operations with parameters or a body.
CASES = [
    pytest.param(path, method, mode, id=f"{method.upper()} {path} {mode}")
    for path, method in OPERATIONS
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode is GenerationMode.POSITIVE or "{" in path
]


@pytest.fixture
def api_schema(make_settings: MakeSettings) -> Iterator[Any]:
    """The description as the real app serves it; the app's lifespan (its Redis client) ends with the test."""
    app = create_app(make_settings(operator_token=Secret(TOKEN)))
    try:
        yield schemathesis.openapi.from_asgi("/openapi.json", app)
    finally:
        asgi.shutdown_lifespans()


@pytest.mark.parametrize(("path", "method", "mode"), CASES)
def test_no_generated_request_gets_a_5xx_or_an_undocumented_answer(
    api_schema: Any, path: str, method: str, mode: GenerationMode
) -> None:
    """Requests generated from the description (the documented examples, then data that fits it or, in
    negative mode, data that does not): never a 5xx; status, content type and body as documented."""
    operation = api_schema[path][method.upper()]
    examples = api_schema.get_strategies_from_examples(operation) if mode is GenerationMode.POSITIVE else []
    strategy = st.one_of(operation.as_strategy(generation_mode=mode), *examples)

    @given(case=strategy)
    @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    def check(case: Case) -> None:
        case.call_and_validate(
            headers={"Authorization": f"Bearer {TOKEN}"},
            checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance],
        )

    check()


def test_description_is_valid_json_with_stable_key_order() -> None:
    """The docs copy parses back to the same document (no lossy rendering)."""
    assert orjson.loads(DOC.read_bytes()) == build_spec()
