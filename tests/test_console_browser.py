"""The operator console in a real browser: Debian's headless Chromium, driven by Playwright, against a real
uvicorn receiver and a real Redis.

One browser and one receiver serve the whole module. Set ``CONSOLE_SCREENSHOTS=docs/console`` to save a
screenshot of each page there (how the pictures in docs/console.md are made); by default they go to the
test's temporary directory.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis
from starlette.testclient import TestClient

from receiver.cli import main
from receiver.console.access import ONE_TIME_TOKEN_ENV
from receiver.embedded import free_port
from receiver.settings import Source
from statemachine.keys import Keys
from tests.conftest import FIXTURES, MakeSettings, delete_prefix, new_prefix
from tests.support.processes import Receiver, receiver_config
from tests.support.serve import ServeProcess, clean_environment

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is a dev dependency")

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "console-test-token-7f3a"
CALL = "8a9c1b52-3d4c-11ef-bef9-0242ac110005"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
RING = "CallUUID=pbx-call-1&Event=Ring&CallStatus=ringing&Direction=outbound&From=14155551234&To=919876543210"
TRANSFER = "CallUUID=pbx-call-2&Event=Transfer&CallStatus=in-progress"
XSS_ID = "<svg/onload=alert(1)>"  # no whitespace: a call id may not hold any
XSS_BODY_MARK = "<script>alert('body')</script>"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium package is installed by .ci/run"),
]


@pytest.fixture(scope="module")
def module_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix for the module's receiver, deleted afterwards."""
    name = new_prefix()
    yield name
    delete_prefix(redis_url, name)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, redis_url: str, module_prefix: str) -> Iterator[Receiver]:
    """A uvicorn receiver with an operator token; ``pbx`` is a Vobiz source (it was MiniVoice: see `misrouted`)."""
    extra = f'[operator]\ntoken = "{TOKEN}"\n\n[sources.pbx]\nprovider = "vobiz"\nverify = false\n'
    with Receiver(tmp_path_factory.mktemp("console"), redis_url, module_prefix, workers=1, extra_config=extra) as rx:
        yield rx.start()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, server: Receiver) -> Iterator[Any]:
    """A fresh browser context (no cookies) with one page; fails the test if the page ever opens a dialog."""
    context = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 860})
    context.set_default_timeout(10_000)
    tab = context.new_page()
    dialogs: list[str] = []
    tab.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    yield tab
    context.close()
    assert dialogs == [], f"a page opened a dialog: {dialogs}"


@pytest.fixture
def shoot(tmp_path: Path) -> Callable[[Any, str], None]:
    """Save a full-page screenshot named ``<name>.png`` (to $CONSOLE_SCREENSHOTS when set)."""
    target = Path(os.environ.get("CONSOLE_SCREENSHOTS") or tmp_path)
    target.mkdir(parents=True, exist_ok=True)

    def take(tab: Any, name: str) -> None:
        tab.screenshot(path=str(target / f"{name}.png"), full_page=True)

    return take


def log_in(tab: Any) -> None:
    tab.goto("/console")
    tab.get_by_label("Console token").fill(TOKEN)
    tab.get_by_role("button", name="Log in").click()
    tab.wait_for_url(re.compile(r"/console$"))


@pytest.fixture
def misrouted(make_client: Callable[..., TestClient], make_settings: MakeSettings, module_prefix: str) -> None:
    """Two dead letters under the server's prefix, kept by the real app while ``pbx`` was still configured as
    MiniVoice: a Vobiz Ring (redriven fine now that pbx is Vobiz) and an unknown Vobiz event (fails again)."""
    settings = make_settings(
        sources={
            "pbx": Source(name="pbx", provider="minivoice", verify=False),
            "vobiz": Source(name="vobiz", provider="vobiz", verify=False),
        },
        key_prefix=module_prefix,
    )
    client = make_client(settings)
    headers = {**FORM, "Authorization": "Bearer provider-credential-123", "X-Trace": "trace-1"}
    assert client.post("/webhooks/pbx", content=RING, headers=headers).status_code == 415
    assert client.post("/webhooks/vobiz", content=TRANSFER, headers=FORM).status_code == 202


def test_log_in_watch_a_replayed_call_arrive_open_its_timeline_and_log_out(
    page: Any, server: Receiver, shoot: Callable[[Any, str], None], capsys: pytest.CaptureFixture[str]
) -> None:
    tab = page
    tab.goto("/console")
    assert "/console/login" in tab.url
    tab.get_by_label("Console token").fill("not-the-token")
    tab.get_by_role("button", name="Log in").click()
    assert tab.get_by_role("alert").inner_text() == "That is not the console token."
    shoot(tab, "login")
    tab.get_by_label("Console token").fill(TOKEN)
    tab.get_by_role("button", name="Log in").click()
    tab.wait_for_url(re.compile(r"/console$"))
    status = tab.locator("#live-status")
    playwright_api.expect(status).to_have_text("Live: new transitions appear at the top.")
    assert tab.locator(f'#live-rows tr:has-text("{CALL}")').count() == 0

    assert main(["replay", str(FIXTURES / "vobiz" / "answered.json"), "--url", server.url]) == 0
    capsys.readouterr()
    rows = tab.locator(f'#live-rows tr:has-text("{CALL}")')
    playwright_api.expect(rows).to_have_count(3)
    changes = [rows.nth(index).locator("td").nth(5).inner_text() for index in range(3)]
    assert changes == ["answered → completed", "ringing → answered", "new → ringing"]
    playwright_api.expect(tab.locator('[data-count="completed"]')).to_have_text("1")
    shoot(tab, "live")

    rows.first.get_by_role("link", name=CALL).click()
    tab.wait_for_url(re.compile(rf"/console/calls/vobiz/{CALL}$"))
    assert tab.locator("#call-state").inner_text() == "completed"
    steps = tab.locator("svg.lifecycle g.taken")
    playwright_api.expect(steps).to_have_count(3)
    assert tab.locator("svg.lifecycle desc").text_content() == "Path: new → ringing → answered → completed"
    assert tab.locator("svg.lifecycle g.current").get_attribute("data-state") == "completed"
    entries = tab.locator("ol.timeline > li")
    playwright_api.expect(entries).to_have_count(3)
    assert "new → ringing" in entries.nth(0).locator("h3").inner_text()
    payload = entries.nth(2).locator("details").filter(has_text="Provider payload")
    payload.locator("summary").click()
    raw = orjson.loads(payload.locator("pre").inner_text())
    assert raw["Event"] == "Hangup" and raw["CallUUID"] == CALL
    shoot(tab, "call")

    tab.get_by_role("link", name="Calls", exact=True).click()
    playwright_api.expect(tab.get_by_role("link", name=CALL)).to_be_visible()
    shoot(tab, "calls")

    tab.get_by_role("button", name="Log out").click()
    tab.wait_for_url(re.compile(r"/console/login\?out=1$"))
    assert tab.get_by_role("status").inner_text() == "You are logged out."
    tab.goto("/console/calls")
    assert "/console/login" in tab.url


def test_redrive_a_dead_letter_and_see_the_result(
    page: Any, misrouted: None, redis_url: str, module_prefix: str, shoot: Callable[[Any, str], None]
) -> None:
    r = redis.Redis.from_url(redis_url)
    keys = Keys(module_prefix)
    fixable, hopeless = (entry_id.decode() for entry_id, _ in r.xrange(keys.deadletter()))
    log_in(page)
    page.get_by_role("link", name="Dead letters", exact=True).click()
    page.get_by_role("link", name=fixable).click()
    headers = page.locator("table.headers")
    assert headers.locator("tr", has_text="authorization").locator("td").inner_text() == "***"
    assert headers.locator("tr", has_text="x-trace").locator("td").inner_text() == "trace-1"
    assert "provider-credential-123" not in page.content()
    assert page.locator("pre.raw").inner_text() == RING
    shoot(page, "deadletter")

    page.get_by_role("button", name="Redrive this request").click()
    playwright_api.expect(page.locator("#redrive-summary")).to_have_text("1 redriven, 0 failed, 0 kept, 0 missing")
    report = page.locator("li.report-redriven")
    assert "pbx-call-1 ringing: applied new → ringing" in " ".join(report.inner_text().split())
    assert r.hget(keys.call("pbx", "pbx-call-1"), "state") == b"ringing"
    assert [entry_id.decode() for entry_id, _ in r.xrange(keys.deadletter())] == [hopeless]

    page.get_by_role("link", name="Back to dead letters").click()
    shoot(page, "deadletters")
    page.get_by_role("button", name="Redrive all 1").click()
    playwright_api.expect(page.locator("#redrive-summary")).to_have_text("0 redriven, 1 failed, 0 kept, 0 missing")
    failed = page.locator("li.report-failed").inner_text()
    assert "still failing (unknown_event: unknown Vobiz event 'Transfer')" in failed
    shoot(page, "redrive")
    r.close()


def test_provider_supplied_markup_is_shown_as_text(page: Any, server: Receiver) -> None:
    """A call id and a body carrying HTML are displayed literally on every page; nothing runs (no dialog)."""
    fields = [("CallUUID", XSS_ID), ("Event", "Ring"), ("CallStatus", "ringing"), ("Note", XSS_BODY_MARK)]
    encoded = str(httpx.QueryParams(fields))
    log_in(page)
    response = httpx.post(f"{server.url}/webhooks/vobiz", content=encoded, headers=FORM, timeout=10)
    assert response.json()["results"][0]["outcome"] == "applied"
    live_row = page.locator("#live-rows tr", has_text=XSS_ID)
    playwright_api.expect(live_row).to_have_count(1)
    page.reload()
    playwright_api.expect(page.locator("#live-rows tr", has_text=XSS_ID)).to_have_count(1)
    page.locator("#live-rows").get_by_role("link", name=XSS_ID).click()
    assert page.locator("h1").inner_text() == f"Call {XSS_ID}"
    page.locator("summary", has_text="Provider payload").first.click()
    raw = orjson.loads(page.locator("pre.raw").first.inner_text())
    assert (raw["CallUUID"], raw["Note"]) == (XSS_ID, XSS_BODY_MARK)
    assert page.locator("svg[onload]").count() == 0
    assert page.locator("main script").count() == 0
    page.goto("/console/calls?" + str(httpx.QueryParams({"call_id": XSS_ID})))
    playwright_api.expect(page.get_by_role("link", name=f"vobiz / {XSS_ID}")).to_be_visible()
    assert page.locator("svg[onload]").count() == 0


def test_health_page_shows_streams_groups_and_the_sweeper(
    page: Any, server: Receiver, redis_url: str, module_prefix: str, shoot: Callable[[Any, str], None]
) -> None:
    r = redis.Redis.from_url(redis_url)
    stream = Keys(module_prefix).transitions()
    r.xadd(stream, {"kind": "annotation", "source": "vobiz", "call_id": "probe-1"})
    r.xgroup_create(stream, "billing", id="0")
    r.xreadgroup("billing", "billing-a", {stream: ">"}, count=1)
    length = r.xlen(stream)
    r.close()
    log_in(page)
    page.get_by_role("link", name="Health", exact=True).click()
    assert page.get_by_role("status").inner_text().startswith("Reachable at redis://")
    row = page.locator("tr", has=page.get_by_role("rowheader", name="billing"))
    cells = row.locator("td")
    assert (cells.nth(1).inner_text(), cells.nth(2).inner_text()) == (str(length - 1), "1")
    assert "billing-a (1," in cells.nth(4).inner_text()
    assert "Not run by this server" in page.locator("#sweeper-title + ul").inner_text()
    shoot(page, "health")


def test_the_console_url_serve_prints_shows_a_replayed_call_arriving(
    browser: Any, tmp_path: Path, redis_url: str, prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The newcomer's path: `callstream serve` with no operator token prints a console URL carrying a token
    made at start; opening it lands on the Live page, where a replayed call's transitions arrive."""
    config = tmp_path / "callstream.toml"
    config.write_text(receiver_config(prefix), encoding="utf-8")
    port = free_port()
    env = clean_environment(REDIS_URL=redis_url)
    env.pop(ONE_TIME_TOKEN_ENV, None)
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    args = ["serve", "--config", str(config), "--port", str(port), "--data-dir", str(tmp_path)]
    with ServeProcess(args, cwd=tmp_path, env=env) as serve:
        url = serve.wait_for(rf"console at (http://127\.0\.0\.1:{port}/console/login\?token=\S+)").group(1)
        serve.wait_for("Uvicorn running")
        tab = context.new_page()
        tab.goto(url)
        assert tab.url == f"http://127.0.0.1:{port}/console"
        playwright_api.expect(tab.locator("#live-status")).to_have_text("Live: new transitions appear at the top.")
        assert main(["replay", str(FIXTURES / "vobiz" / "answered.json"), "--url", f"http://127.0.0.1:{port}"]) == 0
        capsys.readouterr()
        playwright_api.expect(tab.locator(f'#live-rows tr:has-text("{CALL}")')).to_have_count(3)
        context.close()
        assert serve.terminate() == 0
