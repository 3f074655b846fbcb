"""Times and durations as operators read them (the commands' output and the console)."""

from __future__ import annotations

from datetime import UTC, datetime


def iso_ms(ms: float) -> str:
    """Unix milliseconds as ISO 8601 UTC with milliseconds."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def duration(ms: int) -> str:
    """A TTL as days/hours/minutes/seconds; ``ms < 0`` means no expiry."""
    if ms < 0:
        return "never"
    seconds = ms // 1000
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s")]
    return "".join(f"{value}{unit}" for value, unit in parts if value) or "0s"
