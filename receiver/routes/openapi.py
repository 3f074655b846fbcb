"""``GET /openapi.json``: the OpenAPI 3.1 description of this service (`receiver.openapi`)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from receiver.openapi import build_spec, render
from receiver.settings import Settings


def routes(settings: Settings) -> list[Route]:
    # Built once: the description only changes with the configuration.
    body = render(build_spec(sorted(settings.sources)))

    async def openapi(_request: Request) -> Response:
        return Response(body, media_type="application/json")

    return [Route("/openapi.json", openapi, methods=["GET"])]
