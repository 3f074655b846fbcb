"""Scenario files: recorded provider callbacks, in order, with what they must produce.

A scenario is a JSON file::

    {"name": "...", "provider": "vobiz", "description": "...", "call_ids": ["..."],
     "requests": [{"path": "/webhooks/vobiz", "content_type": "...", "headers": {...},
                   "body": "raw text" | "json": {...}, "expect": "applied"}],
     "expect": {"calls": {"<call id>": {"state": "completed", "attempt": 1}},
                "entries": [{"kind": "transition", "call_id": "...", "from_state": "new", "to_state": "ringing"}]}}

``body`` is sent byte for byte; ``json`` is serialized compactly. Requests are signed at send time
when a secret is given, as the provider would sign them.
"""

from __future__ import annotations

import random
import time
import urllib.parse
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson

from receiver.providers import PROVIDERS, OutgoingRequest


@dataclass(frozen=True, slots=True)
class ScenarioRequest:
    """One recorded callback."""

    path: str
    content_type: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    method: str = "POST"
    expect: str | None = None

    def signed_headers(self, provider: str, url: str, secret: str | None, now: float | None = None) -> dict[str, str]:
        """Headers to send: the recorded ones, Content-Type, and a fresh signature when ``secret`` is set."""
        headers = {"Content-Type": self.content_type, **self.headers}
        if secret is not None:
            outgoing = OutgoingRequest(url=url, body=self.body, content_type=self.content_type, method=self.method)
            headers.update(PROVIDERS[provider].sign(outgoing, secret, time.time() if now is None else now))
        return headers


@dataclass(frozen=True, slots=True)
class Scenario:
    """A recorded sequence of callbacks and the expected result."""

    name: str
    provider: str
    requests: tuple[ScenarioRequest, ...]
    call_ids: tuple[str, ...] = ()
    expect: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    @classmethod
    def load(cls, path: str | Path) -> Scenario:
        document = orjson.loads(Path(path).read_bytes())
        requests = []
        for item in document["requests"]:
            body = orjson.dumps(item["json"]) if "json" in item else str(item.get("body", "")).encode()
            requests.append(
                ScenarioRequest(
                    path=item.get("path", f"/webhooks/{document['provider']}"),
                    content_type=item["content_type"],
                    body=body,
                    headers=dict(item.get("headers", {})),
                    method=item.get("method", "POST"),
                    expect=item.get("expect"),
                )
            )
        return cls(
            name=document.get("name", Path(path).stem),
            provider=document["provider"],
            requests=tuple(requests),
            call_ids=tuple(document.get("call_ids", ())),
            expect=document.get("expect", {}),
            description=document.get("description", ""),
        )

    def with_source(self, source: str) -> Scenario:
        """The same scenario sent to ``/webhooks/<source>``."""
        return replace(self, requests=tuple(replace(r, path=f"/webhooks/{source}") for r in self.requests))

    def renamed(self, suffix: str) -> Scenario:
        """Every call id gets ``suffix``, so a scenario can be replayed again as new calls."""
        if not suffix:
            return self

        def rename(data: bytes) -> bytes:
            for call_id in self.call_ids:
                data = data.replace(call_id.encode(), (call_id + suffix).encode())
                # Form bodies carry ids percent-encoded (``v3:abc`` as ``v3%3Aabc``).
                encoded = urllib.parse.quote(call_id, safe="")
                if encoded != call_id:
                    data = data.replace(encoded.encode(), urllib.parse.quote(call_id + suffix, safe="").encode())
            return data

        expect = orjson.loads(rename(orjson.dumps(self.expect)))
        return replace(
            self,
            requests=tuple(replace(r, body=rename(r.body)) for r in self.requests),
            call_ids=tuple(call_id + suffix for call_id in self.call_ids),
            expect=expect,
        )

    def shuffled(self, seed: int | None) -> Scenario:
        """The requests in a random order (reproducible with ``seed``); per-request expectations dropped."""
        requests = list(self.requests)
        random.Random(seed).shuffle(requests)
        return replace(self, requests=tuple(replace(r, expect=None) for r in requests))
