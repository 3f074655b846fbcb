"""docs/compose runs as docs/docker.md says, short of Docker itself: the image's command line and
environment (from the Dockerfile), the compose service's environment and mounted configuration, then the
documented replay, against a real Redis."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from receiver.commands.replay import send
from receiver.embedded import free_port
from receiver.providers import PROVIDERS
from receiver.settings import Settings
from tests.conftest import FIXTURES
from tests.support.processes import wait_until
from tests.support.serve import CLI, ServeProcess, clean_environment

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "docs" / "compose"


def dockerfile() -> tuple[dict[str, str], list[str]]:
    """The image's environment and its ``callstream serve`` arguments (CMD)."""
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    env_line = re.search(r"^ENV (.+)$", text, re.M)
    cmd_line = re.search(r"^CMD (\[.+\])$", text, re.M)
    assert env_line and cmd_line
    env = dict(re.findall(r"(\w+)=(\S+)", env_line.group(1)))
    return env, json.loads(cmd_line.group(1))


def service_environment(service: dict[str, object]) -> dict[str, str]:
    """A compose service's environment, ``${NAME:-default}`` taken at its default (nothing else set)."""
    raw = service["environment"]
    assert isinstance(raw, dict)
    return {name: re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(value)) for name, value in raw.items()}


def test_compose_file_wires_the_image_to_its_redis_and_configuration() -> None:
    compose = yaml.safe_load((COMPOSE / "compose.yaml").read_text())
    receiver, redis = compose["services"]["callstream"], compose["services"]["redis"]
    assert (COMPOSE / receiver["build"]).resolve() == REPO and (REPO / "Dockerfile").exists()
    image_env, _ = dockerfile()
    source, target, _mode = receiver["volumes"][0].split(":")
    assert (COMPOSE / source).exists() and target == image_env["CALLSTREAM_CONFIG"]
    assert service_environment(receiver)["REDIS_URL"] == "redis://redis:6379/0"
    assert receiver["depends_on"]["redis"]["condition"] == "service_healthy" and "healthcheck" in redis
    settings = Settings.load(str(COMPOSE / "callstream.toml"), service_environment(receiver), list(PROVIDERS))
    settings.check_bind("0.0.0.0")  # noqa: S104 - the image listens there; no unsigned source stops it


@pytest.mark.slow
def test_the_image_command_serves_the_compose_configuration(tmp_path: Path, redis_url: str, prefix: str) -> None:
    """What the container runs, run here: it starts on 0.0.0.0, gets ready, and accepts the documented
    signed replay (and refuses an unsigned one)."""
    compose = yaml.safe_load((COMPOSE / "compose.yaml").read_text())
    environment = service_environment(compose["services"]["callstream"])
    image_env, arguments = dockerfile()
    config = tmp_path / "callstream.toml"
    config.write_text((COMPOSE / "callstream.toml").read_text() + f'\n[streams]\nprefix = "{prefix}"\n')
    port = free_port()
    arguments[arguments.index("--port") + 1] = str(port)
    env = clean_environment(**{**image_env, **environment, "REDIS_URL": redis_url, "CALLSTREAM_CONFIG": str(config)})
    with ServeProcess(["serve", *arguments], cwd=tmp_path, env=env) as serve:
        serve.wait_for("Uvicorn running on http://0.0.0.0:")
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: _status(base + "/readyz") == 200, 20, "/readyz answering 200")
        replay = [*CLI, "replay", str(FIXTURES / "vobiz" / "answered.json"), "--url", base]
        signed = _run([*replay, "--secret", environment["VOBIZ_AUTH_TOKEN"]], tmp_path)
        assert signed.count(": applied ") == 3, signed
        unsigned = _run([*replay, "--fresh-ids"], tmp_path)
        assert unsigned.count("\n401 /webhooks/vobiz ") == 3, unsigned
        assert serve.terminate() == 0


def _status(url: str) -> int:
    return send(url, None, {}, "GET")[0]


def _run(command: list[str], cwd: Path) -> str:
    result = subprocess.run(command, cwd=cwd, env=clean_environment(), capture_output=True, text=True, timeout=60)
    return result.stdout + result.stderr
