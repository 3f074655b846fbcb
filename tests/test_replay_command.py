"""``callstream replay`` as a user runs it: against nothing, against a real receiver process with a URL
path, and for a source configured with ``public_url`` that must be signed for that URL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from receiver.embedded import free_port
from tests.conftest import FIXTURES, Run
from tests.support.processes import Receiver

ANSWERED = str(FIXTURES / "vobiz" / "answered.json")
SECRET = "vobiz-auth-token"
PUBLIC_URL = "https://hooks.example.com/webhooks/vobiz-prod"


@pytest.fixture
def replay(callstream: Run, monkeypatch: pytest.MonkeyPatch) -> Run:
    """``callstream replay ARGS`` in this process, with no configuration from the environment."""
    monkeypatch.delenv("CALLSTREAM_CONFIG", raising=False)
    return lambda *args: callstream("replay", *args)


def test_replay_to_a_server_that_is_not_running_says_so_in_one_line(replay: Run) -> None:
    port = free_port()
    code, _out, err = replay(ANSWERED, "--url", f"http://127.0.0.1:{port}")
    assert code == 1
    assert err == (
        f"callstream replay: cannot reach http://127.0.0.1:{port}/webhooks/vobiz: Connection refused "
        "(is callstream serve running there?)\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--url", "127.0.0.1:8000"], "--url '127.0.0.1:8000' is not an http(s) URL such as http://127.0.0.1:8000"),
        (["--url", "http://h:1/webhooks/a", "--source", "b"], "--url names source 'a' but --source names 'b'"),
        (["--url", "http://h:1/?x=1"], "a query or fragment cannot be replayed to"),
    ],
)
def test_an_unusable_url_is_refused(replay: Run, args: list[str], message: str) -> None:
    code, _out, err = replay(ANSWERED, *args)
    assert code == 2
    assert err.startswith("callstream replay: ") and message in err


def test_a_missing_scenario_file_is_named(replay: Run, tmp_path: Path) -> None:
    missing = tmp_path / "answred.json"
    code, _out, err = replay(str(missing))
    assert (code, err) == (2, f"callstream replay: cannot read {missing}: No such file or directory\n")


@pytest.fixture
def receiver(tmp_path: Path, redis_url: str, prefix: str) -> Iterator[Receiver]:
    """A real receiver with a signed Vobiz source behind a proxy (``public_url``), plus every built-in
    provider unsigned."""
    source = f'[sources.vobiz-prod]\nprovider = "vobiz"\nsecrets = ["{SECRET}"]\npublic_url = "{PUBLIC_URL}"\n'
    with Receiver(tmp_path, redis_url, prefix, workers=1, extra_config=source).start() as server:
        yield server


@pytest.mark.slow
def test_url_paths_are_used_and_public_url_is_signed_for(replay: Run, receiver: Receiver) -> None:
    """A webhook URL sends to that source; its configured public_url is what gets signed; a base path is
    kept and shown."""
    webhook = f"{receiver.url}/webhooks/vobiz-prod"
    code, out, _err = replay(ANSWERED, "--url", webhook, "--secret", SECRET, "--config", str(receiver.config))
    assert code == 0, out
    lines = out.splitlines()[1:]
    assert [line.split()[:2] for line in lines] == [["200", "/webhooks/vobiz-prod"]] * 3
    assert all(": applied " in line for line in lines)

    # Signed for the URL it was sent to, the receiver (which checks public_url) refuses it.
    code, out, _err = replay(ANSWERED, "--url", webhook, "--secret", SECRET, "--fresh-ids")
    assert code == 1
    assert out.splitlines()[1].startswith("401 /webhooks/vobiz-prod ")

    code, out, _err = replay(ANSWERED, "--url", f"{receiver.url}/mounted/under")
    assert code == 1
    assert out.splitlines()[1].startswith("404 /mounted/under/webhooks/vobiz ")
