"""The small interface every provider adapter implements, and the helpers they share.

An adapter is a `ProviderAdapter` value in its own module (``receiver/providers/<name>.py``):
``verify`` authenticates a delivery, ``normalize`` turns it into canonical `CallEvent` values, and
``sign`` produces the headers the provider would send (for ``callstream replay`` and tests).
Normalization is pure: bytes and headers in, events out.
"""

from __future__ import annotations

import math
import re
import unicodedata
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from receiver.delivery import FORM, Delivery
from receiver.errors import InvalidField, MissingField
from receiver.signatures.common import Verified
from statemachine.events import CallEvent
from statemachine.states import Trigger


@dataclass(frozen=True, slots=True)
class OutgoingRequest:
    """A request as a provider would send it, before signing: what ``sign`` needs."""

    url: str
    body: bytes
    content_type: str
    method: str = "POST"

    def form_pairs(self) -> list[tuple[str, str]]:
        """The body's form fields in order (none unless a form-encoded POST): what URL+params schemes sign."""
        if self.method != "POST" or self.content_type.split(";", 1)[0].strip().lower() != FORM:
            return []
        return urllib.parse.parse_qsl(self.body.decode(), keep_blank_values=True)


#: ``verify(delivery, now)`` raises `SignatureError`; returns what the signature proved (`Verified`): the
#: headers it covered and any nonces that must authenticate this request only.
Verify = Callable[[Delivery, float], Verified]
Normalize = Callable[[Delivery], list[CallEvent]]
Sign = Callable[[OutgoingRequest, str, float], dict[str, str]]


@dataclass(frozen=True, slots=True)
class ProviderAdapter:
    """One provider: how its callbacks are authenticated and what they mean.

    ``methods`` are the HTTP methods the provider can be configured to call with. A GET callback carries
    its fields in the URL's query string (`Delivery.fields` reads them there) and has no body.
    """

    name: str
    verify: Verify
    normalize: Normalize
    sign: Sign
    content_types: tuple[str, ...]
    methods: tuple[str, ...] = ("POST",)


MAX_ID_LENGTH = 256
_UNSAFE_ID = re.compile(r"[\x00-\x20\x7f]")
# Beyond ASCII, Unicode's "other" (control, format such as U+202E, unassigned) and "separator" (U+2028, no-break
# spaces) categories: characters that reorder, hide or break the text an operator reads an id in.


def checked_id(value: Any, field: str) -> str:
    """A provider-supplied id that is safe to put in a Redis key: present, bounded, no control characters."""
    if value is None or value == "":
        raise MissingField(f"{field} is missing", field=field)
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise InvalidField(f"{field} must be a string", field=field)
    text = str(value)
    if len(text) > MAX_ID_LENGTH:
        raise InvalidField(f"{field} is longer than {MAX_ID_LENGTH} characters", field=field)
    if _UNSAFE_ID.search(text) if text.isascii() else any(unicodedata.category(ch)[0] in "CZ" for ch in text):
        raise InvalidField(f"{field} contains whitespace or control characters", field=field)
    return text


#: Dotted paths split once: adapters dig the same few paths on every request.
_PATH_PARTS: dict[str, tuple[str, ...]] = {}


def dig(document: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path (``"data.call.id"``) in a JSON document, or None."""
    parts = _PATH_PARTS.get(path)
    if parts is None:
        parts = _PATH_PARTS[path] = tuple(path.split("."))
    value: Any = document
    for part in parts:
        # Decoded JSON is made of plain dicts: test for them first, the Mapping ABC check costs more.
        if type(value) is not dict and not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def text_or_none(value: Any) -> str | None:
    """A field as text, with empty strings as None."""
    if value is None or value == "":
        return None
    return str(value)


def number_or_none(value: Any) -> float | int | None:
    """A numeric field (which form bodies carry as text) as a number, or None when absent or not numeric."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    try:
        number = float(str(value))
    except ValueError:
        return None
    if not math.isfinite(number):
        return None
    if number.is_integer():
        # Stream entries are JSON: an integer beyond 64 bits could not be published.
        return int(number) if -(2**63) <= number < 2**63 else None
    return number


def iso_utc(value: Any) -> str | None:
    """An ISO 8601 timestamp with a zone, normalized to UTC; None when absent or without a zone."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    if len(value) == 20 and value[10] == "T" and value[19] == "Z" and value.isascii():
        # Already whole seconds in UTC, as most providers send them: normalizing gives the same text.
        return value
    return as_utc(moment)


def as_utc(moment: datetime) -> str | None:
    """A zoned time as ISO 8601 UTC; None when UTC cannot represent it (year 9999 west of UTC, year 1 east)."""
    try:
        return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
    except OverflowError:
        return None


def unix_utc(seconds: Any) -> str | None:
    """Unix seconds as an ISO 8601 UTC timestamp."""
    number = number_or_none(seconds)
    if number is None:
        return None
    try:
        return datetime.fromtimestamp(number, UTC).isoformat().replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        return None


def received_at(delivery: Delivery) -> str:
    """When the delivery arrived, as ISO 8601 UTC with milliseconds (``2026-05-29T12:10:00.123Z``)."""
    return utc_millis(delivery.received_at)


#: The last second `utc_millis` formatted, and its text: deliveries arrive many to a second.
_LAST_SECOND: tuple[int, str] = (0, "1970-01-01T00:00:00")


def utc_millis(timestamp: float) -> str:
    """Unix seconds as ISO 8601 UTC with milliseconds: the text of
    ``datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")`` ending in ``Z``, with the
    same rounding (to the microsecond, half to even, then truncated), the date part formatted once a second.
    """
    global _LAST_SECOND
    fraction, whole = math.modf(timestamp)
    micros = round(fraction * 1_000_000)
    if micros >= 1_000_000:
        whole, micros = whole + 1, micros - 1_000_000
    elif micros < 0:
        whole, micros = whole - 1, micros + 1_000_000
    second = int(whole)
    cached_second, text = _LAST_SECOND
    if second != cached_second:
        text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _LAST_SECOND = (second, text)
    return f"{text}.{micros // 1000:03d}Z"


def normalized_name(value: str) -> str:
    """Provider event and cause names compared case- and punctuation-insensitively: ``Busy Line`` → ``busy_line``."""
    return re.sub(r"[^a-z0-9]+", "_", value.strip().lower()).strip("_")


def make_event(
    delivery: Delivery,
    *,
    call_id: Any,
    call_id_field: str,
    trigger: Trigger,
    provider_event: str,
    provider_status: str | None,
    dedupe_key: str,
    raw: dict[str, Any],
    occurred_at: str | None = None,
    from_number: Any = None,
    to_number: Any = None,
    direction: str | None = None,
    correlation: Mapping[str, Any] | None = None,
    extras: Mapping[str, Any] | None = None,
) -> CallEvent:
    """Build a canonical event, checking the call id and dropping empty correlation and extra fields."""
    return CallEvent(
        source=delivery.source.name,
        provider=delivery.source.provider,
        call_id=checked_id(call_id, call_id_field),
        event=trigger,
        provider_event=provider_event,
        provider_status=provider_status,
        dedupe_key=dedupe_key,
        received_at=received_at(delivery),
        occurred_at=occurred_at,
        from_number=text_or_none(from_number),
        to_number=text_or_none(to_number),
        direction=direction,
        correlation={key: str(value) for key, value in (correlation or {}).items() if value not in (None, "")},
        extras={key: value for key, value in (extras or {}).items() if value not in (None, "")},
        raw=raw,
    )
