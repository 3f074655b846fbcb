"""The receiver's errors, and the one table that maps each to an HTTP status and error code."""

from __future__ import annotations

from typing import Any


class ReceiverError(Exception):
    """Base class: a request that cannot be processed, with a message safe to show the sender."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class UnknownSource(ReceiverError):
    """No source is configured under the name in the path."""


class BodyTooLarge(ReceiverError):
    """The body is over the configured limit."""


class MethodNotAllowed(ReceiverError):
    """The request's HTTP method is not one the source's provider calls with (every provider POSTs; some GET)."""


class IncompleteBody(ReceiverError):
    """The connection ended (or timed out) before the whole body arrived (``callstream serve``: or the headers)."""


class MalformedRequest(ReceiverError):
    """``callstream serve``: the bytes received are not a valid HTTP/1.1 request."""


class HeadersTooLarge(ReceiverError):
    """``callstream serve``: the request line and headers are over ``max_header_bytes``."""


class TooManyConnections(ReceiverError):
    """``callstream serve``: the process already holds ``max_connections`` connections; retry later."""


class UnsupportedContentType(ReceiverError):
    """The body's Content-Type is not one the provider sends."""


class PayloadError(ReceiverError):
    """The body cannot be parsed (malformed JSON or form data, invalid UTF-8, too deep, not an object)."""


class MissingField(ReceiverError):
    """A field every event of this provider must carry is missing."""


class InvalidField(ReceiverError):
    """A field is present but unusable (an id with control characters or over the length limit)."""


class UnknownEvent(ReceiverError):
    """The provider is known but this event or status is not: kept in the dead-letter stream."""


class SignatureError(ReceiverError):
    """Authentication failed. The message names the header, never the expected value."""


class ReplayedRequest(SignatureError):
    """A signature nonce or timestamp was already used for a different request."""


class RedisUnavailable(ReceiverError):
    """Redis could not be reached or did not answer in time; the provider should retry.

    Its message never says which Redis or why (an address is no business of the sender's): the cause goes
    to the log.
    """

    MESSAGE = "Redis is unavailable; retry later"

    def __init__(self, message: str = MESSAGE, **details: Any) -> None:
        super().__init__(message, **details)


class OperatorAuthError(ReceiverError):
    """An operator endpoint was called without the operator token, or with a wrong one."""


class OperatorAccessDisabled(ReceiverError):
    """An operator endpoint was called but no operator token is configured, so it stays closed."""


class UnknownCall(ReceiverError):
    """No call with this id is known for the source (never seen, or expired)."""


#: One table from error class to (HTTP status, error code). Looked up along the class's MRO.
HTTP_ERRORS: dict[type[ReceiverError], tuple[int, str]] = {
    UnknownSource: (404, "unknown_source"),
    BodyTooLarge: (413, "body_too_large"),
    MethodNotAllowed: (405, "method_not_allowed"),
    IncompleteBody: (408, "request_timeout"),
    MalformedRequest: (400, "malformed_request"),
    HeadersTooLarge: (431, "headers_too_large"),
    UnsupportedContentType: (415, "unsupported_content_type"),
    PayloadError: (400, "malformed_body"),
    MissingField: (422, "missing_field"),
    InvalidField: (422, "invalid_field"),
    UnknownEvent: (202, "unknown_event"),
    ReplayedRequest: (401, "replayed_request"),
    SignatureError: (401, "invalid_signature"),
    RedisUnavailable: (503, "redis_unavailable"),
    TooManyConnections: (503, "too_many_connections"),
    OperatorAuthError: (401, "unauthorized"),
    OperatorAccessDisabled: (403, "operator_access_disabled"),
    UnknownCall: (404, "unknown_call"),
    ReceiverError: (400, "bad_request"),
}


def http_error(error: ReceiverError) -> tuple[int, str]:
    """Status and code for an error, from the most specific class in `HTTP_ERRORS`."""
    for cls in type(error).__mro__:
        if cls in HTTP_ERRORS:
            return HTTP_ERRORS[cls]
    raise LookupError(type(error))  # pragma: no cover - ReceiverError is always in the table
