"""The canonical event's times are written by shortcuts on the hot path; each must give exactly the text of
the plain datetime formula it replaces, for any input."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from hypothesis import example, given
from hypothesis import strategies as st

from receiver.providers.base import as_utc, iso_utc, utc_millis
from receiver.providers.twilio_family import timestamp_utc


def plain_millis(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def plain_iso_utc(value: str) -> str | None:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return None if moment.tzinfo is None else as_utc(moment)


@given(st.floats(min_value=0, max_value=253_402_300_799, allow_nan=False))
@example(1764763200.9999995)
@example(1764763200.0000005)
@example(1764763200.9995)
@example(1764763199.999999999)
def test_received_at_text_is_the_datetime_text(timestamp: float) -> None:
    assert utc_millis(timestamp) == plain_millis(timestamp)


def test_received_at_changes_with_the_second() -> None:
    """The date part is kept for one second only: the next second is formatted afresh."""
    assert [utc_millis(t) for t in (1764763200.25, 1764763201.5, 1764763200.75)] == [
        "2025-12-03T12:00:00.250Z",
        "2025-12-03T12:00:01.500Z",
        "2025-12-03T12:00:00.750Z",
    ]


@given(
    st.builds(
        lambda moment, separator, zone: moment.isoformat(sep=separator)[:19] + zone,
        st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
        st.sampled_from(["T", " ", "t"]),
        st.sampled_from(["Z", "z", "+00:00", "+05:30", "-08:00", ""]),
    )
    | st.text(alphabet="0123456789-:TZ+. ٠١٢", min_size=18, max_size=22)
)
@example("2026-05-29T12:10:00Z")
@example("2026-13-29T12:10:00Z")
@example("2026-05-29T24:00:00Z")
@example("٢٠٢٦-05-29T12:10:00Z")
def test_provider_times_normalize_as_datetime_does(value: str) -> None:
    assert iso_utc(value) == plain_iso_utc(value)


def plain_rfc2822_utc(value: str) -> str | None:
    """`twilio_family.timestamp_utc` as written before its shortcut: the general RFC 2822 parser."""
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return iso_utc(value)
    return None if moment.tzinfo is None else as_utc(moment)


@given(
    st.builds(
        lambda moment, zone: (
            moment.strftime("%a, %d %b ") + f"{moment.year:04d}" + moment.strftime(" %H:%M:%S ") + zone
        ),
        st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)),
        st.sampled_from(["+0000", "-0000", "+0530", "GMT"]),
    )
    | st.from_regex(
        r"(Mon|Sun|Xyz), [0-9]{2} (Jan|Feb|Dec|Foo) [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} [+-]0000", fullmatch=True
    )
)
@example("Thu, 28 May 2026 17:30:01 +0000")
@example("Thu, 31 Feb 2026 17:30:01 +0000")
@example("Thu, 28 May 2026 24:00:00 +0000")
@example("Thu, 28 May 0050 17:30:01 +0000")
def test_twilio_timestamps_read_as_the_rfc2822_parser_reads_them(value: str) -> None:
    assert timestamp_utc(value) == plain_rfc2822_utc(value)
