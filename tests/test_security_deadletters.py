"""Dead letters under attack, through the real app, a real Redis and the real ``callstream deadletter``
commands: a captured request replayed with other unsigned headers, oversized entries, one source's flood,
credentials in storage and output, and redrive as a way around the signature check.

Against a receiver without these defences every test here fails: each copy was kept whole (body and
headers) up to one global length, signatures, nonces and the operator token were stored and printed in
clear, and redrive ran any entry, whatever authenticated it.
"""

from __future__ import annotations

import time
import urllib.parse
import uuid
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
import redis
from plivo.utils.signature_v3 import get_signature_v3
from starlette.testclient import TestClient
from twilio.request_validator import RequestValidator

from receiver.settings import Secret, Source
from statemachine.keys import Keys
from tests.conftest import MakeSettings, Run, signed_source

Client = Callable[..., TestClient]
FORM = "application/x-www-form-urlencoded"
TOKEN = "TWILIOAUTHTOKEN0123456789abcdef"
VOBIZ_TOKEN = "VOBIZAUTHTOKEN0123456789abcdefghijklmno"
OPERATOR_TOKEN = "operator-token-0123456789abcdefghij"


def entries(r: redis.Redis, keys: Keys) -> list[dict[str, bytes]]:
    return [{k.decode(): v for k, v in fields.items()} for _id, fields in r.xrange(keys.deadletter())]


def entry_bytes(fields: dict[str, bytes]) -> int:
    return sum(len(name) + len(value) for name, value in fields.items())


def test_captured_request_replayed_with_other_unsigned_headers_is_kept_once(
    make_client: Client, make_settings: MakeSettings, r: redis.Redis, keys: Keys
) -> None:
    """A Twilio callback (signed with twilio's RequestValidator) that cannot be processed, replayed thirty
    times with another Content-Type parameter and 8 KiB of junk headers: one dead letter, not thirty-one."""
    client = make_client(make_settings({"tw": signed_source("tw", "twilio", TOKEN)}))
    params = {"CallSid": "CA" + "0" * 32, "CallStatus": "transferring", "AccountSid": "AC" + "1" * 32}
    body = urllib.parse.urlencode(params).encode()
    signature = RequestValidator(TOKEN).compute_signature("http://testserver/webhooks/tw", params)
    headers = {"Content-Type": FORM, "X-Twilio-Signature": signature}
    first = client.post("/webhooks/tw", content=body, headers=headers)
    assert first.status_code == 202
    for copy in range(30):
        junk = {f"X-Junk-{n}": "j" * 1000 for n in range(8)}
        replayed = {**headers, **junk, "Content-Type": f"{FORM}; charset=utf-8; copy={copy}"}
        again = client.post("/webhooks/tw", content=body, headers=replayed)
        assert (again.status_code, again.json()["error"]["deadletter_id"]) == (
            202,
            first.json()["error"]["deadletter_id"],
        )
    assert len(entries(r, keys)) == 1


def test_one_entry_is_bounded_and_says_what_was_dropped(
    make_client: Client, make_settings: MakeSettings, r: redis.Redis, keys: Keys, cli: Run, tmp_path: Path
) -> None:
    """A 250 KB body and 100 KB of headers: the entry keeps 64 KiB of body and 8 KiB of headers, records the
    body's full size and SHA-256 and how many headers were dropped, and is never redriven (it is not the
    request that was received)."""
    client = make_client(make_settings({"vobiz": Source(name="vobiz", provider="vobiz", verify=False)}))
    body = b"Event=StartStream&CallUUID=big-call&Padding=" + b"p" * 250_000
    headers = {"Content-Type": FORM, **{f"X-Header-{n}": "h" * 1000 for n in range(100)}}
    assert client.post("/webhooks/vobiz", content=body, headers=headers).status_code == 202
    [fields] = entries(r, keys)
    assert entry_bytes(fields) < 64 * 1024 + 8 * 1024 + 4 * 1024
    code, out, _ = cli("deadletter", "show", r.xrange(keys.deadletter())[0][0].decode(), "--json")
    document = orjson.loads(out)
    assert (document["truncated"], document["body_bytes"], len(document["body"])) == (True, len(body), 64 * 1024)
    assert document["headers_dropped"] > 90
    code, out, _ = cli("deadletter", "redrive", "--all", "--json")
    [report] = [orjson.loads(line) for line in out.splitlines()]
    assert (code, report["status"]) == (1, "kept")
    assert "truncated" in report["reason"]


def test_one_sources_flood_stays_within_its_bytes_and_spares_the_others(
    make_client: Client, make_settings: MakeSettings, r: redis.Redis, keys: Keys
) -> None:
    """With 128 KiB per source, forty 16 KiB dead letters of one source keep only its newest (about eight);
    another source's dead letter, older than all of them, is still there."""
    from receiver.settings import DeadLetterLimits  # [deadletter] limits: new with this bound

    sources = {name: Source(name=name, provider="vobiz", verify=False) for name in ("noisy", "quiet")}
    limits = DeadLetterLimits(max_entry_bytes=16 * 1024, max_source_bytes=128 * 1024)
    client = make_client(make_settings(sources, deadletters=limits))
    quiet = b"Event=StartStream&CallUUID=quiet-call"
    assert client.post("/webhooks/quiet", content=quiet, headers={"Content-Type": FORM}).status_code == 202
    for n in range(40):
        body = f"Event=StartStream&CallUUID=noisy-{n}&Padding=".encode() + b"p" * 16_000
        assert client.post("/webhooks/noisy", content=body, headers={"Content-Type": FORM}).status_code == 202
    kept = entries(r, keys)
    noisy = [fields for fields in kept if fields["source"] == b"noisy"]
    assert sum(entry_bytes(fields) for fields in noisy) <= 128 * 1024 + 20 * 1024
    assert b"noisy-39" in noisy[-1]["body"] and not any(b"noisy-0&" in fields["body"] for fields in noisy)
    assert [fields["body"] for fields in kept if fields["source"] == b"quiet"] == [quiet]


def test_credentials_are_masked_in_storage_and_in_every_output(
    make_client: Client, make_settings: MakeSettings, r: redis.Redis, keys: Keys, cli: Run, tmp_path: Path
) -> None:
    """A signed Vobiz request that cannot be processed, sent with the operator's replay header and an
    Authorization header: neither its signature, its nonce, the operator token nor the bearer token is
    stored or printed by ``deadletter list``, ``show`` (text and JSON) or ``redrive``; the headers the
    signature did not cover are listed as unauthenticated."""
    settings = make_settings(
        {"vobiz": signed_source("vobiz", "vobiz", VOBIZ_TOKEN)}, operator_token=Secret(OPERATOR_TOKEN)
    )
    client = make_client(settings)
    nonce = str(uuid.uuid4().int)[:20]
    signature = get_signature_v3(VOBIZ_TOKEN, "http://testserver/webhooks/vobiz", nonce).decode()
    headers = {
        "Content-Type": FORM,
        "X-Vobiz-Signature-V3": signature,
        "X-Vobiz-Signature-V3-Nonce": nonce,
        "X-Callstream-Replay": OPERATOR_TOKEN,
        "Authorization": "Bearer bearer-token-abcdef",
        "X-Trace": "trace-1",
    }
    assert client.post("/webhooks/vobiz", content=b"Event=StartStream&CallUUID=c-1", headers=headers).status_code == 202
    secrets = [signature, nonce, OPERATOR_TOKEN, "bearer-token-abcdef", VOBIZ_TOKEN]
    stored = b" ".join(value for fields in entries(r, keys) for value in fields.values())
    assert [secret for secret in secrets if secret.encode() in stored] == []
    config = tmp_path / "callstream.toml"
    config.write_text(
        f'[streams]\nprefix = "{keys.prefix}"\n[operator]\ntoken = "{OPERATOR_TOKEN}"\n'
        f'[sources.vobiz]\nprovider = "vobiz"\nsecrets = ["{VOBIZ_TOKEN}"]\n'
    )
    entry_id = r.xrange(keys.deadletter())[0][0].decode()
    outputs = [
        cli("deadletter", "list", "--json"),
        cli("deadletter", "show", entry_id),
        cli("deadletter", "show", entry_id, "--json", "--config", str(config)),
        cli("deadletter", "redrive", entry_id, "--json", "--config", str(config)),
    ]
    printed = " ".join(out + err for _code, out, err in outputs)
    assert [secret for secret in secrets if secret in printed] == []
    document = orjson.loads(outputs[2][1])
    assert {"x-vobiz-signature-v3", "x-vobiz-signature-v3-nonce"} <= set(document["authenticated_headers"])
    assert {"content-type", "x-trace", "x-callstream-replay"} <= set(document["unauthenticated_headers"])
    assert document["headers"]["x-trace"] == "trace-1"
    assert "vobiz v3" in document["authentication"]


FORGED_BUSY = b"Event=Hangup&CallUUID=victim-call&HangupCause=USER_BUSY&CallStatus=busy"


def verified_config(tmp_path: Path, prefix: str) -> str:
    path = tmp_path / "verified.toml"
    path.write_text(
        f'[streams]\nprefix = "{prefix}"\n[sources.vobiz]\nprovider = "vobiz"\nsecrets = ["{VOBIZ_TOKEN}"]\n'
    )
    return str(path)


def test_redrive_never_runs_an_entry_without_a_record_of_its_authentication(
    r: redis.Redis, keys: Keys, cli: Run, tmp_path: Path
) -> None:
    """An entry as older releases kept it (no authentication recorded: it may be a replayed nonce with a
    forged body) is not run by ``deadletter redrive``; the call it names stays unknown."""
    r.xadd(
        keys.deadletter(),
        {
            "source": "vobiz",
            "provider": "vobiz",
            "code": "unknown_event",
            "reason": "kept by an older release",
            "method": "POST",
            "url": "http://testserver/webhooks/vobiz",
            "headers": orjson.dumps({"content-type": FORM}),
            "body": FORGED_BUSY,
            "received_at": repr(time.time()),
            "at": int(time.time() * 1000),
        },
    )
    code, out, _ = cli("deadletter", "redrive", "--all", "--json", "--config", verified_config(tmp_path, keys.prefix))
    [report] = [orjson.loads(line) for line in out.splitlines()]
    assert (code, report["status"]) == (1, "kept")
    assert r.exists(keys.call("vobiz", "victim-call")) == 0 and r.xlen(keys.transitions()) == 0


def test_redrive_never_runs_an_unverified_entry_at_a_source_that_now_verifies(
    make_client: Client, make_settings: MakeSettings, r: redis.Redis, keys: Keys, cli: Run, tmp_path: Path
) -> None:
    """Kept while the source accepted unsigned requests, an entry is not run once the source verifies
    signatures: anyone could have sent it."""
    client = make_client(make_settings({"vobiz": Source(name="vobiz", provider="vobiz", verify=False)}))
    body = FORGED_BUSY.replace(b"Event=Hangup", b"Event=StartStream")
    assert client.post("/webhooks/vobiz", content=body, headers={"Content-Type": FORM}).status_code == 202
    code, out, _ = cli("deadletter", "redrive", "--all", "--json", "--config", verified_config(tmp_path, keys.prefix))
    [report] = [orjson.loads(line) for line in out.splitlines()]
    assert (code, report["status"]) == (1, "kept")
    assert "did not verify" in report["reason"]
    assert r.xlen(keys.deadletter()) == 1 and r.xlen(keys.transitions()) == 0


@pytest.mark.parametrize("verify", [True, False])
def test_redrive_runs_an_authenticated_entry_once_fixed(
    verify: bool, make_client: Client, make_settings: MakeSettings, r: redis.Redis, keys: Keys, cli: Run, tmp_path: Path
) -> None:
    """The intended use still works: a request authenticated when it arrived (or received while the source
    did not verify, which it still does not), kept for a wrong configuration, is applied by redrive once the
    configuration is fixed."""
    source = signed_source("pbx", "minivoice", VOBIZ_TOKEN) if verify else Source("pbx", "minivoice", verify=False)
    client = make_client(make_settings({"pbx": source}))
    ring = b"Event=Ring&CallUUID=fixed-call&CallStatus=ringing"
    headers = {"Content-Type": FORM}
    if verify:  # a MiniVoice-signed request whose body is a Vobiz form: authenticated, but 415 there
        from receiver.providers import PROVIDERS
        from receiver.providers.base import OutgoingRequest

        outgoing = OutgoingRequest("http://testserver/webhooks/pbx", ring, FORM)
        headers.update(PROVIDERS["minivoice"].sign(outgoing, VOBIZ_TOKEN, time.time()))
    assert client.post("/webhooks/pbx", content=ring, headers=headers).status_code == 415
    fixed = tmp_path / "fixed.toml"
    secrets = f'secrets = ["{VOBIZ_TOKEN}"]' if verify else "verify = false"
    fixed.write_text(f'[streams]\nprefix = "{keys.prefix}"\n[sources.pbx]\nprovider = "vobiz"\n{secrets}\n')
    code, out, _ = cli("deadletter", "redrive", "--all", "--json", "--config", str(fixed))
    [report] = [orjson.loads(line) for line in out.splitlines()]
    assert (code, report["status"]) == (0, "redriven")
    assert r.hget(keys.call("pbx", "fixed-call"), "state") == b"ringing"
