"""Generic JSON sources and the Goodbox preset: options checked at load time (every error names the key),
and configured paths, statuses and signature families working through the real app and a real Redis."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any, cast

import jwt
import orjson
import pytest
import redis
from starlette.testclient import TestClient

from receiver.providers import PROVIDERS
from receiver.settings import ConfigError, Settings
from receiver.signatures import timestamped_hmac
from statemachine.keys import Keys
from statemachine.store import entry_fields
from tests.conftest import MakeSettings

SECRET = "generic-source-secret-0123456789abcdef"
JSON = {"Content-Type": "application/json"}

ACME = f"""
[sources.acme]
provider = "generic"
secrets = ["{SECRET}"]
call_id = "data.call.id"
status = "data.event"
time = "created"
from = "data.call.from"
to = "data.call.to"
signature = "hmac-timestamped"
signature_header = "Acme-Signature"
signature_format = "t,v1"
[sources.acme.statuses]
"Call Ringing" = "ringing"
"in-progress" = "answered"
hangup = "completed"
amd = "annotation"
[sources.acme.extras]
duration_s = "data.call.duration"
"""


def load(text: str) -> Settings:
    return Settings.from_toml(text, {}, list(PROVIDERS))


def published(r: redis.Redis, keys: Keys) -> list[dict[str, Any]]:
    entries = cast(list[tuple[bytes, dict[bytes, bytes]]], r.xrange(keys.transitions()))
    return [entry_fields(fields) for _id, fields in entries]


def acme_event(event: str, created: int | str, **call: Any) -> bytes:
    return orjson.dumps(
        {"created": created, "data": {"event": event, "call": {"id": "acme-1", "from": "+15550001", **call}}}
    )


def acme_signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    now = str(int(time.time()))
    return {**JSON, "Acme-Signature": f"t={now},v1={timestamped_hmac.signature(secret, now, body)}"}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ('stauts = "x"', "sources.g.stauts is not an option of a generic source"),
        ('call_id = "data..id"', "sources.g.call_id must be a dotted path"),
        ("call_id = 7", "sources.g.call_id must be a dotted path"),
        ('signature = "md5"', "sources.g.signature must be one of: shared-secret, hmac-timestamped, jwt-hs256"),
        ('signature_format = "base64"', "sources.g.signature_format must be one of: v1, t,v1, hex"),
        ('signature_header = ""', "sources.g.signature_header must be a non-empty string"),
        ('as = "vonage"\nsignature = "jwt-hs256"', "sources.g.as and sources.g.signature are exclusive"),
        ('as = "generic"', "sources.g.as must be one of:"),
        ('as = "nosuch"', "sources.g.as must be one of:"),
        ('statuses = "ringing"', "sources.g.statuses must be a table"),
        ("[sources.g.statuses]\nup = 'live'", "sources.g.statuses.up must be one of:"),
        ("[sources.g.extras]\ncost = ''", "sources.g.extras.cost must be a dotted path"),
    ],
    ids=[
        "unknown-key",
        "empty-path-part",
        "path-not-text",
        "family",
        "format",
        "header",
        "as-and-signature",
        "as-config-driven",
        "as-unknown",
        "statuses-not-table",
        "status-target",
        "extras-path",
    ],
)
def test_bad_options_are_refused_at_load_naming_the_key(options: str, message: str) -> None:
    """Each mistake stops the configuration from loading, with the key at fault in the message."""
    with pytest.raises(ConfigError) as caught:
        load(f'[sources.g]\nprovider = "generic"\nverify = false\n{options}\n')
    assert message in str(caught.value)


def test_goodbox_overrides_are_checked_too() -> None:
    """The preset's overrides go through the same checks."""
    with pytest.raises(ConfigError, match=r"sources\.gb\.status must be a dotted path"):
        load('[sources.gb]\nprovider = "goodbox"\nverify = false\nstatus = ""\n')


def test_configured_source_maps_paths_statuses_and_time(
    make_client: Callable[..., TestClient], make_settings: MakeSettings, r: redis.Redis, keys: Keys
) -> None:
    """Statuses match case- and punctuation-insensitively; unix and ISO times become UTC; extras are read."""
    client = make_client(make_settings(load(ACME).sources))
    bodies = [
        acme_event("call ringing", 1780056000),
        acme_event("IN_PROGRESS", "2026-05-29T14:00:05+02:00"),
        acme_event("amd", "1780056007"),
        acme_event("hangup", 1780056047, duration=42),
    ]
    outcomes = [client.post("/webhooks/acme", content=b, headers=acme_signed(b)).json() for b in bodies]
    assert [o["results"][0]["outcome"] for o in outcomes] == ["applied", "applied", "annotation", "applied"]
    entries = published(r, keys)
    assert [(e["kind"], e["to_state"]) for e in entries] == [
        ("transition", "ringing"),
        ("transition", "answered"),
        ("annotation", "answered"),
        ("transition", "completed"),
    ]
    assert [e["event"]["occurred_at"] for e in entries] == [
        "2026-05-29T12:00:00Z",
        "2026-05-29T12:00:05Z",
        "2026-05-29T12:00:07Z",
        "2026-05-29T12:00:47Z",
    ]
    assert entries[2]["name"] == "amd"
    assert entries[3]["event"]["extras"] == {"duration_s": 42}
    assert (entries[0]["call_id"], entries[0]["event"]["from_number"]) == ("acme-1", "+15550001")


def test_configured_source_refuses_bad_signature_and_keeps_unknown_status(
    make_client: Callable[..., TestClient], make_settings: MakeSettings, r: redis.Redis, keys: Keys
) -> None:
    """Another secret → 401 naming the configured header; an unmapped status → 202, dead-lettered."""
    client = make_client(make_settings(load(ACME).sources))
    body = acme_event("hangup", 1780056047)
    refused = client.post("/webhooks/acme", content=body, headers=acme_signed(body, "other-secret"))
    assert (refused.status_code, refused.json()["error"]["header"]) == (401, "Acme-Signature")
    unknown = acme_event("on-hold", 1780056010)
    kept = client.post("/webhooks/acme", content=unknown, headers=acme_signed(unknown))
    assert (kept.status_code, kept.json()["error"]["code"]) == (202, "unknown_event")
    assert (r.xlen(keys.transitions()), r.xlen(keys.deadletter())) == (0, 1)


def family_source(options: str) -> str:
    return f'[sources.fam]\nprovider = "generic"\nsecrets = ["{SECRET}"]\n{options}\n'


CANONICAL = orjson.dumps({"call_id": "fam-1", "status": "ringing", "timestamp": "2026-05-29T12:00:01Z"})
Headers = Callable[[int], dict[str, str]]


def hmac_hex(secret: str, now: int) -> str:
    return timestamped_hmac.signature(secret, str(now), CANONICAL)


def bearer_jwt(iat: int) -> dict[str, str]:
    claims = {"iat": iat, "payload_hash": hashlib.sha256(CANONICAL).hexdigest()}
    return {"Authorization": "Bearer " + jwt.encode(claims, SECRET, algorithm="HS256")}


FAMILIES: dict[str, tuple[str, Headers, Headers, str]] = {
    "shared-secret": (
        'signature = "shared-secret"\nsignature_header = "X-Fam-Key"',
        lambda now: {"X-Fam-Key": SECRET},
        lambda now: {"X-Fam-Key": SECRET[:-1]},
        "X-Fam-Key",
    ),
    "jwt-hs256": ('signature = "jwt-hs256"', bearer_jwt, lambda now: bearer_jwt(now - 900), "Authorization"),
    "hmac-hex": (
        'signature_format = "hex"\ntimestamp_header = "X-Fam-Time"',
        lambda now: {"X-Callstream-Signature": hmac_hex(SECRET, now), "X-Fam-Time": str(now)},
        lambda now: {"X-Callstream-Signature": hmac_hex(SECRET, now), "X-Fam-Time": str(now - 301)},
        "X-Fam-Time",
    ),
    "as-callingbox": (
        'as = "callingbox"',
        lambda now: {"CallingBox-Signature": f"t={now},v1={hmac_hex(SECRET, now)}"},
        lambda now: {"CallingBox-Signature": f"t={now},v1={hmac_hex('other', now)}"},
        "CallingBox-Signature",
    ),
}


@pytest.mark.parametrize("family", FAMILIES)
def test_signature_families(
    family: str, make_client: Callable[..., TestClient], make_settings: MakeSettings, r: redis.Redis, keys: Keys
) -> None:
    """Each family accepts a request signed its way (200) and refuses a bad one naming its header (401):
    a shared secret one character short, a stale JWT, a stale timestamp header, another secret's digest."""
    options, good, bad, header = FAMILIES[family]
    client = make_client(make_settings(load(family_source(options)).sources))
    now = int(time.time())
    assert client.post("/webhooks/fam", content=CANONICAL, headers={**JSON, **good(now)}).status_code == 200
    refused = client.post("/webhooks/fam", content=CANONICAL, headers={**JSON, **bad(now)})
    assert (refused.status_code, refused.json()["error"]["header"]) == (401, header)
    assert [e["to_state"] for e in published(r, keys)] == ["ringing"]


def test_goodbox_preset_works_without_options(
    make_client: Callable[..., TestClient], make_settings: MakeSettings, r: redis.Redis, keys: Keys
) -> None:
    """provider = "goodbox" with only a secret: data.id / data.status read, X-Goodbox-Secret checked."""
    client = make_client(make_settings(load(f'[sources.gb]\nprovider = "goodbox"\nsecrets = ["{SECRET}"]\n').sources))
    body = orjson.dumps({"data": {"id": "66f1a2b3", "status": "In-Progress", "mobile_number": "+919999999999"}})
    accepted = client.post("/webhooks/gb", content=body, headers={**JSON, "X-Goodbox-Secret": SECRET})
    assert accepted.json()["results"][0]["to_state"] == "answered"
    refused = client.post("/webhooks/gb", content=body, headers={**JSON, "X-Goodbox-Secret": "nope"})
    assert (refused.status_code, refused.json()["error"]["header"]) == (401, "X-Goodbox-Secret")
    [entry] = published(r, keys)
    assert (entry["call_id"], entry["event"]["to_number"]) == ("66f1a2b3", "+919999999999")


def test_goodbox_preset_can_be_overridden(
    make_client: Callable[..., TestClient], make_settings: MakeSettings, r: redis.Redis, keys: Keys
) -> None:
    """The assumed status field and header are options: another path, an extra status, another header."""
    config = (
        f'[sources.gb]\nprovider = "goodbox"\nsecrets = ["{SECRET}"]\nstatus = "data.call_status"\n'
        'signature_header = "X-Relay-Secret"\n[sources.gb.statuses]\nvoicemail = "no_answer"\n'
    )
    client = make_client(make_settings(load(config).sources))
    ringing = orjson.dumps({"data": {"id": "gb-2", "call_status": "ringing"}})
    voicemail = orjson.dumps({"data": {"id": "gb-2", "call_status": "voicemail"}})
    for body in (ringing, voicemail):
        assert client.post("/webhooks/gb", content=body, headers={**JSON, "X-Relay-Secret": SECRET}).status_code == 200
    assert [e["to_state"] for e in published(r, keys)] == ["ringing", "no_answer"]
    old_header = client.post("/webhooks/gb", content=ringing, headers={**JSON, "X-Goodbox-Secret": SECRET})
    assert (old_header.status_code, old_header.json()["error"]["header"]) == (401, "X-Relay-Secret")
