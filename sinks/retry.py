"""Sending one JSON request to a remote API until it answers for real: retries with backoff.

Retried: no answer at all, HTTP 429 and 5xx. A 429 or 503 with ``Retry-After`` (seconds, or an HTTP
date) waits what the server asked, capped; otherwise the wait doubles from ``base_delay_s`` with jitter.
Any other status is returned to the caller, whose business it is.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from receiver.reconcile.http import HttpResponse, TransportError, request

log = logging.getLogger("callstream.sinks")


class DeliveryFailed(Exception):
    """The remote API did not accept the request after every attempt."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try. ``max_delay_s`` also caps a server's ``Retry-After``."""

    max_attempts: int = 5
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0
    timeout_s: float = 10.0


def retry_after_s(value: str | None, now: float) -> float | None:
    """``Retry-After`` in seconds from now: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - now)


def _retryable(response: HttpResponse) -> bool:
    return response.status == 429 or response.status >= 500


async def send(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str],
    json: Any,
    policy: RetryPolicy,
) -> HttpResponse:
    """Send until a non-retryable answer comes back, and return it; raise `DeliveryFailed` when out of attempts."""
    problem = ""
    for attempt in range(1, policy.max_attempts + 1):
        try:
            response = await request(method, url, headers=headers, json=json, timeout_s=policy.timeout_s)
        except TransportError as err:
            problem, wait = str(err), None
        else:
            if not _retryable(response):
                return response
            problem = f"HTTP {response.status}"
            wait = retry_after_s(response.headers.get("retry-after"), time.time())
        if attempt == policy.max_attempts:
            break
        if wait is None:
            wait = policy.base_delay_s * 2 ** (attempt - 1) * random.uniform(0.8, 1.2)
        wait = min(wait, policy.max_delay_s)
        log.warning(
            "%s %s: %s; attempt %d of %d, retrying in %.2f s", method, url, problem, attempt, policy.max_attempts, wait
        )
        await asyncio.sleep(wait)
    raise DeliveryFailed(f"{method} gave up after {policy.max_attempts} attempts: {problem}")
