"""One received webhook request, as adapters see it: raw bytes, headers, URL; parsed on demand, once."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from typing import Any

import orjson

from receiver.errors import PayloadError, UnsupportedContentType
from receiver.settings import Source

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"

#: Deepest nesting accepted in a JSON body. Provider payloads nest a few levels; a deeper document is
#: refused here, since re-serializing it for the stream entry would hit orjson's limit of 255 levels.
MAX_JSON_DEPTH = 64


def nesting_exceeds(document: Any, limit: int) -> bool:
    """Whether a parsed JSON value nests arrays/objects deeper than ``limit`` (iterative: no recursion)."""
    pending: list[tuple[Any, int]] = [(document, 1)]
    while pending:
        value, depth = pending.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > limit:
                    return True
                pending.append((child, depth + 1))
    return False


MAX_FORM_FIELDS = 1000


_ESCAPES = re.compile("(?:%[0-9A-Fa-f]{2})+")


def _decoded(escapes: re.Match[str]) -> str:
    return bytes.fromhex(escapes.group().replace("%", "")).decode("utf-8")


def _unquote(text: str) -> str:
    """``urllib.parse.unquote(text, errors="strict")``. ASCII text (a form body always is, unless a sender
    breaks the encoding) has its runs of escapes decoded by one regular expression: the same text, or the
    same UnicodeDecodeError, since an ASCII character between escapes can never complete a UTF-8 sequence."""
    if not text.isascii():
        return urllib.parse.unquote(text, errors="strict")
    return _ESCAPES.sub(_decoded, text)


def parse_form(text: str) -> list[tuple[str, str]]:
    """Form fields in order, as ``urllib.parse.parse_qsl(text, keep_blank_values=True, strict_parsing=True,
    errors="strict", max_num_fields=MAX_FORM_FIELDS)`` parses them (an empty body has no fields), at about
    half its cost: fields without ``%`` or ``+`` (most of a provider's) skip the unquoting calls.

    Raises ValueError for a field without ``=`` or too many fields, UnicodeDecodeError for percent-escapes
    that are not UTF-8, with parse_qsl's messages.
    """
    if not text:
        return []
    if text.count("&") >= MAX_FORM_FIELDS:
        raise ValueError("Max number of fields exceeded")
    unquote = _unquote
    pairs = []
    for field in text.split("&"):
        name, equals, value = field.partition("=")
        if not equals:
            raise ValueError(f"bad query field: {field!r}")
        # Each half is unquoted only when it needs it (names hardly ever do); the result is the same.
        if "%" in name or "+" in name:
            name = unquote(name.replace("+", " "))
        if "%" in value or "+" in value:
            value = unquote(value.replace("+", " "))
        pairs.append((name, value))
    return pairs


class Delivery:
    """A request to ``/webhooks/<source>``. Header names are lower-case.

    ``url`` is the public URL the provider called (the source's configured ``public_url`` when set,
    since TLS usually ends at a proxy), with the request's query; signature schemes that sign the URL
    use it. A GET callback (Twilio ``StatusCallbackMethod=GET``, Plivo and Vobiz ``*_method=GET``,
    Vonage ``event_method=GET``) carries its fields in that query instead of a body.
    """

    __slots__ = ("_form", "_json", "_query", "body", "headers", "method", "received_at", "source", "url")

    def __init__(
        self,
        source: Source,
        body: bytes,
        headers: Mapping[str, str],
        url: str,
        received_at: float,
        method: str = "POST",
    ) -> None:
        self.source = source
        self.body = body
        self.headers = headers
        self.url = url
        self.received_at = received_at
        self.method = method
        self._form: list[tuple[str, str]] | None = None
        self._json: dict[str, Any] | None = None
        self._query: list[tuple[str, str]] | None = None

    @property
    def media_type(self) -> str:
        """The Content-Type without parameters, lower-case ('' when missing)."""
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    def form_pairs(self) -> list[tuple[str, str]]:
        """The body as form fields in order, repeated names kept."""
        if self._form is None:
            try:
                text = self.body.decode("utf-8")
            except UnicodeDecodeError as err:
                raise PayloadError(f"form body is not valid UTF-8 at byte {err.start}") from err
            self._form = _parsed_pairs(text, "form body")
        return self._form

    def query_pairs(self) -> list[tuple[str, str]]:
        """The URL's query string as fields in order, repeated names kept: a GET callback's fields."""
        if self._query is None:
            self._query = _parsed_pairs(urllib.parse.urlsplit(self.url).query, "query string")
        return self._query

    def form(self) -> dict[str, str]:
        """The body as form fields, first value of each name."""
        return _first_values(self.form_pairs())

    def json(self) -> dict[str, Any]:
        """The body as a JSON object."""
        if self._json is None:
            try:
                document = orjson.loads(self.body)
            except orjson.JSONDecodeError as err:
                raise PayloadError(f"malformed JSON body: {err}") from err
            if not isinstance(document, dict):
                raise PayloadError(f"JSON body must be an object, got {type(document).__name__}")
            # Nesting depth cannot exceed the number of brackets: counting them (in C) spares most bodies the walk.
            brackets = self.body.count(b"{") + self.body.count(b"[")
            if brackets > MAX_JSON_DEPTH and nesting_exceeds(document, MAX_JSON_DEPTH):
                raise PayloadError(f"JSON body is nested deeper than {MAX_JSON_DEPTH} levels")
            self._json = document
        return self._json

    def fields(self, accepted: tuple[str, ...] = (FORM, JSON)) -> dict[str, Any]:
        """The callback's fields: a GET's query string, else the body parsed by its Content-Type, which must
        be one of ``accepted``."""
        if self.method == "GET":
            return _first_values(self.query_pairs())
        media_type = self.media_type
        if media_type not in accepted:
            raise UnsupportedContentType(
                f"Content-Type {media_type or '(missing)'!r} is not accepted here; expected one of: "
                + ", ".join(accepted)
            )
        return self.json() if media_type == JSON else self.form()


def _parsed_pairs(text: str, what: str) -> list[tuple[str, str]]:
    try:
        return parse_form(text)
    except UnicodeDecodeError as err:
        raise PayloadError(f"{what} has percent-escapes that are not UTF-8") from err
    except ValueError as err:
        raise PayloadError(f"malformed {what}: {err}") from err


def _first_values(pairs: list[tuple[str, str]]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for name, value in pairs:
        fields.setdefault(name, value)
    return fields
