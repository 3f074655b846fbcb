"""The path of one delivery after its source is known: verify, normalize, apply.

Shared by the HTTP endpoint and by redriving dead letters. Errors after authentication keep the request
in the dead-letter stream before they are reported, so nothing that passed authentication is lost.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from receiver import deadletter
from receiver.delivery import Delivery
from receiver.errors import ReceiverError, RedisUnavailable, ReplayedRequest, http_error
from receiver.providers import PROVIDERS
from statemachine.errors import ReplayedNonce, StoreUnavailable
from statemachine.store import CallStore


class Pipeline:
    """Everything needed to process deliveries: the store and where dead letters go."""

    def __init__(self, store: CallStore) -> None:
        self.store = store

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
        nonce = None
        if delivery.source.verify and not verified:
            nonce = adapter.verify(delivery, now)
        try:
            events = adapter.normalize(delivery)
        except ReceiverError as err:
            status, code = http_error(err)
            try:
                entry_id = await deadletter.keep(self.redis, self.store.keys, delivery, code, err.message)
            except StoreUnavailable as unavailable:
                raise RedisUnavailable(f"Redis is unavailable: {unavailable}") from unavailable
            err.details["deadletter_id"] = entry_id
            raise
        results = []
        for event in events:
            try:
                step = await self.store.apply(event, nonce=None if replay else nonce, replay=replay)
            except StoreUnavailable as err:
                raise RedisUnavailable(f"Redis is unavailable: {err}") from err
            except ReplayedNonce as err:
                raise ReplayedRequest("signature nonce was already used by another request", header="nonce") from err
            results.append({"call_id": event.call_id, "event": event.event.value, **step.as_dict()})
        return results
