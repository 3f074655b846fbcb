"""The path of one delivery after its source is known: verify, normalize, apply.

Shared by the HTTP endpoint and by redriving dead letters. Errors after authentication keep the request
in the dead-letter stream before they are reported, so nothing that passed authentication is lost.
"""

from __future__ import annotations

import logging
from typing import Any

from redis.asyncio import Redis

from receiver import deadletter, logs
from receiver.delivery import Delivery
from receiver.errors import (
    MethodNotAllowed,
    ReceiverError,
    RedisUnavailable,
    ReplayedRequest,
    SignatureError,
    http_error,
)
from receiver.metrics import Metrics
from receiver.providers import PROVIDERS
from statemachine.errors import ReplayedNonce, StoreUnavailable
from statemachine.machine import Outcome
from statemachine.store import CallStore, StepResult

log = logging.getLogger("callstream.pipeline")


class Pipeline:
    """Everything needed to process deliveries: the store and where dead letters go."""

    def __init__(self, store: CallStore, metrics: Metrics | None = None) -> None:
        self.store = store
        self.metrics = metrics if metrics is not None else Metrics()

    @property
    def redis(self) -> Redis:
        return self.store.redis

    async def process(
        self, delivery: Delivery, now: float, *, replay: bool = False, verified: bool = False
    ) -> list[dict[str, Any]]:
        """Process one delivery and return one result per canonical event it carried.

        ``verified`` skips the signature check, for dead letters that were verified when received.
        """
        adapter = PROVIDERS[delivery.source.provider]
        source = delivery.source.name
        logs.bind(source=source)
        if delivery.method not in adapter.methods:
            raise MethodNotAllowed(
                f"{adapter.name} callbacks use {' or '.join(adapter.methods)}, not {delivery.method}",
                method=delivery.method,
            )
        nonce = None
        if delivery.source.verify and not verified:
            try:
                nonce = adapter.verify(delivery, now)
            except ReceiverError as err:
                self._rejected(source, err)
                raise
        try:
            events = adapter.normalize(delivery)
        except ReceiverError as err:
            status, code = http_error(err)
            try:
                entry_id = await deadletter.keep(self.redis, self.store.keys, delivery, code, err.message)
            except StoreUnavailable as unavailable:
                self._unavailable(source, "deadletter", unavailable)
                raise RedisUnavailable(f"Redis is unavailable: {unavailable}") from unavailable
            err.details["deadletter_id"] = entry_id
            self.metrics.outcome(source, "dead_lettered")
            logs.bind(outcome="dead_lettered", error=code)
            log.warning("dead-lettered: %s", err.message, extra={"code": code, "deadletter_id": entry_id})
            raise
        results = []
        for event in events:
            logs.bind(call_id=event.call_id)
            try:
                step = await self.store.apply(event, nonce=None if replay else nonce, replay=replay)
            except StoreUnavailable as err:
                self._unavailable(source, "apply", err)
                raise RedisUnavailable(f"Redis is unavailable: {err}") from err
            except ReplayedNonce as err:
                replayed = ReplayedRequest("signature nonce was already used by another request", header="nonce")
                self._rejected(source, replayed)
                raise replayed from err
            self._count(source, step)
            results.append({"call_id": event.call_id, "event": event.event.value, **step.as_dict()})
        logs.bind(outcome=",".join(result["outcome"] for result in results))
        return results

    # Observability hooks: counter increments and context binding only, nothing that waits.

    def _count(self, source: str, step: StepResult) -> None:
        self.metrics.outcome(source, step.outcome.value)
        if step.outcome is Outcome.APPLIED:
            self.metrics.transition(step.from_state, step.to_state)

    def _rejected(self, source: str, err: ReceiverError) -> None:
        """Refused at authentication: counted, and the reason (naming a header, never a value) bound to the log."""
        if isinstance(err, SignatureError):
            self.metrics.signature_failure(source)
        else:
            self.metrics.outcome(source, "rejected")
        logs.bind(outcome="rejected", error=http_error(err)[1], reason=err.message)

    def _unavailable(self, source: str, operation: str, err: StoreUnavailable) -> None:
        self.metrics.redis_error(operation)
        self.metrics.outcome(source, "unavailable")
        logs.bind(outcome="unavailable", error="redis_unavailable")
        log.error("Redis is unavailable during %s: %s", operation, err, extra={"operation": operation})
