"""The mistakes a newcomer makes with ``callstream serve``, each answered by one clear line and an exit code:
a port in use, a Redis that does not answer, a misspelt configuration key, an embedded Redis that cannot
start."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import redis
from starlette.testclient import TestClient

from receiver.embedded import free_port, server_args, start_server, stop_process
from tests.conftest import MakeSettings, Run
from tests.support.serve import ServeProcess, clean_environment

STARTUP_COMPLETE = "startup complete"


@pytest.mark.slow
def test_a_port_in_use_is_named_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with ServeProcess(["serve", "--port", str(port)], cwd=tmp_path) as serve:
            code = serve.finish()
            output = serve.output()
    assert code == 1
    assert (
        f"callstream: port {port} on 127.0.0.1 is already in use (another callstream serve?): "
        "stop that process or choose another port with --port\n"
    ) in output
    assert STARTUP_COMPLETE not in output.lower()
    assert "started embedded Redis" not in output
    assert not (tmp_path / ".callstream").exists()


@pytest.mark.slow
def test_an_unreachable_redis_is_named_at_once_and_readiness_waits_for_it(tmp_path: Path) -> None:
    """The warning names the URL without its password; /readyz is 503 until Redis answers, then 200."""
    redis_port, port = free_port(), free_port()
    url = f"redis://:s3cret-pass@127.0.0.1:{redis_port}/0"
    env = clean_environment(REDIS_URL=url)
    with ServeProcess(["serve", "--port", str(port)], cwd=tmp_path, env=env) as serve:
        warning = serve.wait_for(r"WARNING: Redis at ").group(0)
        line = serve.seen[-1]
        serve.wait_for("Uvicorn running")
        before = "".join(serve.seen[: serve.seen.index(line)])
        assert STARTUP_COMPLETE not in before.lower()
        assert warning and line.startswith(f"WARNING: Redis at redis://:***@127.0.0.1:{redis_port}/0 does not answer (")
        assert line.rstrip().endswith("serving anyway: webhooks and /readyz answer 503 until it does")
        readyz = f"http://127.0.0.1:{port}/readyz"
        assert httpx.get(readyz, timeout=5).status_code == 503

        (tmp_path / "redis").mkdir()
        args = [*server_args(redis_port, tmp_path / "redis", appendonly=False), "--requirepass", "s3cret-pass"]
        server = start_server(args, redis.Redis(port=redis_port, password="s3cret-pass"), own_session=True)
        try:
            assert httpx.get(readyz, timeout=5).status_code == 200
        finally:
            stop_process(server)
        assert "s3cret-pass" not in serve.output()


@pytest.mark.parametrize("scheme", ["redis", "redis+cluster"])
def test_readiness_and_webhooks_answer_503_while_redis_is_unreachable(
    make_client: Callable[..., TestClient], make_settings: MakeSettings, scheme: str
) -> None:
    """Not a 500: the provider retries, and /readyz keeps the instance out of the load balancer."""
    client = make_client(make_settings(redis_url=f"{scheme}://127.0.0.1:{free_port()}"))
    ready = client.get("/readyz")
    assert (ready.status_code, ready.json()["error"]["code"]) == (503, "redis_unavailable")
    ring = "CallUUID=c-1&Event=Ring&CallStatus=ringing"
    answer = client.post("/webhooks/vobiz", content=ring, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert (answer.status_code, answer.json()["error"]["code"]) == (503, "redis_unavailable")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[streams]\nmax_len = 1000\n", "unknown key streams.max_len; did you mean `maxlen`?"),
        ("[retension]\nnonce_seconds = 60\n", "unknown section [retension]; did you mean `retention`?"),
        ("[server]\nprot = 8001\n", "unknown key server.prot; did you mean `port`?"),
        ('[sources.vobiz-prod]\nprovider = "vobiz"\nsecret = "x"\n', "did you mean `secrets`?"),
        ('[sources.vobiz-prod]\nprovider = "vobis"\nverify = false\n', "provider 'vobis' is not one of"),
    ],
)
def test_serve_refuses_a_configuration_mistake_with_exit_2(
    tmp_path: Path, callstream: Run, text: str, message: str
) -> None:
    """Nothing starts; the message names the file, the key as written and what it probably meant."""
    config = tmp_path / "callstream.toml"
    if "[sources." not in text:
        text += '[sources.minivoice-dev]\nprovider = "minivoice"\nverify = false\n'
    config.write_text(text)
    code, _out, err = callstream("serve", "--config", str(config), "--data-dir", str(tmp_path / "data"))
    assert code == 2
    assert f"callstream: {config}: " in err and message in err
    assert not (tmp_path / "data").exists()


@pytest.mark.slow
def test_an_embedded_redis_that_cannot_start_is_shown_in_its_own_words(tmp_path: Path) -> None:
    """A damaged append-only file: serve exits 1 with the lines redis-server wrote, not a pointer to a file."""
    data = tmp_path / ".callstream" / "redis"
    data.mkdir(parents=True)
    (data / "appendonly.aof").write_text("this is not an append-only file\n")
    with ServeProcess(["serve", "--port", str(free_port())], cwd=tmp_path) as serve:
        code = serve.finish()
        output = serve.output()
    assert code == 1
    assert "callstream: embedded redis-server exited with status 1:\n" in output
    assert "Bad file format reading the append only file" in output
    assert "Traceback" not in output
