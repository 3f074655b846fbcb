"""The path of one delivery after its source is known: verify, spend its nonces, normalize, apply.

Shared by the HTTP endpoint and by redriving dead letters. A nonce (a signature's single-use value) is
spent before anything is done with the request, on every path: in the same Redis step as the event when
the request becomes one, in a round trip of its own when it does not (a dead letter). A request whose
nonce another request already spent is refused (401 ``replayed_request``) and nothing of it is kept.
Errors after authentication keep the request in the dead-letter stream before they are reported, so
nothing that passed authentication is lost.
"""

from __future__ import annotations

import hashlib
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
from receiver.settings import DeadLetterLimits
from receiver.signatures.common import UNVERIFIED, Verified
from statemachine.errors import ReplayedNonce, StoreUnavailable
from statemachine.machine import Outcome
from statemachine.store import CallStore, NonceClaim, StepResult

log = logging.getLogger("callstream.pipeline")


def fingerprint(delivery: Delivery) -> str:
    """A digest of what a retry of this request repeats byte for byte: method, URL, media type and body."""
    digest = hashlib.sha256(f"{delivery.method}\n{delivery.url}\n{delivery.media_type}\n".encode())
    digest.update(delivery.body)
    return digest.hexdigest()[:32]


class Pipeline:
    """Everything needed to process deliveries: the store and where dead letters go."""

    def __init__(
        self, store: CallStore, metrics: Metrics | None = None, deadletters: DeadLetterLimits | None = None
    ) -> None:
        self.store = store
        self.metrics = metrics if metrics is not None else Metrics()
        self.deadletters = deadletters or DeadLetterLimits()

    @property
    def redis(self) -> Redis:
        return self.store.redis

    async def process(
        self,
        delivery: Delivery,
        now: float,
        *,
        replay: bool = False,
        verified: Verified | None = None,
        replaces: str | None = None,
    ) -> list[dict[str, Any]]:
        """Process one delivery and return one result per canonical event it carried.

        ``verified`` skips the signature check, for a dead letter whose authentication was recorded when
        it was received (its nonces were spent then); ``replaces`` is that dead letter's id.
        """
        adapter = PROVIDERS[delivery.source.provider]
        source = delivery.source.name
        logs.bind(source=source)
        if delivery.method not in adapter.methods:
            raise MethodNotAllowed(
                f"{adapter.name} callbacks use {' or '.join(adapter.methods)}, not {delivery.method}",
                method=delivery.method,
            )
        if verified is None:
            verified = self._verify(delivery, now)
        claim = self._claim(delivery, verified)
        try:
            events = adapter.normalize(delivery)
        except ReceiverError as err:
            await self._keep(delivery, verified, claim, err, replaces)
            raise
        if not events and claim is not None:
            await self._spend(claim)
        results = []
        for event in events:
            logs.bind(call_id=event.call_id)
            try:
                step = await self.store.apply(event, claim=claim, replay=replay)
            except StoreUnavailable as err:
                self._unavailable(source, "apply", err)
                raise RedisUnavailable() from err
            except ReplayedNonce as err:
                raise self._replayed(source) from err
            claim = None  # spent with the first event: the others are the same request
            self._count(source, step)
            results.append({"call_id": event.call_id, "event": event.event.value, **step.as_dict()})
        logs.bind(outcome=",".join(result["outcome"] for result in results))
        return results

    def _verify(self, delivery: Delivery, now: float) -> Verified:
        if not delivery.source.verify:
            return UNVERIFIED
        try:
            return PROVIDERS[delivery.source.provider].verify(delivery, now)
        except ReceiverError as err:
            self._rejected(delivery.source.name, err)
            raise

    def _claim(self, delivery: Delivery, verified: Verified) -> NonceClaim | None:
        """The nonces this request must spend, bound to its fingerprint; None when the scheme has none."""
        if not verified.nonces:
            return None
        ttl_ms = self.store.retention.nonce_ms if verified.nonce_ttl_s is None else verified.nonce_ttl_s * 1000
        return NonceClaim(delivery.source.name, verified.nonces, fingerprint(delivery), ttl_ms)

    async def _spend(self, claim: NonceClaim) -> None:
        """Spend nonces in a round trip of their own (a request that applies no step)."""
        try:
            await self.store.spend(claim)
        except StoreUnavailable as err:
            self._unavailable(claim.source, "nonce", err)
            raise RedisUnavailable() from err
        except ReplayedNonce as err:
            raise self._replayed(claim.source) from err

    async def _keep(
        self, delivery: Delivery, verified: Verified, claim: NonceClaim | None, err: ReceiverError, replaces: str | None
    ) -> None:
        """Keep an authenticated request that cannot be processed, once its nonces are spent; ``err`` gains
        the dead letter's id. A replayed nonce raises instead, and nothing is kept."""
        source = delivery.source.name
        if claim is not None:
            await self._spend(claim)
        status, code = http_error(err)
        try:
            kept = await deadletter.keep(
                self.redis, self.store.keys, delivery, verified, code, err.message, self.deadletters, replaces=replaces
            )
        except StoreUnavailable as unavailable:
            self._unavailable(source, "deadletter", unavailable)
            raise RedisUnavailable() from unavailable
        err.details["deadletter_id"] = kept.entry_id
        self.metrics.outcome(source, "dead_lettered")
        logs.bind(outcome="dead_lettered", error=code)
        log.warning(
            "dead-lettered: %s",
            err.message,
            extra={"code": code, "deadletter_id": kept.entry_id, "deadletter_new": kept.new},
        )

    # Observability hooks: counter increments and context binding only, nothing that waits.

    def _count(self, source: str, step: StepResult) -> None:
        self.metrics.outcome(source, step.outcome.value)
        if step.outcome is Outcome.APPLIED:
            self.metrics.transition(step.from_state, step.to_state)

    def _replayed(self, source: str) -> ReplayedRequest:
        replayed = ReplayedRequest("signature nonce was already used by another request", header="nonce")
        self._rejected(source, replayed)
        return replayed

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
