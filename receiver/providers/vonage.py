"""Vonage Voice API: JSON event webhooks, one per call-leg status.

The leg id is ``uuid``, except on ``human`` / ``machine`` (answering-machine detection), which the
reference documents with ``call_uuid``; both are read. Vonage sends no event id or sequence number, so
the dedupe key is ``uuid:status:timestamp``. Decisions a reader should know:

- ``rejected`` is "rejected by Vonage before it was connected": a platform refusal, not the callee
  declining (Vonage reports declines as ``unanswered``). It maps to ``failed`` with
  ``reason = platform_rejected``, keeping the canonical ``rejected`` for a far end that refused.
- ``timeout`` (ringing outlasted ``ringing_timeout``) and ``unanswered`` map to ``no_answer``.
- ``human`` / ``machine`` are annotations carrying ``answered_by``; ``disconnected`` (the app side ended a
  WebSocket leg) is an annotation too, since the leg's outcome follows in its own event.
- Non-status events (``record``, ``input``, ``transfer``) carry no ``status`` and are dead-lettered as
  unknown events.

Signature: ``Authorization: Bearer <JWT>``, HS256 with the account's signature secret; ``iat`` must be
within the source's tolerance and ``payload_hash``, when present, the SHA-256 of the raw body (of the
query parameters as compact JSON for a GET callback, ``event_method=GET``, whose fields arrive in the query). A
token without ``payload_hash`` does not bind the body, so it must carry a ``jti``, which is spent before the
request is acted on: it authenticates one request only.
Sources: ../shared/providers.md §7, §10.2; developer.vonage.com/en/voice/voice-api/webhook-reference;
vonage-python-sdk ``jwt/src/vonage_jwt/verify_jwt.py``.
"""

from __future__ import annotations

import urllib.parse
import uuid
from typing import Any

import orjson

from receiver.delivery import JSON, Delivery
from receiver.errors import UnknownEvent
from receiver.providers.base import (
    OutgoingRequest,
    ProviderAdapter,
    iso_utc,
    make_event,
    number_or_none,
    text_or_none,
)
from receiver.signatures import jwt_hs256, shared_secret
from receiver.signatures.common import Verified, required_header, secrets_of
from statemachine.events import CallEvent
from statemachine.states import Trigger

NAME = "vonage"
AUTHORIZATION = "Authorization"

STATUSES: dict[str, Trigger] = {
    "started": Trigger.DIALING,
    "ringing": Trigger.RINGING,
    "answered": Trigger.ANSWERED,
    "completed": Trigger.COMPLETED,
    "busy": Trigger.BUSY,
    "cancelled": Trigger.CANCELED,
    "unanswered": Trigger.NO_ANSWER,
    "timeout": Trigger.NO_ANSWER,
    "rejected": Trigger.FAILED,
    "failed": Trigger.FAILED,
    "human": Trigger.ANNOTATION,
    "machine": Trigger.ANNOTATION,
    "disconnected": Trigger.ANNOTATION,
}

#: Facts a status adds beyond its trigger.
STATUS_EXTRAS: dict[str, dict[str, str]] = {
    "rejected": {"reason": "platform_rejected"},
    "timeout": {"reason": "ring_timeout"},
    "human": {"annotation": "machine_detection", "answered_by": "human"},
    "machine": {"annotation": "machine_detection", "answered_by": "machine"},
    "disconnected": {"annotation": "disconnected"},
}


def normalize(delivery: Delivery) -> list[CallEvent]:
    """One Vonage event webhook → one canonical event."""
    document = delivery.fields((JSON,))
    status = str(document.get("status") or "")
    if status not in STATUSES:
        raise UnknownEvent(f"unknown Vonage status {status or '(none)'!r}", event=status)
    call_id = document.get("uuid") or document.get("call_uuid")
    timestamp = document.get("timestamp")
    extras: dict[str, Any] = {
        "reason": text_or_none(document.get("reason")),
        "detail": text_or_none(document.get("detail")),
        "start_time": iso_utc(document.get("start_time")),
        "end_time": iso_utc(document.get("end_time")),
        "duration_s": number_or_none(document.get("duration")),
        "rate": text_or_none(document.get("rate")),
        "price": text_or_none(document.get("price")),
        "network": text_or_none(document.get("network")),
        **STATUS_EXTRAS.get(status, {}),
    }
    return [
        make_event(
            delivery,
            call_id=call_id,
            call_id_field="uuid",
            trigger=STATUSES[status],
            provider_event=status,
            provider_status=status,
            dedupe_key=f"{call_id}:{status}:{timestamp}",
            occurred_at=iso_utc(timestamp),
            from_number=document.get("from"),
            to_number=document.get("to"),
            direction=text_or_none(document.get("direction")),
            correlation={"conversation_uuid": document.get("conversation_uuid")},
            extras=extras,
            raw=document,
        )
    ]


def signed_payload(method: str, url: str, body: bytes) -> bytes:
    """What ``payload_hash`` covers: the body of a POST; for a GET (``event_method=GET``), its query
    parameters as one compact JSON object, in the order they were sent (Vonage: "create an object of the
    query parameters for GET ... convert that object to a JSON string with no whitespace")."""
    if method != "GET":
        return body
    pairs = urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query, keep_blank_values=True)
    return orjson.dumps(dict(pairs))


def verify(delivery: Delivery, now: float) -> Verified:
    """The bearer JWT: signed with any secret, fresh ``iat``, ``payload_hash`` of this payload, else a ``jti``."""
    token = shared_secret.bearer_token(required_header(delivery.headers, AUTHORIZATION), AUTHORIZATION)
    tolerance_s = delivery.source.timestamp_tolerance_s
    claims = jwt_hs256.verify(
        secrets_of(delivery.source.secrets),
        token,
        signed_payload(delivery.method, delivery.url, delivery.body),
        now,
        tolerance_s,
        AUTHORIZATION,
    )
    return jwt_hs256.verified(claims, tolerance_s, AUTHORIZATION)


def sign(request: OutgoingRequest, secret: str, now: float) -> dict[str, str]:
    """A bearer token as Vonage issues it for a signed callback."""
    claims = {
        "iat": int(now),
        "jti": str(uuid.uuid4()),
        "iss": "Vonage",
        "payload_hash": jwt_hs256.payload_hash(signed_payload(request.method, request.url, request.body)),
        "api_key": "callstream",
    }
    return {AUTHORIZATION: "Bearer " + jwt_hs256.encode(claims, secret)}


ADAPTER = ProviderAdapter(
    name=NAME, verify=verify, normalize=normalize, sign=sign, content_types=(JSON,), methods=("POST", "GET")
)
