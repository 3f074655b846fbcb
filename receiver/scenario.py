"""Scenario files: recorded provider callbacks, in order, with what they must produce.

A scenario is a JSON file::

    {"name": "...", "provider": "vobiz", "description": "...", "call_ids": ["..."],
     "origin": {...},
     "requests": [{"path": "/webhooks/vobiz", "content_type": "...", "headers": {...},
                   "body": "raw text" | "json": {...}, "expect": "applied"}],
     "expect": {"calls": {"<call id>": {"state": "completed", "attempt": 1}},
                "entries": [{"kind": "transition", "call_id": "...", "from_state": "new", "to_state": "ringing"}]}}

``body`` is sent byte for byte; ``json`` is serialized compactly. A GET callback has ``"method": "GET"``
and its fields as ``"query"`` (raw text, sent byte for byte after ``?``), no body and no content type.
Requests are signed at send time when a secret is given, as the provider would sign them.

``origin`` (optional) says where a payload published by a provider or captured in public comes from:
``{"url": "..."}`` for a documentation page, or ``{"repository": "owner/name", "path": "...", "commit":
"..."}``, plus ``"represents"``: what the payload is. Scenarios written by this project have none.
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
    query: str = ""

    @property
    def target(self) -> str:
        """The path with the query, as the request line carries it."""
        return f"{self.path}?{self.query}" if self.query else self.path

    def signed_headers(self, provider: str, url: str, secret: str | None, now: float | None = None) -> dict[str, str]:
        """Headers to send: the recorded ones, Content-Type (when there is a body), and a fresh signature when
        ``secret`` is set. ``url`` is the full URL the request goes to, with its query."""
        headers = {**({"Content-Type": self.content_type} if self.content_type else {}), **self.headers}
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
    origin: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path) -> Scenario:
        document = orjson.loads(Path(path).read_bytes())
        requests = []
        for item in document["requests"]:
            body = orjson.dumps(item["json"]) if "json" in item else str(item.get("body", "")).encode()
            requests.append(
                ScenarioRequest(
                    path=item.get("path", f"/webhooks/{document['provider']}"),
                    content_type=item.get("content_type", ""),
                    body=body,
                    headers=dict(item.get("headers", {})),
                    method=item.get("method", "POST"),
                    expect=item.get("expect"),
                    query=item.get("query", ""),
                )
            )
        return cls(
            name=document.get("name", Path(path).stem),
            provider=document["provider"],
            requests=tuple(requests),
            call_ids=tuple(document.get("call_ids", ())),
            expect=document.get("expect", {}),
            description=document.get("description", ""),
            origin=dict(document.get("origin", {})),
        )

    def with_source(self, source: str) -> Scenario:
        """The same scenario sent to ``/webhooks/<source>``."""
        return replace(self, requests=tuple(replace(r, path=f"/webhooks/{source}") for r in self.requests))

    def renamed(self, suffix: str) -> Scenario:
        """Every call id gets ``suffix``, so a scenario can be replayed again as new calls."""
        if not suffix:
            return self

        def rename_text(text: str) -> str:
            return rename(text.encode()).decode()

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
            requests=tuple(replace(r, body=rename(r.body), query=rename_text(r.query)) for r in self.requests),
            call_ids=tuple(call_id + suffix for call_id in self.call_ids),
            expect=expect,
        )

    def shuffled(self, seed: int | None) -> Scenario:
        """The requests in a random order (reproducible with ``seed``); per-request expectations dropped."""
        requests = list(self.requests)
        random.Random(seed).shuffle(requests)
        return replace(self, requests=tuple(replace(r, expect=None) for r in requests))
