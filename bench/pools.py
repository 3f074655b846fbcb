"""Request pools for the load runs: real, signed provider callbacks, each for a call of a large pool.

A pool is a file of complete HTTP/1.1 requests separated by NUL bytes, built once before the rounds
and replayed in order by ``wrk/pool.lua``. Requests come in phases (every call's first event, then
every call's second, ...), so consecutive requests touch different calls and each one is a real
transition. The Redis database is flushed before every round, so each round replays the same pool
against fresh state.

Bodies come from the recorded fixture scenarios (``fixtures/<provider>/*.json``) with the call ids
renamed, and are signed with the adapter's own ``sign``, exactly as the provider would send them.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, replace
from pathlib import Path

import orjson

from receiver.providers import PROVIDERS
from receiver.scenario import Scenario, ScenarioRequest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
PUBLIC_BASE = "https://hooks.example.com"

#: Secrets of the benchmark's sources (also written into its configuration file).
SECRETS = {"vobiz": "bench-vobiz-auth-token", "minivoice": "bench-minivoice-secret", "twilio": "bench-twilio-token"}

#: Per provider: the fixture scenario whose requests make up one call's life.
SCENARIOS = {"vobiz": "vobiz/answered.json", "minivoice": "minivoice/answered.json", "twilio": "twilio/answered.json"}


def form_provider() -> str:
    """Twilio when its adapter and an answered-call fixture exist, else Vobiz (Plivo-style form callbacks)."""
    if "twilio" in PROVIDERS and (FIXTURES / SCENARIOS["twilio"]).exists():
        return "twilio"
    return "vobiz"


def public_url(source: str) -> str:
    return f"{PUBLIC_BASE}/webhooks/{source}"


def raw_request(request: ScenarioRequest, headers: dict[str, str]) -> bytes:
    """A complete HTTP/1.1 request, as wrk sends it."""
    lines = [f"{request.method} {request.path} HTTP/1.1", "Host: bench", f"Content-Length: {len(request.body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + request.body


@dataclass(frozen=True, slots=True)
class Pool:
    """A pool file and what it holds."""

    path: Path
    provider: str
    requests: int
    calls: int
    mix: dict[str, int]


def calls(provider: str, count: int, tag: str) -> list[Scenario]:
    """``count`` copies of the provider's answered-call scenario, each with its own call ids."""
    base = Scenario.load(FIXTURES / SCENARIOS[provider]).with_source(provider)
    return [base.renamed(f"-{tag}{index:07d}") for index in range(count)]


def _signed(provider: str, request: ScenarioRequest, now: float) -> bytes:
    headers = request.signed_headers(provider, public_url(provider), SECRETS[provider], now)
    return raw_request(request, headers)


def _tampered(provider: str, request: ScenarioRequest, now: float) -> bytes:
    """The request signed with a wrong secret: the receiver must answer 401."""
    headers = request.signed_headers(provider, public_url(provider), "not-the-secret", now)
    return raw_request(request, headers)


def _late(request: ScenarioRequest) -> ScenarioRequest:
    """A distinct provider event that arrives after the call ended (a delayed 'answered'): outcome late."""
    document = orjson.loads(request.body)
    document["created_at"] = "2026-05-29T12:59:59Z"
    return replace(request, body=orjson.dumps(document))


def build(directory: Path, kind: str, count: int, seed: int = 7) -> Pool:
    """Write the pool ``kind`` (``form``, ``json`` or ``mix``) for ``count`` calls into ``directory``."""
    provider = form_provider() if kind == "form" else "minivoice"
    now = time.time()
    scenarios = calls(provider, count, kind[0])
    phases = len(scenarios[0].requests)
    counts = {"applied": 0, "duplicate": 0, "late": 0, "bad_signature": 0}
    chunks: list[bytes] = []
    rng = random.Random(seed)
    for phase in range(phases):
        batch = []
        for scenario in scenarios:
            request = scenario.requests[phase]
            signed = _signed(provider, request, now)
            batch.append(signed)
            counts["applied"] += 1
            if kind != "mix":
                continue
            roll = rng.random()
            if roll < 0.10:  # a provider retry of this very delivery
                batch.append(signed)
                counts["duplicate"] += 1
            elif roll < 0.15:  # a forged or mis-configured delivery
                batch.append(_tampered(provider, request, now))
                counts["bad_signature"] += 1
        if kind == "mix":
            rng.shuffle(batch)
        chunks.extend(batch)
    if kind == "mix":  # delayed 'answered' events after the calls completed
        late = [_signed(provider, _late(scenario.requests[1]), now) for scenario in scenarios[: count // 20]]
        counts["late"] = len(late)
        chunks.extend(late)
    path = directory / f"{kind}.pool"
    path.write_bytes(b"\0".join(chunks) + b"\0")
    return Pool(path=path, provider=provider, requests=len(chunks), calls=count, mix=counts)
