"""Operator commands run in-process through ``receiver.cli.main`` against a real Redis: ``tail``,
``calls show``, ``deadletter list/show/redrive`` and ``stats``."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
import redis
from starlette.testclient import TestClient

from receiver.embedded import free_port
from receiver.scenario import Scenario
from receiver.settings import Source
from statemachine.keys import Keys
from tests.conftest import FIXTURES, MakeSettings, Run

CALL = "8a9c1b52-3d4c-11ef-bef9-0242ac110005"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
RING = "CallUUID=pbx-call-1&Event=Ring&CallStatus=ringing&Direction=outbound&From=14155551234&To=919876543210"
TRANSFER = "CallUUID=pbx-call-2&Event=Transfer&CallStatus=in-progress"


@pytest.fixture
def answered_call(make_client: Callable[..., TestClient]) -> None:
    """The Vobiz answered-call scenario sent through the real app: three transitions of one call."""
    client = make_client()
    for request in Scenario.load(FIXTURES / "vobiz" / "answered.json").requests:
        response = client.post("/webhooks/vobiz", content=request.body, headers={"Content-Type": request.content_type})
        assert response.status_code == 200


# -- tail -------------------------------------------------------------------------------------------


def test_tail_prints_json_lines_and_filters(cli: Run, answered_call: None) -> None:
    """--no-follow prints what is there; --state keeps only entries reaching that state."""
    code, out, _ = cli("tail", "--no-follow", "--json")
    lines = [orjson.loads(line) for line in out.splitlines()]
    assert code == 0
    assert [(e["call_id"], e["from_state"], e["to_state"], e["version"]) for e in lines] == [
        (CALL, "new", "ringing", 1),
        (CALL, "ringing", "answered", 2),
        (CALL, "answered", "completed", 3),
    ]
    code, out, _ = cli("tail", "--no-follow", "--json", "--state", "answered")
    assert [orjson.loads(line)["to_state"] for line in out.splitlines()] == ["answered"]
    code, out, _ = cli("tail", "--no-follow", "--json", "--source", "minivoice")
    assert out == ""


def test_tail_table_is_readable(cli: Run, answered_call: None) -> None:
    """The table has a header and one line per entry, with the change spelled out."""
    code, out, _ = cli("tail", "--no-follow", "--limit", "2")
    header, first, second = out.splitlines()
    assert header.split()[:5] == ["TIME", "(UTC)", "ID", "KIND", "SOURCE"]
    assert first.split()[2:] == ["transition", "vobiz", CALL, "new", "->", "ringing", "v1", "a1"]
    assert second.split()[5:] == ["ringing", "->", "answered", "v2", "a1"]


def test_tail_refuses_an_unknown_state(cli: Run) -> None:
    """A typo in --state is a usage error, not an endless wait for entries that never come."""
    with pytest.raises(SystemExit) as exit_info:
        cli("tail", "--state", "answerd")
    assert exit_info.value.code == 2


@pytest.mark.slow
def test_tail_follows_new_entries(
    redis_url: str, prefix: str, answered_call: None, make_client: Callable[..., TestClient], r: redis.Redis, keys: Keys
) -> None:
    """Following from the last entry id shows only what arrives afterwards."""
    [(last_id, _fields)] = r.xrevrange(keys.transitions(), count=1)
    args = [sys.executable, "-m", "receiver.cli", "tail", "--from", last_id.decode(), "--json", "--limit", "1"]
    args += ["--redis-url", redis_url, "--prefix", prefix]
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ}) as tail:
        time.sleep(1.0)  # usually enough to be blocked on the stream; if not, it reads the entry right away
        make_client().post("/webhooks/vobiz", content=RING, headers=FORM)
        out, err = tail.communicate(timeout=30)
    assert tail.returncode == 0, err
    [line] = out.splitlines()
    assert (orjson.loads(line)["call_id"], orjson.loads(line)["to_state"]) == ("pbx-call-1", "ringing")


# -- calls show -------------------------------------------------------------------------------------


def test_calls_show_text(cli: Run, answered_call: None) -> None:
    """State, attempt, version and the three transitions, oldest first."""
    code, out, _ = cli("calls", "show", "vobiz", CALL)
    lines = out.splitlines()
    assert code == 0
    assert lines[0] == f"call      vobiz/{CALL} (vobiz)"
    assert lines[1] == "state     completed   attempt 1   version 3"
    assert lines[3] == "history   3 entries"
    assert [line.split()[1:5] for line in lines[4:]] == [
        ["transition", "new", "->", "ringing"],
        ["transition", "ringing", "->", "answered"],
        ["transition", "answered", "->", "completed"],
    ]


def test_calls_show_json(cli: Run, answered_call: None, r: redis.Redis, keys: Keys) -> None:
    """--json gives the record with its history entries and their stream ids."""
    code, out, _ = cli("calls", "show", "vobiz", CALL, "--json")
    document = orjson.loads(out)
    stream_ids = [entry_id.decode() for entry_id, _ in r.xrange(keys.transitions())]
    assert (document["state"], document["attempt"], document["version"]) == ("completed", 1, 3)
    assert [entry["id"] for entry in document["history"]] == stream_ids
    assert [entry["to_state"] for entry in document["history"]] == ["ringing", "answered", "completed"]


def test_calls_show_unknown_call(cli: Run) -> None:
    """An unknown call exits 3 and says so."""
    code, out, err = cli("calls", "show", "vobiz", "no-such-call")
    assert (code, out) == (3, "")
    assert "no call 'no-such-call' from source 'vobiz'" in err


# -- deadletter -------------------------------------------------------------------------------------


def dead_letter_ids(r: redis.Redis, keys: Keys) -> list[str]:
    return [entry_id.decode() for entry_id, _ in r.xrange(keys.deadletter())]


def write_config(tmp_path: Path, redis_url: str, prefix: str, provider: str) -> str:
    path = tmp_path / "callstream.toml"
    path.write_text(
        f'[redis]\nurl = "{redis_url}"\n[streams]\nprefix = "{prefix}"\n'
        f'[sources.pbx]\nprovider = "{provider}"\nverify = false\n'
        "[sources.vobiz]\nverify = false\n",
        encoding="utf-8",
    )
    return str(path)


@pytest.fixture
def misrouted(make_client: Callable[..., TestClient], make_settings: MakeSettings) -> None:
    """A Vobiz callback sent to a source wrongly configured as MiniVoice, and an unknown Vobiz event:
    two dead letters."""
    settings = make_settings(
        sources={
            "pbx": Source(name="pbx", provider="minivoice", verify=False),
            "vobiz": Source(name="vobiz", provider="vobiz", verify=False),
        }
    )
    client = make_client(settings)
    assert client.post("/webhooks/pbx", content=RING, headers=FORM).status_code == 415
    assert client.post("/webhooks/vobiz", content=TRANSFER, headers=FORM).status_code == 202


def test_deadletter_list(cli: Run, misrouted: None, r: redis.Redis, keys: Keys) -> None:
    """One line per dead letter with source, provider, code and reason; JSON lines with --json."""
    first, second = dead_letter_ids(r, keys)
    code, out, _ = cli("deadletter", "list")
    header, line1, line2 = out.splitlines()
    assert header.split() == ["ID", "DEAD-LETTERED", "SOURCE", "PROVIDER", "CODE", "REASON"]
    assert line1.startswith(first) and line2.startswith(second)
    assert "pbx            minivoice    unsupported_content_type" in line1
    assert line2.endswith("unknown_event          unknown Vobiz event 'Transfer'")
    code, out, _ = cli("deadletter", "list", "--json", "--limit", "1")
    [document] = [orjson.loads(line) for line in out.splitlines()]
    assert (document["id"], document["source"], document["code"]) == (first, "pbx", "unsupported_content_type")


def test_deadletter_show_masks_credentials(
    cli: Run, make_client: Callable[..., TestClient], r: redis.Redis, keys: Keys
) -> None:
    """show prints the kept request; an Authorization header's value is masked."""
    headers = {**FORM, "Authorization": "Bearer very-secret-token", "X-Trace": "abc"}
    assert make_client().post("/webhooks/vobiz", content=TRANSFER, headers=headers).status_code == 202
    [entry_id] = dead_letter_ids(r, keys)
    code, out, _ = cli("deadletter", "show", entry_id, "--json")
    document = orjson.loads(out)
    assert code == 0
    assert (document["code"], document["reason"]) == ("unknown_event", "unknown Vobiz event 'Transfer'")
    assert document["body"] == TRANSFER
    assert (document["headers"]["authorization"], document["headers"]["x-trace"]) == ("***", "abc")
    code, out, _ = cli("deadletter", "show", entry_id)
    assert "very-secret-token" not in out
    assert f"id        {entry_id}" in out.splitlines()
    assert TRANSFER in out.splitlines()


def test_deadletter_show_escapes_control_characters_a_sender_put_in_the_body(
    cli: Run, make_client: Callable[..., TestClient], r: redis.Redis, keys: Keys
) -> None:
    """An ANSI escape in a kept body (here: clear the screen) is printed escaped, not sent to the terminal."""
    body = TRANSFER + "&Note=\x1b[2J\x1b[31mALERT\nsecond line"
    assert make_client().post("/webhooks/vobiz", content=body, headers=FORM).status_code == 202
    [entry_id] = dead_letter_ids(r, keys)
    code, out, _ = cli("deadletter", "show", entry_id)
    assert code == 0
    assert "\x1b" not in out
    assert TRANSFER + "&Note=\\x1b[2J\\x1b[31mALERT" in out.splitlines()
    assert "second line" in out.splitlines()
    # The source does not verify, so nothing authenticated the request, and every header says so.
    assert "auth      none: the source does not verify signatures" in out.splitlines()
    assert " *content-type: application/x-www-form-urlencoded" in out.splitlines()


def test_deadletter_show_unknown_id(cli: Run) -> None:
    code, _, err = cli("deadletter", "show", "1-0")
    assert code == 3
    assert "no dead letter 1-0" in err


def test_redrive_succeeds_with_the_fixed_configuration_and_removes_the_entry(
    cli: Run, misrouted: None, r: redis.Redis, keys: Keys, tmp_path: Path, redis_url: str, prefix: str
) -> None:
    """With pbx now configured as Vobiz, the kept Ring applies and its dead letter is gone."""
    first, second = dead_letter_ids(r, keys)
    config = write_config(tmp_path, redis_url, prefix, "vobiz")
    code, out, _ = cli("deadletter", "redrive", first, "--config", config, target=False)
    assert code == 0
    assert out.splitlines() == [
        f"{first} redriven: pbx-call-1 ringing: applied new->ringing",
        "1 redriven, 0 failed, 0 kept, 0 missing",
    ]
    assert dead_letter_ids(r, keys) == [second]
    assert r.hget(keys.call("pbx", "pbx-call-1"), "state") == b"ringing"
    [(_id, fields)] = r.xrange(keys.transitions())
    assert fields[b"replay"] == b"1"


def test_redrive_that_fails_again_keeps_the_request_with_the_new_reason(
    cli: Run, misrouted: None, r: redis.Redis, keys: Keys, tmp_path: Path, redis_url: str, prefix: str
) -> None:
    """--all: the fixable one is redriven; the unknown event fails again, is kept once with the reason, exit 1."""
    first, second = dead_letter_ids(r, keys)
    config = write_config(tmp_path, redis_url, prefix, "vobiz")
    code, out, _ = cli("deadletter", "redrive", "--all", "--json", "--config", config, target=False)
    reports = [orjson.loads(line) for line in out.splitlines()]
    assert code == 1
    assert [(report["id"], report["status"]) for report in reports] == [(first, "redriven"), (second, "failed")]
    failed = reports[1]
    assert (failed["code"], failed["reason"]) == ("unknown_event", "unknown Vobiz event 'Transfer'")
    [remaining] = r.xrange(keys.deadletter())
    assert remaining[0].decode() == failed["kept_as"] != second
    assert remaining[1][b"reason"] == b"unknown Vobiz event 'Transfer'"
    assert remaining[1][b"body"] == TRANSFER.encode()


def test_redrive_reports_missing_ids_and_unconfigured_sources(
    cli: Run, misrouted: None, r: redis.Redis, keys: Keys, tmp_path: Path, redis_url: str, prefix: str
) -> None:
    """A source no longer configured keeps its entry untouched; an unknown id is reported missing."""
    first, _second = dead_letter_ids(r, keys)
    config = tmp_path / "other.toml"
    config.write_text(f'[streams]\nprefix = "{prefix}"\n[sources.vobiz]\nverify = false\n', encoding="utf-8")
    code, out, _ = cli(
        "deadletter", "redrive", first, "1-0", "--config", str(config), "--redis-url", redis_url, target=False
    )
    assert code == 1
    assert out.splitlines() == [
        "1-0 not found",
        f"{first} kept: source 'pbx' is not configured",
        "0 redriven, 0 failed, 1 kept, 1 missing",
    ]
    assert first in dead_letter_ids(r, keys)


def test_redrive_needs_ids_or_all(cli: Run) -> None:
    code, _, err = cli("deadletter", "redrive")
    assert code == 2
    assert "give entry ids or --all" in err


# -- stats ------------------------------------------------------------------------------------------


def test_stats_lengths_lag_and_pending(
    cli: Run, answered_call: None, misrouted: None, r: redis.Redis, keys: Keys
) -> None:
    """A group that was handed 2 of 3 entries and acknowledged 1: lag 1, pending 1; dead letters counted."""
    stream = keys.transitions()
    ids = [entry_id for entry_id, _ in r.xrange(stream)]
    r.xgroup_create(stream, "billing", id="0")
    r.xreadgroup("billing", "worker-1", {stream: ">"}, count=2)
    r.xack(stream, "billing", ids[0])
    r.xgroup_create(stream, "audit", id="$")
    r.xadd(keys.consumer_deadletter("billing"), {"error": "boom"})

    code, out, _ = cli("stats", "--json")
    document = orjson.loads(out)
    [summary] = document["streams"]
    assert code == 0
    assert (summary["stream"], summary["length"], summary["last_id"]) == (stream, 3, ids[2].decode())
    groups = {group["name"]: group for group in summary["groups"]}
    assert (groups["billing"]["lag"], groups["billing"]["pending"]) == (1, 1)
    assert [(c["name"], c["pending"]) for c in groups["billing"]["consumers"]] == [("worker-1", 1)]
    assert (groups["audit"]["lag"], groups["audit"]["pending"], groups["audit"]["consumers"]) == (0, 0, [])
    assert document["deadletter"]["length"] == 2
    assert {d["group"]: d["length"] for d in document["consumer_deadletters"]} == {"audit": 0, "billing": 1}

    code, out, _ = cli("stats")
    assert f"stream {stream}: length 3, first {ids[0].decode()}, last {ids[2].decode()}" in out
    assert f"  group billing: lag 1, pending 1, last delivered {ids[1].decode()}, consumers 1" in out
    assert f"deadletter {keys.deadletter()}: length 2" in out


def test_partitioned_deployment(
    cli: Run, make_client: Callable[..., TestClient], make_settings: MakeSettings, prefix: str
) -> None:
    """With --partitions, calls show finds the call in its partition and stats lists every stream."""
    client = make_client(make_settings(partitions=4))
    for request in Scenario.load(FIXTURES / "vobiz" / "answered.json").requests:
        response = client.post("/webhooks/vobiz", content=request.body, headers={"Content-Type": request.content_type})
        assert response.status_code == 200
    code, out, _ = cli("calls", "show", "vobiz", CALL, "--partitions", "4")
    assert (code, out.splitlines()[1]) == (0, "state     completed   attempt 1   version 3")
    code, out, _ = cli("stats", "--partitions", "4", "--json")
    streams = orjson.loads(out)["streams"]
    assert [s["stream"] for s in streams] == [f"{prefix}:{{{p}}}:transitions" for p in range(4)]
    assert sum(s["length"] for s in streams) == 3
    code, _, err = cli("tail", "--partition", "4", "--partitions", "4")
    assert code == 2
    assert "--partition must be from 0 to 3" in err


def test_stats_on_an_empty_prefix(cli: Run, keys: Keys) -> None:
    code, out, _ = cli("stats")
    assert code == 0
    assert out.splitlines()[1:] == [
        f"stream {keys.transitions()}: missing",
        f"deadletter {keys.deadletter()}: length 0",
    ]


# -- errors shared by every command -----------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [["stats"], ["calls", "show", "vobiz", "x"], ["deadletter", "list"], ["tail", "--no-follow"]],
    ids=["stats", "calls", "deadletter", "tail"],
)
def test_unreachable_redis_is_a_clear_error_without_the_password(cli: Run, command: list[str]) -> None:
    """Exit 1 and a message naming the URL, with the password masked."""
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    code, _out, err = cli(*command, "--redis-url", url, target=False)
    assert code == 1
    assert f"cannot reach Redis at redis://:***@127.0.0.1:{url.rsplit(':', 1)[1]}" in err
    assert "hunter2" not in err


def test_bad_prefix_is_a_usage_error(cli: Run, redis_url: str) -> None:
    code, _out, err = cli("stats", "--redis-url", redis_url, "--prefix", "bad prefix", target=False)
    assert code == 2
    assert "key prefix 'bad prefix' must be non-empty, without braces or spaces" in err
