"""In-process micro-benchmarks on one core: normalization per provider, signature check per provider
(each provider uses one signature family), and state-machine decisions per second.

    .venv/bin/python bench/micro.py

Each figure is the best of several repeats (the least disturbed by other load on the machine).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from receiver.delivery import Delivery  # noqa: E402
from receiver.providers import PROVIDERS  # noqa: E402
from receiver.scenario import Scenario  # noqa: E402
from receiver.settings import Secret, Source  # noqa: E402
from statemachine.definition import ALL_STATES  # noqa: E402
from statemachine.machine import decide, decision_table  # noqa: E402
from statemachine.states import Trigger  # noqa: E402

FIXTURES = ROOT / "fixtures"
SECRET = "micro-bench-secret"
URL = "https://hooks.example.com/webhooks/"


def best_us(operation: Callable[[], Any], number: int, repeats: int = 5) -> float:
    """Microseconds per call of ``operation``: the best of ``repeats`` runs of ``number`` calls."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(number):
            operation()
        best = min(best, (time.perf_counter() - started) / number)
    return best * 1e6


def _scenario(provider: str) -> Scenario | None:
    files = sorted((FIXTURES / provider).glob("*.json"))
    preferred = [path for path in files if path.stem == "answered"] or files
    return Scenario.load(preferred[0]) if preferred else None


def _signature_family(provider: str) -> str:
    module = sys.modules[PROVIDERS[provider].verify.__module__]
    families = sorted(
        name.rsplit(".", 1)[-1]
        for name, value in vars(module).items()
        if getattr(value, "__name__", "").startswith("receiver.signatures.") and name != "common"
    )
    return ", ".join(family for family in families if family != "common") or "adapter's own"


def _provider_rows(provider: str, scenario: Scenario, number: int) -> list[dict[str, Any]]:
    adapter = PROVIDERS[provider]
    source = Source(name=provider, provider=provider, secrets=(Secret(SECRET),), public_url=URL + provider)
    now = time.time()
    signed = []
    for request in scenario.requests:
        headers = request.signed_headers(provider, URL + provider, SECRET, now)
        signed.append((request.body, {name.lower(): value for name, value in headers.items()}))
    counter = iter(range(10**9))

    def fresh() -> Delivery:
        # A new Delivery each time: parsing the body is part of what is measured.
        body, headers = signed[next(counter) % len(signed)]
        return Delivery(source, body, headers, URL + provider, now)

    rows: list[dict[str, Any]] = []
    for what, case, operation in (
        ("normalize", f"{provider} ({scenario.name})", lambda: adapter.normalize(fresh())),
        ("verify signature", f"{provider} ({_signature_family(provider)})", lambda: adapter.verify(fresh(), now)),
    ):
        try:
            rows.append({"what": what, "case": case, "us": best_us(operation, number)})
        except Exception as err:  # a fixture that needs a configured source is reported, not fatal
            rows.append({"what": what, "case": f"{provider}: {type(err).__name__}", "us": float("nan")})
    return rows


def provider_rows(number: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for provider in sorted(PROVIDERS):
        scenario = _scenario(provider)
        if scenario is not None:
            rows += _provider_rows(provider, scenario, number)
    return rows


def decision_rows(number: int) -> list[dict[str, Any]]:
    pairs = [(state, trigger) for state in ALL_STATES for trigger in Trigger]
    table = decision_table()
    cursor = iter(range(10**9))

    def machine() -> None:
        state, trigger = pairs[next(cursor) % len(pairs)]
        decide(state, trigger)

    def lookup() -> None:
        state, trigger = pairs[next(cursor) % len(pairs)]
        table[(state, trigger)]

    return [
        {"what": "decide", "case": "machine (transitions), all (state, trigger) pairs", "us": best_us(machine, number)},
        {
            "what": "decide",
            "case": "applied: ringing + answered",
            "us": best_us(lambda: decide("ringing", Trigger.ANSWERED), number),
        },
        {
            "what": "decide",
            "case": "late: completed + answered",
            "us": best_us(lambda: decide("completed", Trigger.ANSWERED), number),
        },
        {
            "what": "decide",
            "case": "table generated from the machine (dict lookup)",
            "us": best_us(lookup, number * 10),
        },
    ]


def run_all(quick: bool = False) -> list[dict[str, Any]]:
    number = 2_000 if quick else 20_000
    return provider_rows(number // 4) + decision_rows(number)


def main() -> int:
    for row in run_all():
        print(f"{row['what']:18} {row['case']:60} {row['us']:8.2f} µs  {1e6 / row['us']:>10,.0f}/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
