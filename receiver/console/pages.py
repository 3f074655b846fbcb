"""The console's pages: Live, Calls (and one call's timeline), Dead letters (and redrive), Health.

Each handler reads through `receiver.queries` (the code the operator commands use) and renders a template;
every page works without JavaScript except the live updates of the Live page.
"""

from __future__ import annotations

import time
from dataclasses import fields
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from receiver import deadletter, redis_client
from receiver.console import lifecycle
from receiver.console.access import Visitor
from receiver.console.live import encode_cursor
from receiver.console.render import page
from receiver.providers import PROVIDERS
from receiver.providers.base import MAX_ID_LENGTH
from receiver.queries import calls as call_queries
from receiver.queries import deadletters as letters
from receiver.queries import is_entry_id, stats, transitions
from receiver.queries.transitions import KINDS, Filter
from receiver.sweeper import last_sweep
from statemachine.diagram import states
from statemachine.states import TERMINAL_STATES
from statemachine.store import UNAVAILABLE_ERRORS, CallStore

if TYPE_CHECKING:
    from receiver.console.routes import Context

WINDOWS = (5, 15, 60)
LIVE_ROWS = 50
LIST_LIMIT = 200
LISTS = {"recent": "Recently changed", "active": "In progress", "stale": "Stale (stuck)"}


def _base(visitor: Visitor, ctx: Context, current: str, title: str) -> dict[str, Any]:
    return {"current": current, "title": title, "csrf": ctx.access.csrf_token(visitor)}


def _store(request: Request, ctx: Context) -> CallStore:
    return CallStore(ctx.redis(request), ctx.settings.keys, ctx.settings.retention, batch=False)


async def live(request: Request, visitor: Visitor, ctx: Context) -> Response:
    redis, keys = ctx.redis(request), ctx.settings.keys
    where = Filter.of(request.query_params)
    minutes = (
        int(request.query_params.get("minutes", "15")) if request.query_params.get("minutes", "").isdigit() else 15
    )
    minutes = minutes if minutes in WINDOWS else 15
    # The cursor is read before the table: an entry added in between shows twice at worst, never not at all.
    cursor = await transitions.tips(redis, keys)
    entries = await transitions.latest(redis, keys, LIVE_ROWS, where)
    now_ms = int(time.time() * 1000)
    counts = await transitions.window_counts(redis, keys, now_ms - minutes * 60_000, where)
    filters = {name: value for name, value in vars_of(where).items() if value}
    events_url = "/console/live/events?" + urlencode(
        {**filters, "after": encode_cursor(cursor, keys.all_transitions())}
    )
    return page(
        "live.html",
        {
            **_base(visitor, ctx, "live", "Live"),
            "where": vars_of(where),
            "entries": entries,
            "counts": counts,
            "minutes": minutes,
            "windows": WINDOWS,
            "sources": sorted(ctx.settings.sources),
            "providers": sorted(PROVIDERS),
            "states": states(),
            "kinds": KINDS,
            "terminal": sorted(TERMINAL_STATES),
            "events_url": events_url,
        },
    )


def vars_of(where: Filter) -> dict[str, str]:
    return {field.name: getattr(where, field.name) or "" for field in fields(where)}


async def calls(request: Request, visitor: Visitor, ctx: Context) -> Response:
    store = _store(request, ctx)
    query = request.query_params.get("call_id", "").strip()
    chosen = request.query_params.get("list", "recent")
    chosen = chosen if chosen in LISTS else "recent"
    context: dict[str, Any] = {
        **_base(visitor, ctx, "calls", "Calls"),
        "query": query,
        "lists": LISTS,
        "chosen": chosen,
        "found": None,
        "error": None,
        "recent": [],
        "in_progress": [],
        "complete": True,
    }
    if query:
        if len(query) > MAX_ID_LENGTH:
            context["error"] = f"A call id is at most {MAX_ID_LENGTH} characters."
        else:
            context["found"] = await call_queries.find(store, ctx.settings.sources, query)
    elif chosen == "recent":
        context["recent"] = await call_queries.recent(store, LIST_LIMIT)
    else:
        found, complete = await call_queries.in_progress(store, ctx.settings, LIST_LIMIT, stale_only=chosen == "stale")
        context.update(in_progress=found, complete=complete)
    return page("calls.html", context)


def _timeline(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """History entries with the canonical event and the provider's raw payload apart, for display."""
    rows = []
    for entry in history:
        event = dict(entry.get("event") or {})
        raw = event.pop("raw", None)
        rows.append({**entry, "canonical": event or None, "raw": raw})
    return rows


async def call(request: Request, visitor: Visitor, ctx: Context) -> Response:
    source, call_id = request.path_params["source"], request.path_params["call_id"]
    record = await _store(request, ctx).get_call(source, call_id)
    context = {**_base(visitor, ctx, "calls", f"Call {call_id}"), "source": source, "call_id": call_id}
    if record is None:
        return page("call_missing.html", context, status_code=404)
    moves = lifecycle.path_of(record.history)
    return page(
        "call.html",
        {
            **context,
            "record": record,
            "timeline": _timeline(record.history),
            "diagram": lifecycle.svg(moves, record.state),
        },
    )


async def deadletters(request: Request, visitor: Visitor, ctx: Context) -> Response:
    redis, keys = ctx.redis(request), ctx.settings.keys
    start = request.query_params.get("from", "-")
    start = start if is_entry_id(start) else "-"
    found = await deadletter.entries(redis, keys, start, LIST_LIMIT + 1)
    return page(
        "deadletters.html",
        {
            **_base(visitor, ctx, "deadletters", "Dead letters"),
            "letters": found[:LIST_LIMIT],
            "next_from": found[LIST_LIMIT].entry_id if len(found) > LIST_LIMIT else None,
            "total": await redis.xlen(keys.deadletter()),
        },
    )


async def deadletter_page(request: Request, visitor: Visitor, ctx: Context) -> Response:
    entry_id = request.path_params["entry_id"]
    found = await letters.find(ctx.redis(request), ctx.settings.keys, entry_id)
    context = {**_base(visitor, ctx, "deadletters", f"Dead letter {entry_id}"), "entry_id": entry_id}
    if found is None:
        return page("deadletter_missing.html", context, status_code=404)
    return page("deadletter.html", {**context, "letter": letters.masked(found, ctx.settings)})


async def redrive(request: Request, visitor: Visitor, ctx: Context) -> Response:
    fields = await ctx.checked_form(request, visitor)
    if fields is None:
        context = {**_base(visitor, ctx, "deadletters", "Form expired")}
        context["message"] = "The form's CSRF token is missing or wrong: reload the page and try again."
        return page("problem.html", context, status_code=403)
    everything = fields.get("all") == ["1"]
    ids = [entry_id for entry_id in fields.get("id", []) if entry_id]
    context = _base(visitor, ctx, "deadletters", "Redrive")
    if not everything and not ids:
        context["message"] = "Choose a dead letter to redrive, or redrive all."
        return page("problem.html", context, status_code=400)
    reports = await letters.redrive(request.app.state.pipeline, ctx.settings, None if everything else ids)
    return page("redrive.html", {**context, "reports": reports, "counts": letters.counts(reports)})


async def health(request: Request, visitor: Visitor, ctx: Context) -> Response:
    redis, keys = ctx.redis(request), ctx.settings.keys
    context: dict[str, Any] = {
        **_base(visitor, ctx, "health", "Health"),
        "redis_url": redis_client.redacted(ctx.settings.redis_url)
        if ctx.settings.redis_url
        else "(the app's own client)",
        "reachable": False,
        "error": None,
        "sweeper_interval": ctx.settings.sweeper_interval_s,
        "now_ms": int(time.time() * 1000),
    }
    try:
        started = time.perf_counter()
        await redis.ping()
        context["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
        context["reachable"] = True
        context["stats"] = await stats.collect(redis, keys)
        context["last_sweep"] = await last_sweep(redis, keys)
        context["lease_ms"] = int(await redis.pttl(keys.sweeper_lease()))
    except UNAVAILABLE_ERRORS as err:
        context["error"] = type(err).__name__
    return page("health.html", context, status_code=200 if context["reachable"] else 503)
