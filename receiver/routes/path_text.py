"""The ``{name:text}`` path convertor: a path tail of any characters, line breaks included.

Starlette's ``path`` convertor is ``.*``, which stops at a newline, and its ``$`` also matches before a final
newline: ``/calls/s/a%0A`` would be read as call ``a`` and ``/calls/s/a%0Ab`` would match no route at all.
Call ids are provider text, so a lookup names exactly the id it was given, whatever it contains.
"""

from __future__ import annotations

from starlette.convertors import Convertor, register_url_convertor


class TextConvertor(Convertor[str]):
    """Any non-empty text, ``/`` and line breaks included."""

    regex = r"[\s\S]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("text", TextConvertor())
