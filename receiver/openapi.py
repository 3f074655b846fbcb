"""The OpenAPI 3.1 description of the HTTP surface, built from the code's own tables.

Error statuses and codes come from `receiver.errors.HTTP_ERRORS`, states, events and outcomes from the
state machine, so the description cannot drift from what the service answers. The app serves it at
``GET /openapi.json`` with the configured source names as examples; ``docs/openapi.json`` is the same
description without them, written by ``python -m receiver.commands.openapi > docs/openapi.json``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from importlib import metadata
from typing import Any

import orjson

from receiver.errors import (
    HTTP_ERRORS,
    MethodNotAllowed,
    OperatorAccessDisabled,
    OperatorAuthError,
    ReceiverError,
    RedisUnavailable,
    UnknownCall,
    UnknownSource,
    UnsupportedContentType,
)
from statemachine.definition import ALL_STATES
from statemachine.machine import Outcome
from statemachine.states import Trigger

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"

#: Errors only the lookup answers; every other error in the table can come from a webhook.
_OPERATOR_ONLY: frozenset[type[ReceiverError]] = frozenset({OperatorAuthError, OperatorAccessDisabled, UnknownCall})
LOOKUP_ERRORS: tuple[type[ReceiverError], ...] = (
    OperatorAuthError,
    OperatorAccessDisabled,
    UnknownSource,
    UnknownCall,
    RedisUnavailable,
)
METRICS_ERRORS: tuple[type[ReceiverError], ...] = (OperatorAuthError,)


#: Errors a webhook cannot answer for one method: every provider POSTs, and a GET has no body to type.
_NOT_FOR_METHOD: dict[str, frozenset[type[ReceiverError]]] = {
    "post": frozenset({MethodNotAllowed}),
    "get": frozenset({UnsupportedContentType}),
}


def webhook_errors(method: str = "post") -> tuple[type[ReceiverError], ...]:
    excluded = _OPERATOR_ONLY | _NOT_FOR_METHOD[method]
    return tuple(cls for cls in HTTP_ERRORS if cls not in excluded)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _error_schema(codes: Sequence[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {"code": {"type": "string", "enum": list(codes)}, "message": {"type": "string"}},
                "additionalProperties": True,
            }
        },
    }


def error_responses(errors: Iterable[type[ReceiverError]]) -> dict[str, Any]:
    """One response per status the errors map to, listing their codes."""
    by_status: dict[int, list[str]] = {}
    for cls in errors:
        status, code = HTTP_ERRORS[cls]
        if code not in by_status.setdefault(status, []):
            by_status[status].append(code)
    return {
        str(status): {
            "description": ("Kept in the dead-letter stream; code: " if status < 300 else "Error codes: ")
            + ", ".join(f"`{code}`" for code in codes),
            "content": {JSON: {"schema": _error_schema(codes)}},
        }
        for status, codes in sorted(by_status.items())
    }


def _string_param(name: str, where: str, description: str, examples: Sequence[str] = ()) -> dict[str, Any]:
    param: dict[str, Any] = {
        "name": name,
        "in": where,
        "required": where == "path",
        "description": description,
        "schema": {"type": "string", "minLength": 1},
    }
    if examples:
        param["examples"] = {value: {"value": value} for value in examples}
    return param


def _schemas() -> dict[str, Any]:
    states = list(ALL_STATES)
    return {
        "WebhookResult": {
            "type": "object",
            "required": ["call_id", "event", "outcome", "from_state", "to_state", "attempt", "version", "entry_id"],
            "properties": {
                "call_id": {"type": "string"},
                "event": {"type": "string", "enum": [trigger.value for trigger in Trigger]},
                "outcome": {"type": "string", "enum": [outcome.value for outcome in Outcome]},
                "from_state": {"type": "string", "enum": states},
                "to_state": {"type": "string", "enum": states},
                "attempt": {"type": "integer", "minimum": 1},
                "version": {"type": "integer", "minimum": 0},
                "entry_id": {
                    "type": ["string", "null"],
                    "description": "stream entry id; null when nothing was published",
                },
            },
        },
        "WebhookAccepted": {
            "type": "object",
            "required": ["source", "results"],
            "properties": {"source": {"type": "string"}, "results": {"type": "array", "items": _ref("WebhookResult")}},
        },
        "CallRecord": {
            "type": "object",
            "required": [
                "source",
                "call_id",
                "provider",
                "state",
                "attempt",
                "version",
                "updated_at_ms",
                "expires_in_ms",
                "history",
            ],  # fmt: skip
            "properties": {
                "source": {"type": "string"},
                "call_id": {"type": "string"},
                "provider": {"type": "string"},
                "state": {"type": "string", "enum": states},
                "attempt": {"type": "integer", "minimum": 1},
                "version": {"type": "integer", "minimum": 1},
                "updated_at_ms": {"type": "integer"},
                "expires_in_ms": {"type": "integer", "description": "time left before the call's state expires"},
                "history": {
                    "type": "array",
                    "description": "the call's stream entries, oldest first; `trimmed` once the stream dropped one",
                    "items": {
                        "type": "object",
                        "required": ["id"],
                        "properties": {
                            "id": {"type": "string"},
                            "kind": {"type": "string", "enum": ["transition", "annotation"]},
                            "from_state": {"type": "string"},
                            "to_state": {"type": "string"},
                            "name": {"type": "string"},
                            "version": {"type": "integer"},
                            "attempt": {"type": "integer"},
                            "replay": {"type": "boolean"},
                            "event": {"type": "object"},
                            "trimmed": {"type": "boolean"},
                        },
                    },
                },
            },
        },
    }


def _webhook_operation(source_examples: Sequence[str], method: str = "post") -> dict[str, Any]:
    body_schema = {"type": "object", "additionalProperties": {"type": "string"}}
    return {
        "summary": "Receive a provider's call-status callback",
        "description": (
            "The body is the provider's own callback (form fields or a JSON object, per provider), "
            "authenticated with the provider's signature headers when the source verifies signatures. "
            "Requests that pass authentication but cannot be processed are kept in the dead-letter stream."
        ),
        "operationId": "receiveWebhook",
        "parameters": [
            _string_param("source", "path", "a configured source name", source_examples),
            _string_param("X-Request-Id", "header", "echoed back; generated when absent or unusable"),
        ],
        "requestBody": {
            "required": True,
            "content": {FORM: {"schema": body_schema}, JSON: {"schema": {"type": "object"}}},
        },
        "responses": {
            "200": {
                "description": "Processed: one result per canonical event (applied, annotation, duplicate or late)",
                "content": {JSON: {"schema": _ref("WebhookAccepted")}},
            },
            **error_responses(webhook_errors(method)),
        },
    }


def _webhook_get_operation(source_examples: Sequence[str]) -> dict[str, Any]:
    operation = _webhook_operation(source_examples, "get")
    del operation["requestBody"]
    return {
        **operation,
        "summary": "Receive a provider's call-status callback sent with GET",
        "description": (
            "For providers configured to call with GET (Twilio `StatusCallbackMethod=GET`, Plivo and Vobiz "
            "`*_method=GET`, Vonage `event_method=GET`): the callback's fields are the query parameters, "
            "authenticated as that provider signs a GET. Other providers' sources answer 405."
        ),
        "operationId": "receiveWebhookGet",
    }


def _lookup_operation(source_examples: Sequence[str]) -> dict[str, Any]:
    return {
        "summary": "Look a call up: its state, attempt, version and history",
        "operationId": "getCall",
        "security": [{"operatorToken": []}],
        "parameters": [
            _string_param("source", "path", "a configured source name", source_examples),
            _string_param("call_id", "path", "the provider's call id"),
        ],
        "responses": {
            "200": {"description": "The call", "content": {JSON: {"schema": _ref("CallRecord")}}},
            **error_responses(LOOKUP_ERRORS),
        },
    }


def _status_schema(*statuses: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"type": "string", "enum": list(statuses)}},
    }


def build_spec(source_examples: Sequence[str] = ()) -> dict[str, Any]:
    """The OpenAPI document; ``source_examples`` are offered as example source names."""
    unavailable = _status_schema("unavailable")
    unavailable["properties"]["error"] = {"type": "object"}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "callstream",
            "version": _version(),
            "description": "Voice providers' call-status webhooks in, one canonical call lifecycle out.",
        },
        "paths": {
            "/webhooks/{source}": {
                "post": _webhook_operation(source_examples),
                "get": _webhook_get_operation(source_examples),
            },
            "/calls/{source}/{call_id}": {"get": _lookup_operation(source_examples)},
            "/healthz": {
                "get": {
                    "summary": "The process answers",
                    "operationId": "healthz",
                    "responses": {"200": {"description": "Alive", "content": {JSON: {"schema": _status_schema("ok")}}}},
                }
            },
            "/readyz": {
                "get": {
                    "summary": "Redis answers too",
                    "operationId": "readyz",
                    "responses": {
                        "200": {"description": "Ready", "content": {JSON: {"schema": _status_schema("ready")}}},
                        "503": {"description": "Redis does not answer", "content": {JSON: {"schema": unavailable}}},
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "description": "Open while no operator token is configured; then the token is required.",
                    "operationId": "metrics",
                    "security": [{}, {"operatorToken": []}],
                    "responses": {
                        "200": {
                            "description": "Prometheus text format 0.0.4",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        },
                        **error_responses(METRICS_ERRORS),
                    },
                }
            },
            "/console": {
                "get": {
                    "summary": "The operator console (HTML pages under /console/, see docs/console.md)",
                    "description": "Logs in with the console token (a session cookie) or takes it as a bearer token.",
                    "operationId": "console",
                    "security": [{"operatorToken": []}],
                    "responses": {
                        "200": {
                            "description": "The Live page",
                            "content": {"text/html": {"schema": {"type": "string"}}},
                        },
                        "303": {"description": "Not logged in: to the login form"},
                        "403": {
                            "description": "No operator token is configured",
                            "content": {"text/html": {"schema": {"type": "string"}}},
                        },
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This description",
                    "operationId": "openapi",
                    "responses": {
                        "200": {"description": "OpenAPI 3.1", "content": {JSON: {"schema": {"type": "object"}}}}
                    },
                }
            },
        },
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "operatorToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "`[operator] token` from the configuration (403 while none is set)",
                }
            },
        },
    }


def _version() -> str:
    try:
        return metadata.version("callstream")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree without installing
        return "0.0.0"


def render(spec: dict[str, Any]) -> bytes:
    """The document as written to ``docs/openapi.json``: indented, keys in a stable order, final newline."""
    return orjson.dumps(spec, option=orjson.OPT_INDENT_2) + b"\n"
