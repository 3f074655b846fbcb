"""Form bodies are split and unquoted by the receiver's own parser, on the hot path; it must read every
body exactly as the standard library's ``parse_qsl`` does: the same fields, or a refusal for the same reason."""

from __future__ import annotations

import urllib.parse

from hypothesis import example, given
from hypothesis import strategies as st

from receiver.delivery import MAX_FORM_FIELDS, parse_form

#: Pieces a form body is made of, escapes that decode and escapes that do not among them.
PIECES = st.sampled_from(
    [
        "a",
        "Z",
        "0",
        "+",
        "=",
        "&",
        "%",
        "%2",
        "%2B",
        "%2b",
        "%C3",
        "%A9",
        "%C3%A9",
        "%E2%82%AC",
        "%FF",
        "%zz",
        "é",
        " ",
        "~",
    ]
)


def standard(text: str) -> list[tuple[str, str]] | str:
    try:
        return urllib.parse.parse_qsl(
            text, keep_blank_values=True, strict_parsing=True, errors="strict", max_num_fields=MAX_FORM_FIELDS
        )
    except UnicodeDecodeError:
        return "UnicodeDecodeError"
    except ValueError:
        return "ValueError"


def ours(text: str) -> list[tuple[str, str]] | str:
    try:
        return parse_form(text)
    except UnicodeDecodeError:
        return "UnicodeDecodeError"
    except ValueError:
        return "ValueError"


@given(st.lists(PIECES, max_size=40).map("".join) | st.text(max_size=60))
@example("From=%2B14155551234&Timestamp=Thu%2C+28+May+2026+17%3A30%3A01+%2B0000")
@example("a=%C3x%A9")
@example("a=%C3%A9%41&b=%E2%82")
def test_form_fields_are_the_standard_librarys(text: str) -> None:
    assert ours(text) == (standard(text) if text else [])
