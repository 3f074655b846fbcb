"""The operator console over HTTP, through the real app and a real Redis: who gets in, the session cookie,
CSRF on the one action, what the pages show, escaping, and how `serve` announces it.

The browser side (live updates, clicking through) is in tests/test_console_browser.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
import redis
from starlette.testclient import TestClient

from receiver.console.access import COOKIE, ONE_TIME_TOKEN_ENV, SESSION_SECONDS, Access, announce
from receiver.scenario import Scenario
from receiver.settings import Secret, Source
from statemachine.keys import Keys
from tests.conftest import FIXTURES, MakeSettings

TOKEN = "operator-token-for-tests"
CALL = "8a9c1b52-3d4c-11ef-bef9-0242ac110005"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
TRANSFER = "CallUUID=pbx-call-2&Event=Transfer&CallStatus=in-progress"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def console(make_client: Callable[..., TestClient], make_settings: MakeSettings) -> TestClient:
    """The app with an operator token; no redirects followed, so each answer can be checked."""
    return make_client(make_settings(operator_token=Secret(TOKEN)), follow_redirects=False)


def log_in(client: TestClient) -> str:
    """Log in through the form; returns the CSRF token of the pages."""
    response = client.post("/console/login", data={"token": TOKEN, "next": "/console/health"})
    assert (response.status_code, response.headers["location"]) == (303, "/console/health")
    page = client.get("/console/deadletters")
    assert page.status_code == 200
    return re.findall(r'name="csrf" value="([^"]+)"', page.text)[0]


def replay_answered(client: TestClient) -> None:
    for request in Scenario.load(FIXTURES / "vobiz" / "answered.json").requests:
        response = client.post("/webhooks/vobiz", content=request.body, headers={"Content-Type": request.content_type})
        assert response.status_code == 200


# -- who gets in --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/console", "/console/login", "/console/health", "/console/live/events"])
def test_console_is_off_without_a_token(
    make_client: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    """No operator token and no token made by serve: every console page answers 403, saying how to enable it."""
    monkeypatch.delenv(ONE_TIME_TOKEN_ENV, raising=False)
    response = make_client().get(path, headers=BEARER)
    assert response.status_code == 403
    assert "no operator token is configured" in response.text
    assert "[operator] token" in response.text


def test_pages_send_strangers_to_the_login_form_and_other_requests_get_401(console: TestClient) -> None:
    response = console.get("/console/calls?list=stale")
    assert response.status_code == 303
    assert response.headers["location"] == "/console/login?next=%2Fconsole%2Fcalls%3Flist%3Dstale"
    events = console.get("/console/live/events", headers={"Accept": "text/event-stream"})
    assert events.status_code == 401
    assert events.headers["www-authenticate"] == 'Bearer realm="callstream"'
    assert console.post("/console/deadletters/redrive", data={"all": "1"}).status_code == 401
    assert console.get("/console/health", headers={"Authorization": "Bearer wrong"}).status_code == 303


def test_bearer_token_opens_every_page(console: TestClient) -> None:
    for path in ("/console", "/console/calls", "/console/deadletters", "/console/health"):
        response = console.get(path, headers=BEARER)
        assert response.status_code == 200, path
        assert response.headers["content-type"] == "text/html; charset=utf-8"


def test_login_sets_a_strict_http_only_session_cookie(console: TestClient) -> None:
    wrong = console.post("/console/login", data={"token": "guess"})
    assert wrong.status_code == 401
    assert "That is not the console token." in wrong.text
    assert "set-cookie" not in wrong.headers
    response = console.post("/console/login", data={"token": TOKEN, "next": "/console/calls"})
    assert (response.status_code, response.headers["location"]) == (303, "/console/calls")
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/console", f"max-age={SESSION_SECONDS}"} <= attributes
    assert console.get("/console/calls").status_code == 200


@pytest.mark.parametrize("target", ["https://elsewhere.example/", "//elsewhere.example/x", "/calls/x", "/console\\@x"])
def test_login_only_redirects_within_the_console(console: TestClient, target: str) -> None:
    response = console.post("/console/login", data={"token": TOKEN, "next": target})
    assert response.headers["location"] == "/console"


def test_the_url_serve_prints_logs_in(console: TestClient) -> None:
    response = console.get(f"/console/login?token={TOKEN}")
    assert (response.status_code, response.headers["location"]) == (303, "/console")
    assert response.headers["referrer-policy"] == "no-referrer"
    assert console.get("/console").status_code == 200


def test_tampered_and_expired_sessions_are_refused(console: TestClient) -> None:
    access = Access(Secret(TOKEN))
    good = access.new_session()
    issued, random_part, signature = good.split(".")
    assert access.session_of(good) == random_part
    assert access.session_of(f"{int(issued) + 1}.{random_part}.{signature}") is None
    assert Access(Secret("another token")).session_of(good) is None
    old = access.new_session(now=1_000_000.0)
    assert access.session_of(old, now=1_000_000.0 + SESSION_SECONDS - 1) is not None
    assert access.session_of(old, now=1_000_000.0 + SESSION_SECONDS + 1) is None
    console.cookies.set(COOKIE, old, path="/console")
    assert console.get("/console/health").status_code == 303


def test_logout_ends_the_session_in_the_browser(console: TestClient) -> None:
    csrf = log_in(console)
    assert console.post("/console/logout", data={}).status_code == 403  # no CSRF token: refused
    response = console.post("/console/logout", data={"csrf": csrf})
    assert (response.status_code, response.headers["location"]) == (303, "/console/login?out=1")
    assert f'{COOKIE}=""' in response.headers["set-cookie"]
    assert console.get("/console/health").status_code == 303


def test_the_token_serve_makes_opens_the_console(
    make_client: Callable[..., TestClient], make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No operator token: serve on loopback makes one per start and hands it to the app in the environment."""
    environ: dict[str, str] = {ONE_TIME_TOKEN_ENV: "left over from elsewhere"}
    line = announce(make_settings(), "127.0.0.1", 8123, environ)
    made = environ[ONE_TIME_TOKEN_ENV]
    assert line == f"callstream: console at http://127.0.0.1:8123/console/login?token={made}"
    assert len(made) >= 32 and made != "left over from elsewhere"
    monkeypatch.setenv(ONE_TIME_TOKEN_ENV, made)
    client = make_client(make_settings(), follow_redirects=False)
    assert client.get(f"/console/login?token={made}").status_code == 303
    assert client.get("/console/health").status_code == 200
    assert client.get("/calls/vobiz/x", headers={"Authorization": f"Bearer {made}"}).status_code == 403


def test_serve_makes_no_token_beyond_loopback_or_with_an_operator_token(make_settings: MakeSettings) -> None:
    environ = {ONE_TIME_TOKEN_ENV: "stale"}
    line = announce(make_settings(), "0.0.0.0", 8000, environ)  # noqa: S104 - the address being refused
    assert line == "callstream: console off on 0.0.0.0 without an operator token: set [operator] token to use it"
    assert ONE_TIME_TOKEN_ENV not in environ
    line = announce(make_settings(operator_token=Secret(TOKEN)), "::1", 9000, environ)
    assert line == "callstream: console at http://[::1]:9000/console (log in with the operator token)"
    assert ONE_TIME_TOKEN_ENV not in environ


def test_every_page_forbids_inline_script_and_framing(console: TestClient) -> None:
    response = console.get("/console/health", headers=BEARER)
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    assert response.headers["cache-control"] == "no-store"
    assert "<script>" not in response.text


# -- what the pages show ------------------------------------------------------------------------------


def test_call_timeline_shows_every_transition_and_the_path(console: TestClient) -> None:
    replay_answered(console)
    page = console.get(f"/console/calls/vobiz/{CALL}", headers=BEARER).text
    assert page.count('<g class="taken"') == 3
    assert '<desc id="lifecycle-desc">Path: new → ringing → answered → completed</desc>' in page
    assert re.search(r'<g class="state terminal visited current" data-state="completed">', page)
    assert page.count("<h3>") == 3
    assert "&#34;HangupCause&#34;: &#34;NORMAL_CLEARING&#34;" in page  # the raw Vobiz payload, escaped
    missing = console.get("/console/calls/vobiz/no-such-call", headers=BEARER)
    assert missing.status_code == 404
    assert "No call <code>no-such-call</code> is known" in missing.text


def test_calls_search_and_lists(console: TestClient, r: redis.Redis, keys: Keys) -> None:
    replay_answered(console)
    console.post("/webhooks/vobiz", content="CallUUID=open-1&Event=Ring&CallStatus=ringing", headers=FORM)
    found = console.get(f"/console/calls?call_id={CALL}", headers=BEARER).text
    assert f'<a href="/console/calls/vobiz/{CALL}">vobiz / {CALL}</a>' in found
    recent = console.get("/console/calls", headers=BEARER).text
    assert recent.index("open-1") < recent.index(CALL)  # newest change first
    active = console.get("/console/calls?list=active", headers=BEARER).text
    assert "open-1" in active and CALL not in active  # completed calls are not in progress
    stale = console.get("/console/calls?list=stale", headers=BEARER).text
    assert "open-1" not in stale  # two hours have not passed
    r.hset(keys.call("vobiz", "open-1"), "updated_at", 1)
    assert "open-1" in console.get("/console/calls?list=stale", headers=BEARER).text


def test_live_page_counts_outcomes_over_the_window_and_filters(console: TestClient) -> None:
    replay_answered(console)
    page = console.get("/console?minutes=5", headers=BEARER).text
    assert re.search(r'data-count="transitions">3<', page)
    assert re.search(r'data-count="completed">1<', page)
    assert page.count(f">{CALL}</a>") == 3
    filtered = console.get("/console?state=answered", headers=BEARER).text
    assert filtered.count(f">{CALL}</a>") == 1
    assert re.search(r'data-count="transitions">1<', filtered)
    assert "/console/live/events?state=answered&amp;after=" in filtered


def test_provider_markup_is_escaped_everywhere(console: TestClient) -> None:
    evil = "<svg/onload=alert(1)>"
    body = "CallUUID=%3Csvg%2Fonload%3Dalert%281%29%3E&Event=Ring&CallStatus=ringing&Note=%3Cscript%3Ex%3C%2Fscript%3E"
    assert console.post("/webhooks/vobiz", content=body, headers=FORM).status_code == 200
    assert (
        console.post("/webhooks/vobiz", content=body.replace("Ring", "Bogus%3Cb%3E"), headers=FORM).status_code == 202
    )
    pages = [
        console.get("/console", headers=BEARER).text,
        console.get("/console/calls", headers=BEARER).text,
        console.get("/console/calls/vobiz/%3Csvg%2Fonload%3Dalert%281%29%3E", headers=BEARER).text,
        console.get("/console/calls?call_id=%3Csvg%2Fonload%3Dalert%281%29%3E", headers=BEARER).text,
        console.get("/console/deadletters", headers=BEARER).text,
    ]
    for page in pages:
        assert evil not in page and "<script>x" not in page and "Bogus<b>" not in page
    assert "&lt;svg/onload=alert(1)&gt;" in pages[2]
    assert "&lt;script&gt;x&lt;/script&gt;" in pages[2]
    assert "unknown Vobiz event &#39;Bogus&lt;b&gt;&#39;" in pages[4]


def test_dead_letter_detail_masks_credentials(console: TestClient, r: redis.Redis, keys: Keys) -> None:
    headers = {**FORM, "Authorization": "Bearer provider-credential", "X-Api-Key": "k-123", "X-Trace": "t-1"}
    assert console.post("/webhooks/vobiz", content=TRANSFER, headers=headers).status_code == 202
    [(entry_id, _fields)] = r.xrange(keys.deadletter())
    page = console.get(f"/console/deadletters/{entry_id.decode()}", headers=BEARER).text
    assert "provider-credential" not in page and "k-123" not in page
    # The source does not verify signatures: no header was signed, and the page says so.
    assert '<th scope="row">authorization <small>(not signed)</small></th><td>***</td>' in page
    assert '<th scope="row">x-trace <small>(not signed)</small></th><td>t-1</td>' in page
    assert console.get("/console/deadletters/not-an-id", headers=BEARER).status_code == 404


def test_redrive_needs_the_csrf_token_with_a_session(
    console: TestClient, r: redis.Redis, keys: Keys, make_client: Callable[..., TestClient], make_settings: MakeSettings
) -> None:
    """Kept while `pbx` was MiniVoice; with pbx now Vobiz it is redriven, but only by a genuine form."""
    wrong = make_settings(sources={"pbx": Source(name="pbx", provider="minivoice", verify=False)})
    ring = "CallUUID=pbx-1&Event=Ring&CallStatus=ringing"
    assert make_client(wrong).post("/webhooks/pbx", content=ring, headers=FORM).status_code == 415
    fixed = make_settings(
        sources={"pbx": Source(name="pbx", provider="vobiz", verify=False)}, operator_token=Secret(TOKEN)
    )
    client = make_client(fixed, follow_redirects=False)
    [(raw_id, _fields)] = r.xrange(keys.deadletter())
    entry_id = raw_id.decode()
    csrf = log_in(client)
    for forged in ({"id": entry_id}, {"id": entry_id, "csrf": "forged"}):
        response = client.post("/console/deadletters/redrive", data=forged)
        assert response.status_code == 403
        assert "CSRF token is missing or wrong" in response.text
    assert r.xlen(keys.deadletter()) == 1
    response = client.post("/console/deadletters/redrive", data={"id": entry_id, "csrf": csrf})
    assert response.status_code == 200
    assert "1 redriven, 0 failed, 0 kept, 0 missing" in response.text
    assert r.xlen(keys.deadletter()) == 0
    assert r.hget(keys.call("pbx", "pbx-1"), "state") == b"ringing"
    missing = client.post("/console/deadletters/redrive", data={"id": entry_id, "csrf": csrf})
    assert "0 redriven, 0 failed, 0 kept, 1 missing" in missing.text


def test_health_page_when_redis_is_down(make_client: Callable[..., TestClient], make_settings: MakeSettings) -> None:
    settings = make_settings(operator_token=Secret(TOKEN), redis_url="redis://127.0.0.1:1/0")
    response = make_client(settings).get("/console/health", headers=BEARER)
    assert response.status_code == 503
    assert "Unreachable at <code>redis://127.0.0.1:1/0</code>" in response.text
    assert make_client(settings).get("/console/calls", headers=BEARER).status_code == 503
