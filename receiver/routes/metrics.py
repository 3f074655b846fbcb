"""``GET /metrics``: Prometheus text format.

Open while no operator token is configured (the default configuration listens on loopback only); once
one is configured, scrapes must send it as ``Authorization: Bearer <token>``. Stream lengths are read at
scrape time with one pipelined round trip (one XLEN per stream: each partition's transitions stream and
the dead-letter stream); when Redis does not answer they are left out, the Redis error is counted, and
the rest is still served.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from receiver import operator
from receiver.pipeline import Pipeline
from receiver.settings import Settings
from statemachine.store import UNAVAILABLE_ERRORS


async def stream_lengths(pipeline: Pipeline) -> dict[tuple[str, str], int] | None:
    """Entries in each stream by (stream, partition), or None when Redis does not answer."""
    keys = pipeline.store.keys
    streams = {("transitions", str(partition)): key for partition, key in enumerate(keys.all_transitions())}
    streams["deadletter", ""] = keys.deadletter()  # one stream, not partitioned
    try:
        async with pipeline.redis.pipeline(transaction=False) as pipe:
            for key in streams.values():
                pipe.xlen(key)
            lengths = await pipe.execute()
    except UNAVAILABLE_ERRORS:
        pipeline.metrics.redis_error("metrics")
        return None
    return {name: int(length) for name, length in zip(streams, lengths, strict=True)}


def routes(settings: Settings) -> list[Route]:
    async def metrics(request: Request) -> Response:
        if settings.operator_token is not None:
            refused = operator.refusal(settings, request, "metrics")
            if refused is not None:
                return refused
        pipeline: Pipeline = request.app.state.pipeline
        body = pipeline.metrics.exposition(await stream_lengths(pipeline))
        return Response(body, media_type=CONTENT_TYPE_PLAIN_0_0_4)

    return [Route("/metrics", metrics, methods=["GET"])]
