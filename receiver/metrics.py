"""Prometheus metrics: what the receiver counts, and their exposition for ``GET /metrics``.

Each app has its own `Metrics` (its own registry), so two apps in one process never share counts.
With several uvicorn workers, ``callstream serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` before the workers
start: prometheus-client then keeps every value in a file of that directory, and whichever worker answers
a scrape adds up all workers' files. Only counters and histograms are used (no live gauges), so a dead
worker's counts stay valid and need no clean-up. Stream lengths are read from Redis at scrape time.

Every increment of prometheus-client takes a lock, and in that mode also writes to a memory-mapped file.
The counts of the request path (webhook outcomes, transitions, HTTP requests and their latency) are
instead added up in plain attributes and written to the metric values every `FLUSH_INTERVAL_S`
(`Metrics.flushing`), before every scrape, and when the app stops. A scrape answered by a process is
exact for that process; with several workers it sees another worker's requests at most that long after
they were answered.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, MutableMapping
from pathlib import Path

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# The ``*_created`` timestamp series double the output and no dashboard here reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]

#: Outcomes of a webhook request, as counted in ``callstream_webhook_requests_total``.
WEBHOOK_OUTCOMES = ("applied", "annotation", "duplicate", "late", "rejected", "dead_lettered", "unavailable")

#: Request latency buckets (seconds): a webhook is one Redis round trip, so most land well under 10 ms.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

#: How often the request path's counts are written to the metric values (seconds): with several workers,
#: how long a scrape may lag another worker's requests.
FLUSH_INTERVAL_S = 1.0


def multiprocess_dir(environ: Mapping[str, str]) -> str | None:
    return environ.get(MULTIPROC_ENV) or None


class Metrics:
    """The receiver's counters and histograms, registered in one registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.webhook_requests = Counter(
            "callstream_webhook_requests",
            "Webhook requests by source and outcome (a request carrying several events counts once per event).",
            ["source", "outcome"],
            registry=self.registry,
        )
        self.signature_failures = Counter(
            "callstream_signature_failures",
            "Webhook requests refused at authentication (missing, wrong, stale or replayed signature).",
            ["source"],
            registry=self.registry,
        )
        self.transitions = Counter(
            "callstream_transitions",
            "Applied state transitions, by the state left and the state reached.",
            ["from_state", "to_state"],
            registry=self.registry,
        )
        self.redis_errors = Counter(
            "callstream_redis_errors",
            "Redis calls that failed (unreachable or too slow), by operation.",
            ["operation"],
            registry=self.registry,
        )
        self.http_requests = Counter(
            "callstream_http_requests",
            "HTTP requests by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.request_latency = Histogram(
            "callstream_http_request_duration_seconds",
            "Time from a request's arrival to the end of its response, by route template.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        if multiprocess_dir(os.environ) is None:
            # Per-process figures only make sense for a single process; multiprocess mode cannot merge them.
            ProcessCollector(registry=self.registry)
        # Labelled children, looked up once: `labels()` takes a lock and validates on every call, which
        # would cost more than the increment itself on the hot path. Every label set is bounded (configured
        # sources, known states, route templates, a fixed set of methods), so these stay small.
        self._outcomes: dict[tuple[str, str], Callable[[float], None]] = {}
        self._transitions: dict[tuple[str, str], Callable[[float], None]] = {}
        self._requests: dict[tuple[str, str, int], tuple[Callable[[float], None], Callable[[float], None]]] = {}
        # The request path's increments, kept until `flush` writes them (module docstring).
        self._pending: list[_Pending] = []

    def _recorder(self, write: Callable[[float], None]) -> Callable[[float], None]:
        """An increment of ``write``'s value, kept until the next `flush`."""
        pending = _Pending(write)
        self._pending.append(pending)
        return pending.add

    def flush(self) -> None:
        """Write the kept increments to their metric values (with several workers, to this worker's file)."""
        for pending in self._pending:
            pending.flush()

    @contextlib.asynccontextmanager
    async def flushing(self) -> AsyncIterator[None]:
        """While serving: `flush` every `FLUSH_INTERVAL_S`, and once more at the end."""

        async def every_interval() -> None:
            while True:
                await asyncio.sleep(FLUSH_INTERVAL_S)
                self.flush()

        task = asyncio.create_task(every_interval())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self.flush()

    def outcome(self, source: str, outcome: str) -> None:
        key = (source, outcome)
        inc = self._outcomes.get(key)
        if inc is None:
            inc = self._outcomes[key] = self._recorder(_incrementer(self.webhook_requests.labels(source, outcome)))
        inc(1)

    def transition(self, from_state: str, to_state: str) -> None:
        key = (from_state, to_state)
        inc = self._transitions.get(key)
        if inc is None:
            inc = self._transitions[key] = self._recorder(_incrementer(self.transitions.labels(from_state, to_state)))
        inc(1)

    def signature_failure(self, source: str) -> None:
        self.signature_failures.labels(source).inc()
        self.outcome(source, "rejected")

    def redis_error(self, operation: str) -> None:
        self.redis_errors.labels(operation).inc()

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        """One HTTP request; ``method`` must come from a fixed set (see `receiver.observe`)."""
        key = (route, method, status)
        recorders = self._requests.get(key)
        if recorders is None:
            recorders = self._requests[key] = (
                self._recorder(_incrementer(self.http_requests.labels(route, method, str(status)))),
                _observer(self.request_latency.labels(route), self._recorder),
            )
        recorders[0](1)
        recorders[1](seconds)

    def exposition(self, stream_lengths: Mapping[tuple[str, str], int] | None) -> bytes:
        """The Prometheus text format: this app's metrics (or every worker's) and the stream lengths read now."""
        self.flush()
        directory = multiprocess_dir(os.environ)
        if directory is None:
            text = generate_latest(self.registry)
        else:
            merged = CollectorRegistry()
            MultiProcessCollector(merged, path=directory)  # type: ignore[no-untyped-call]
            text = generate_latest(merged)
        if stream_lengths is None:
            return text
        snapshot = CollectorRegistry()
        snapshot.register(_StreamLengths(stream_lengths))
        return text + generate_latest(snapshot)


def _incrementer(counter: Counter) -> Callable[[float], None]:
    """``counter.inc`` without its per-call checks (the child is a plain counter, the amount always positive):
    the value's own ``inc``, which is what ``Counter.inc`` ends in, in-process and in multiprocess mode."""
    value = getattr(counter, "_value", None)
    inc: Callable[[float], None] | None = getattr(value, "inc", None)
    return inc if inc is not None else counter.inc


class _Pending:
    """Increments of one value, added up in the worker until `flush` writes them (`Metrics._recorder`)."""

    __slots__ = ("amount", "write")

    def __init__(self, write: Callable[[float], None]) -> None:
        self.write = write
        self.amount = 0.0

    def add(self, amount: float) -> None:
        self.amount += amount

    def flush(self) -> None:
        if self.amount:
            amount, self.amount = self.amount, 0.0
            self.write(amount)


def _observer(
    histogram: Histogram, recorder: Callable[[Callable[[float], None]], Callable[[float], None]] = lambda inc: inc
) -> Callable[[float], None]:
    """``histogram.observe`` without its per-call checks: the sum and the first bucket holding the value
    (found by bisection) are incremented, as ``Histogram.observe`` does, each through ``recorder``."""
    sum_value = getattr(histogram, "_sum", None)
    buckets = getattr(histogram, "_buckets", None)
    bounds = getattr(histogram, "_upper_bounds", None)
    if sum_value is None or buckets is None or bounds is None:
        return histogram.observe
    add_sum = recorder(sum_value.inc)
    bucket_incs = [recorder(bucket.inc) for bucket in buckets]

    def observe(amount: float) -> None:
        add_sum(amount)
        bucket_incs[bisect.bisect_left(bounds, amount)](1)

    return observe


class _StreamLengths:
    """``callstream_stream_length{stream, partition}``: entries in each Redis stream, read at scrape time."""

    def __init__(self, lengths: Mapping[tuple[str, str], int]) -> None:
        self.lengths = lengths

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(
            "callstream_stream_length", "Entries in each Redis stream.", labels=["stream", "partition"]
        )
        for (stream, partition), length in self.lengths.items():
            family.add_metric([stream, partition], length)
        return [family]


def prepare_multiprocess_dir(workers: int, environ: MutableMapping[str, str]) -> Path | None:
    """Before starting ``workers`` worker processes: make sure they share an empty metrics directory.

    With one worker nothing is needed (returns None). An operator-given ``PROMETHEUS_MULTIPROC_DIR`` is
    emptied of the previous run's files (prometheus-client requires it); otherwise a fresh temporary
    directory is created and set. Returns the directory to remove at exit when it was created here.
    """
    if workers <= 1:
        return None
    given = multiprocess_dir(environ)
    if given is not None:
        directory = Path(given)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
        return None
    created = Path(tempfile.mkdtemp(prefix="callstream-metrics-"))
    environ[MULTIPROC_ENV] = str(created)
    return created


def remove_multiprocess_dir(directory: Path | None, environ: MutableMapping[str, str]) -> None:
    """Undo `prepare_multiprocess_dir` for a directory it created."""
    if directory is None:
        return
    shutil.rmtree(directory, ignore_errors=True)
    if environ.get(MULTIPROC_ENV) == str(directory):
        del environ[MULTIPROC_ENV]
