"""HTML responses of the console: templates with escaping always on, and the headers every page carries.

Everything a provider sent (call ids, payloads, headers) is attacker-controlled, so templates autoescape
every value, nothing is marked safe except the SVG that `receiver.console.lifecycle` escapes itself, and
the Content-Security-Policy allows only the console's own script and style files (no inline script at
all), so a string that slipped through escaping still could not run.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

import orjson
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.responses import HTMLResponse

from receiver.queries.transitions import entry_ms
from receiver.timefmt import duration, iso_ms

#: Sent with every console response.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the login URL carries the token
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}

#: The pages in the navigation: (name, path, label).
NAV = (
    ("live", "/console", "Live"),
    ("calls", "/console/calls", "Calls"),
    ("deadletters", "/console/deadletters", "Dead letters"),
    ("health", "/console/health", "Health"),
)


def call_url(source: str, call_id: str) -> str:
    """The timeline page of a call; each part percent-encoded, so any id (``/``, ``?``, quotes) is safe."""
    return f"/console/calls/{quote(source, safe='')}/{quote(call_id, safe='')}"


def deadletter_url(entry_id: str) -> str:
    return f"/console/deadletters/{quote(entry_id, safe='')}"


def pretty_json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()


def entry_time(entry_id: str) -> str:
    return iso_ms(entry_ms(entry_id))


ENV = Environment(
    loader=PackageLoader("receiver.console", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
ENV.globals.update(
    nav=NAV,
    call_url=call_url,
    deadletter_url=deadletter_url,
    urlencode=urlencode,
)
ENV.filters.update(iso_ms=iso_ms, duration=duration, pretty_json=pretty_json, entry_time=entry_time)


def page(template: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    """Render ``template`` with ``context`` into a response with the console's headers."""
    context.setdefault("current", "")
    context.setdefault("csrf", None)
    html = ENV.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status_code, headers=HEADERS)
