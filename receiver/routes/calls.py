"""``GET /calls/{source}/{call_id}``: a call's current state, attempt, version and transition history.

An operator endpoint (see `receiver.operator`): closed (403) until an operator token is configured, then
401 without it. Authentication comes first, so source names cannot be probed without the token.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from receiver import logs, operator
from receiver.errors import RedisUnavailable, UnknownCall, UnknownSource
from receiver.pipeline import Pipeline
from receiver.responses import JSONResponse
from receiver.settings import Settings
from statemachine.errors import StoreUnavailable

log = logging.getLogger("callstream.calls")


def routes(settings: Settings) -> list[Route]:
    async def get_call(request: Request) -> Response:
        refused = operator.refusal(settings, request, "call lookup")
        if refused is not None:
            return refused
        source, call_id = request.path_params["source"], request.path_params["call_id"]
        logs.bind(source=source, call_id=call_id)
        if source not in settings.sources:
            raise UnknownSource(f"no source named {source!r} is configured", source=source)
        pipeline: Pipeline = request.app.state.pipeline
        try:
            record = await pipeline.store.get_call(source, call_id)
        except StoreUnavailable as err:
            pipeline.metrics.redis_error("lookup")
            log.warning("Redis is unavailable during lookup: %s", err)
            raise RedisUnavailable() from err
        if record is None:
            raise UnknownCall(f"no call {call_id!r} is known for source {source!r}", source=source, call_id=call_id)
        return JSONResponse(record.as_dict())

    # ``:text`` so that provider ids containing '/' (or any other character) can be looked up too.
    return [Route("/calls/{source}/{call_id:text}", get_call, methods=["GET"])]
