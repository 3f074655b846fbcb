"""``GET /metrics``: counts after specific requests, read back from the Prometheus text a scraper sees."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import pytest
import redis.asyncio
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from receiver.app import create_app
from receiver.embedded import free_port
from receiver.metrics import FLUSH_INTERVAL_S, MULTIPROC_ENV
from receiver.settings import Secret
from tests.conftest import MakeSettings, signed_source
from tests.support.processes import receiver_config, wait_until

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
CALL = "CallUUID=m-1&From=14155551234&To=919876543210&Direction=outbound"
#: One call's callbacks, in an order that exercises every outcome (see the test's docstring).
BODIES = [
    f"{CALL}&Event=StartApp&CallStatus=in-progress",  # applied: new -> answered
    f"{CALL}&Event=Ring&CallStatus=ringing",  # late: ringing ranks below answered
    f"{CALL}&Event=Ring&CallStatus=ringing",  # duplicate: the same provider event again
    f"{CALL}&Event=MachineDetection&Machine=true&CallStatus=in-progress",  # annotation
    f"{CALL}&Event=Hangup&CallStatus=completed&Duration=50&BillDuration=42",  # applied: answered -> completed
    "From=14155551234&Event=Ring&CallStatus=ringing",  # no CallUUID: 422, dead-lettered
]

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(text: str) -> Samples:
    """Every sample of a Prometheus text exposition, keyed by (sample name, labels)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def test_counts_match_the_requests_sent(make_client: Callable[..., TestClient], make_settings: MakeSettings) -> None:
    """After answered, late ring, duplicate ring, machine detection, hangup and an id-less callback, the
    outcome, transition, HTTP, latency and stream-length series hold exactly those counts."""
    sources = {
        "vobiz": make_settings().sources["vobiz"],
        "vobiz-signed": signed_source("vobiz-signed", "vobiz", "a-signing-secret"),
    }
    client = make_client(make_settings(sources))
    statuses = [client.post("/webhooks/vobiz", content=body, headers=FORM).status_code for body in BODIES]
    assert statuses == [200, 200, 200, 200, 200, 422]
    unsigned = client.post("/webhooks/vobiz-signed", content=BODIES[0], headers=FORM)
    assert unsigned.status_code == 401

    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = scrape(response.text)
    outcomes = {
        outcome: value(samples, "callstream_webhook_requests_total", source="vobiz", outcome=outcome)
        for outcome in ("applied", "late", "duplicate", "annotation", "dead_lettered", "rejected")
    }
    assert outcomes == {
        "applied": 2.0,
        "late": 1.0,
        "duplicate": 1.0,
        "annotation": 1.0,
        "dead_lettered": 1.0,
        "rejected": None,
    }
    assert value(samples, "callstream_webhook_requests_total", source="vobiz-signed", outcome="rejected") == 1.0
    assert value(samples, "callstream_signature_failures_total", source="vobiz-signed") == 1.0
    assert value(samples, "callstream_signature_failures_total", source="vobiz") is None
    assert value(samples, "callstream_transitions_total", from_state="new", to_state="answered") == 1.0
    assert value(samples, "callstream_transitions_total", from_state="answered", to_state="completed") == 1.0
    assert value(samples, "callstream_transitions_total", from_state="new", to_state="ringing") is None
    route = "/webhooks/{source}"
    assert value(samples, "callstream_http_requests_total", route=route, method="POST", status="200") == 5.0
    assert value(samples, "callstream_http_requests_total", route=route, method="POST", status="422") == 1.0
    assert value(samples, "callstream_http_requests_total", route=route, method="POST", status="401") == 1.0
    assert value(samples, "callstream_http_request_duration_seconds_count", route=route) == 7.0
    # Two transitions and one annotation were published; one request was dead-lettered.
    assert value(samples, "callstream_stream_length", stream="transitions", partition="0") == 3.0
    assert value(samples, "callstream_stream_length", stream="deadletter", partition="") == 1.0
    assert value(samples, "callstream_redis_errors_total", operation="apply") is None


def test_stream_lengths_cover_every_partition(
    make_client: Callable[..., TestClient], make_settings: MakeSettings
) -> None:
    """With three partitions, each partition's transitions stream is reported; together they hold every entry."""
    client = make_client(make_settings(partitions=3))
    for call in range(6):
        body = f"CallUUID=p-{call}&Event=Ring&CallStatus=ringing"
        assert client.post("/webhooks/vobiz", content=body, headers=FORM).status_code == 200
    lengths = {
        dict(labels)["partition"]: count
        for (name, labels), count in scrape(client.get("/metrics").text).items()
        if name == "callstream_stream_length" and ("stream", "transitions") in labels
    }
    assert set(lengths) == {"0", "1", "2"}
    assert sum(lengths.values()) == 6.0


def test_unknown_paths_and_methods_cannot_create_series(make_client: Callable[..., TestClient]) -> None:
    """Paths no route serves share one route label, and made-up methods one method label, so callers
    cannot grow the number of series."""
    client = make_client()
    for path in ("/nothing", "/other/thing", "/webhooks"):
        assert client.get(path).status_code == 404
    for method in ("BREW", "PROPFIND"):
        assert client.request(method, "/metrics").status_code == 405
    samples = scrape(client.get("/metrics").text)
    assert value(samples, "callstream_http_requests_total", route="(unmatched)", method="GET", status="404") == 3.0
    assert value(samples, "callstream_http_requests_total", route="/metrics", method="OTHER", status="405") == 2.0
    assert not [key for key in samples if ("route", "/nothing") in key[1] or ("method", "BREW") in key[1]]


def test_metrics_need_the_operator_token_once_one_is_configured(
    make_client: Callable[..., TestClient], make_settings: MakeSettings
) -> None:
    """With an operator token, a scrape without it is 401 (JSON naming the header); with it, 200."""
    client = make_client(make_settings(operator_token=Secret("scrape-token")))
    refused = client.get("/metrics")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthorized"
    assert "Authorization: Bearer" in refused.json()["error"]["message"]
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    allowed = client.get("/metrics", headers={"Authorization": "Bearer scrape-token"})
    assert allowed.status_code == 200
    assert "callstream_webhook_requests_total" in allowed.text


def test_metrics_are_open_without_an_operator_token(make_client: Callable[..., TestClient]) -> None:
    """The default configuration (loopback only, no operator token) serves metrics to anyone who can connect."""
    assert make_client().get("/metrics").status_code == 200


def test_redis_outage_is_counted_and_metrics_still_served(make_settings: MakeSettings) -> None:
    """Redis down: the webhook gets 503, the failure is counted by operation, and /metrics still answers
    without the stream lengths it could not read."""
    dead = redis.asyncio.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1)
    app = create_app(make_settings(), redis=dead)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post("/webhooks/vobiz", content=BODIES[0], headers=FORM)
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "redis_unavailable"
        scraped = client.get("/metrics")
    assert scraped.status_code == 200
    samples = scrape(scraped.text)
    assert value(samples, "callstream_redis_errors_total", operation="apply") == 1.0
    assert value(samples, "callstream_redis_errors_total", operation="metrics") == 1.0
    assert value(samples, "callstream_webhook_requests_total", source="vobiz", outcome="unavailable") == 1.0
    assert not [key for key in samples if key[0] == "callstream_stream_length"]


@pytest.mark.slow
def test_workers_share_their_counts(tmp_path: Path, redis_url: str, prefix: str) -> None:
    """`callstream serve --workers 2`: within a second of the last request, every scrape, whichever worker
    answers it, reports the requests served by both workers."""
    config = tmp_path / "callstream.toml"
    config.write_text(receiver_config(prefix))
    port = free_port()
    # DEBUG: accepted callbacks' access lines name the worker that served them.
    env = {**os.environ, "REDIS_URL": redis_url, "CALLSTREAM_LOG_FORMAT": "json", "CALLSTREAM_LOG_LEVEL": "DEBUG"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "receiver.cli", "serve", "--config", str(config), "--port", str(port)]
            + ["--workers", "2"],
            env=env,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    metric_dirs_before = set(Path(tempfile.gettempdir()).glob("callstream-metrics-*"))
    try:
        wait_until(lambda: httpx.get(base + "/healthz", timeout=1).status_code == 200, 30, "receiver answering")
        sent = 0
        pids: set[int] = set()
        # New connections are spread over the workers by the kernel; go on until both have served some.
        while sent < 200 and (sent < 20 or len(pids) < 2):
            body = f"CallUUID=w-{sent}&Event=Ring&CallStatus=ringing".encode()
            response = httpx.post(base + "/webhooks/vobiz", content=body, headers=FORM, timeout=10)
            assert response.status_code == 200, response.text
            sent += 1
            pids = webhook_pids(log_path)
        assert len(pids) == 2, f"one worker served all {sent} requests"
        # Each worker writes its counts to the shared files at least once a second (FLUSH_INTERVAL_S).
        wait_until(
            lambda: (
                value(
                    scrape(httpx.get(base + "/metrics", timeout=10).text),
                    "callstream_webhook_requests_total",
                    source="vobiz",
                    outcome="applied",
                )
                == sent
            ),
            5 * FLUSH_INTERVAL_S,
            "both workers' counts in a scrape",
        )
        for _ in range(6):
            samples = scrape(httpx.get(base + "/metrics", timeout=10).text)
            assert value(samples, "callstream_webhook_requests_total", source="vobiz", outcome="applied") == sent
            assert value(samples, "callstream_transitions_total", from_state="new", to_state="ringing") == sent
    finally:
        server.terminate()
        server.wait(20)
    # The shared metrics directory was created for this run and removed when it ended.
    assert set(Path(tempfile.gettempdir()).glob("callstream-metrics-*")) == metric_dirs_before


@pytest.mark.slow
def test_a_stopping_worker_writes_the_counts_it_kept(tmp_path: Path, redis_url: str, prefix: str) -> None:
    """Workers keep the request path's counts for up to a second before writing them to the shared files;
    a worker stopped right after its last request still writes them all."""
    config = tmp_path / "callstream.toml"
    config.write_text(receiver_config(prefix))
    port = free_port()
    shared = tmp_path / "metrics"  # an operator-given directory outlives the server
    env = {**os.environ, "REDIS_URL": redis_url, MULTIPROC_ENV: str(shared)}
    server = subprocess.Popen(
        [sys.executable, "-m", "receiver.cli", "serve", "--config", str(config), "--port", str(port)]
        + ["--workers", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.get(base + "/healthz", timeout=1).status_code == 200, 30, "receiver answering")
        sent = 30
        for number in range(sent):
            body = f"CallUUID=stop-{number}&Event=Ring&CallStatus=ringing".encode()
            response = httpx.post(base + "/webhooks/vobiz", content=body, headers=FORM, timeout=10)
            assert response.status_code == 200, response.text
    finally:
        server.terminate()
        assert server.wait(20) == 0
    merged = CollectorRegistry()
    MultiProcessCollector(merged, path=str(shared))  # type: ignore[no-untyped-call]
    samples = scrape(generate_latest(merged).decode())
    assert value(samples, "callstream_webhook_requests_total", source="vobiz", outcome="applied") == sent
    assert value(samples, "callstream_transitions_total", from_state="new", to_state="ringing") == sent


def webhook_pids(log_path: Path) -> set[int]:
    """Worker pids named by the access lines of webhook requests in the JSON log."""
    pids = set()
    for line in log_path.read_bytes().splitlines():
        if line.startswith(b"{"):
            record = orjson.loads(line)
            if record.get("logger") == "callstream.access" and record.get("route") == "/webhooks/{source}":
                pids.add(record["pid"])
    return pids


def test_latency_buckets_and_counts_are_prometheus_own() -> None:
    """The receiver's recording shortcuts give the exposition prometheus-client's own API gives, bucket
    edges included, in-process (the multiprocess case is `test_workers_share_their_counts`)."""
    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

    from receiver.metrics import LATENCY_BUCKETS, Metrics

    durations = [0.0, 0.0004, 0.001, 0.0010001, 0.0025, 0.03, 0.1, 5.0, 7.5, 1e-9]
    metrics = Metrics()
    reference = CollectorRegistry()
    requests = Counter("callstream_http_requests", "x", ["route", "method", "status"], registry=reference).labels(
        "/r", "POST", "200"
    )
    latency = Histogram(
        "callstream_http_request_duration_seconds", "x", ["route"], buckets=LATENCY_BUCKETS, registry=reference
    ).labels("/r")
    outcomes = Counter("callstream_webhook_requests", "x", ["source", "outcome"], registry=reference)
    for seconds in durations:
        metrics.request("/r", "POST", 200, seconds)
        requests.inc()
        latency.observe(seconds)
        metrics.outcome("s", "applied")
        outcomes.labels("s", "applied").inc()

    def samples(text: bytes, names: set[str]) -> list[tuple[str, list[tuple[str, str]], float]]:
        return sorted(
            (sample.name, sorted(sample.labels.items()), sample.value)
            for family in text_string_to_metric_families(text.decode())
            if family.name in names
            for sample in family.samples
        )

    names = {"callstream_http_requests", "callstream_http_request_duration_seconds", "callstream_webhook_requests"}
    assert samples(metrics.exposition(None), names) == samples(generate_latest(reference), names)
