"""Get-call clients against a local stand-in serving each provider's documented shapes and auth."""

from __future__ import annotations

from typing import Any

import pytest

from receiver.embedded import free_port
from receiver.reconcile import (
    CLIENTS,
    ApiConfig,
    CallNotFound,
    ProviderUnavailable,
    ReconcileError,
    UnusableAnswer,
    ask,
)
from receiver.settings import ConfigError, Secret, Source
from statemachine.states import Trigger
from tests.support.provider_api import ProviderApi

CB_CALL = "3c90c3cc-0d44-4b50-8888-8dd25736052a"
TWILIO_CALL = "CA" + "a" * 32
VOBIZ_CALL = "5f0b8e2a-2f7e-4c8e-9d64-1b2a3c4d5e6f"


def config(api: ProviderApi, provider: str, **overrides: str) -> ApiConfig:
    creds = api.credentials
    secrets = {
        "callingbox": {"api_key": creds.callingbox_api_key},
        "twilio": {"account_sid": creds.twilio_account_sid, "auth_token": creds.twilio_auth_token},
        "vobiz": {"auth_id": creds.vobiz_auth_id, "auth_token": creds.vobiz_auth_token},
        "goodbox": {"api_key": creds.goodbox_api_key, "api_secret": creds.goodbox_api_secret},
    }[provider]
    secrets.update(overrides)
    base = api.url + ("/ca/api/v1" if provider == "goodbox" else "")
    return ApiConfig(base_url=base, credentials={k: Secret(v) for k, v in secrets.items()}, timeout_s=2.0)


def callingbox_call(status: str, **fields: Any) -> dict[str, Any]:
    """The documented ``GET /v1/calls/{id}`` object (the seed page), with the fields a test cares about."""
    return {
        "id": CB_CALL,
        "to_number": "+14155550100",
        "from_number": "+14155550199",
        "status": status,
        "direction": "outbound",
        "created_at": "2023-11-07T05:31:56Z",
        "started_at": None,
        "answered_at": None,
        "ended_at": None,
        "duration_seconds": None,
        "billed_duration_seconds": None,
        "billing_amount_milli_cents": None,
        "error_code": None,
        "hangup_cause": None,
        "metadata": {},
        "updated_at": "2023-11-07T05:33:00Z",
        **fields,
    }


async def test_callingbox_completed_call_is_completed_with_its_duration(api: ProviderApi) -> None:
    """A completed CallingBox call reads as `completed`, with duration and billing kept as extras."""
    api.callingbox[CB_CALL] = callingbox_call(
        "completed",
        answered_at="2023-11-07T05:32:00Z",
        ended_at="2023-11-07T05:32:42Z",
        duration_seconds=42,
        billing_amount_milli_cents=1500,
    )
    finding = await ask(CLIENTS["callingbox"], config(api, "callingbox"), CB_CALL)
    assert (finding.trigger, finding.status) == (Trigger.COMPLETED, "completed")
    assert finding.extras == {
        "answered_at": "2023-11-07T05:32:00Z",
        "ended_at": "2023-11-07T05:32:42Z",
        "duration_s": 42,
        "billing_amount_milli_cents": 1500,
    }
    [request] = api.received("callingbox.get")
    assert request.headers["authorization"] == "Bearer sk_test_callingbox"


@pytest.mark.parametrize(
    ("status", "trigger"),
    [
        ("queued", Trigger.QUEUED),
        ("initiated", Trigger.DIALING),
        ("ringing", Trigger.RINGING),
        ("in_progress", Trigger.ANSWERED),
        ("no_answer", Trigger.NO_ANSWER),
        ("busy", Trigger.BUSY),
        ("canceled", Trigger.CANCELED),
        ("failed", Trigger.FAILED),
    ],
)
async def test_callingbox_every_documented_status_has_a_meaning(
    api: ProviderApi, status: str, trigger: Trigger
) -> None:
    """Each value of the documented CallingBox status enum maps to its canonical event."""
    api.callingbox[CB_CALL] = callingbox_call(status)
    finding = await ask(CLIENTS["callingbox"], config(api, "callingbox"), CB_CALL)
    assert finding.trigger is trigger


async def test_twilio_call_resource_with_basic_auth(api: ProviderApi) -> None:
    """Twilio's Call resource: ``no-answer`` is `no_answer`; the request carries account SID and token."""
    api.twilio[TWILIO_CALL] = {
        "sid": TWILIO_CALL,
        "account_sid": api.credentials.twilio_account_sid,
        "status": "no-answer",
        "direction": "outbound-api",
        "duration": "0",
        "price": None,
        "price_unit": "USD",
        "answered_by": None,
        "start_time": "Tue, 31 Aug 2010 20:36:29 +0000",
        "end_time": "Tue, 31 Aug 2010 20:36:44 +0000",
    }
    finding = await ask(CLIENTS["twilio"], config(api, "twilio"), TWILIO_CALL)
    assert (finding.trigger, finding.status) == (Trigger.NO_ANSWER, "no_answer")
    assert finding.extras == {
        "duration_s": 0,
        "price_unit": "USD",
        "start_time": "2010-08-31T20:36:29Z",
        "end_time": "2010-08-31T20:36:44Z",
    }


async def test_twilio_completed_call_keeps_price_as_text(api: ProviderApi) -> None:
    """A completed Twilio call: price stays the provider's decimal text, answered_by is canonical."""
    api.twilio[TWILIO_CALL] = {
        "sid": TWILIO_CALL,
        "status": "completed",
        "duration": "15",
        "price": "-0.03000",
        "price_unit": "USD",
        "answered_by": "machine_start",
    }
    finding = await ask(CLIENTS["twilio"], config(api, "twilio"), TWILIO_CALL)
    assert finding.trigger is Trigger.COMPLETED
    assert finding.extras == {"duration_s": 15, "price": "-0.03000", "price_unit": "USD", "answered_by": "machine"}


async def test_vobiz_cdr_of_an_answered_call_is_completed(api: ProviderApi) -> None:
    """A Vobiz CDR with an answer time and billed seconds is a completed call, cost and currency kept."""
    api.vobiz[VOBIZ_CALL] = {
        "call_uuid": VOBIZ_CALL,
        "billsec": 31,
        "duration": 38,
        "total_cost": "0.0450",
        "currency": "INR",
        "answer_time": "2026-05-29T10:00:07Z",
        "end_time": "2026-05-29T10:00:38Z",
        "hangup_cause": "NORMAL_CLEARING",
    }
    finding = await ask(CLIENTS["vobiz"], config(api, "vobiz"), VOBIZ_CALL)
    assert finding.trigger is Trigger.COMPLETED
    assert finding.extras["total_cost"] == "0.0450"
    assert finding.extras["bill_duration_s"] == 31
    [request] = api.received("vobiz.cdr")
    assert (request.headers["x-auth-id"], request.headers["x-auth-token"]) == ("MA_TESTAUTH", "vobiz-token")


async def test_vobiz_cdr_of_a_busy_callee_is_busy(api: ProviderApi) -> None:
    """An unanswered Vobiz CDR ending in USER_BUSY is `busy`, by the webhook adapter's own cause table."""
    api.vobiz[VOBIZ_CALL] = {"billsec": 0, "duration": 9, "answer_time": None, "hangup_cause": "USER_BUSY"}
    finding = await ask(CLIENTS["vobiz"], config(api, "vobiz"), VOBIZ_CALL)
    assert (finding.trigger, finding.status) == (Trigger.BUSY, "user_busy")


async def test_goodbox_call_details_assumed_shape(api: ProviderApi) -> None:
    """Goodbox call-details (assumed ``data`` shape): ``not_answered`` is `no_answer`, sent with both keys."""
    api.goodbox["gb-1"] = {"id": "gb-1", "status": "not_answered", "duration": 0, "chatbot_id": "bot-7"}
    finding = await ask(CLIENTS["goodbox"], config(api, "goodbox"), "gb-1")
    assert (finding.trigger, finding.status) == (Trigger.NO_ANSWER, "not_answered")
    assert finding.extras == {"duration_s": 0, "chatbot_id": "bot-7"}
    [request] = api.received("goodbox.get")
    assert request.query == {"id": ["gb-1"]}
    assert (request.headers["x-api-key"], request.headers["x-api-secret"]) == ("gb-key", "gb-secret")


async def test_unknown_call_is_not_found(api: ProviderApi) -> None:
    """HTTP 404 from the provider is `CallNotFound`."""
    with pytest.raises(CallNotFound):
        await ask(CLIENTS["callingbox"], config(api, "callingbox"), "no-such-call")


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_provider_overload_or_outage_is_unavailable(api: ProviderApi, status: int) -> None:
    """429 and 5xx are `ProviderUnavailable`: worth asking again later."""
    api.callingbox[CB_CALL] = callingbox_call("completed")
    api.script("callingbox.get", status, {"Retry-After": "30"}, {"error": "try later"})
    with pytest.raises(ProviderUnavailable):
        await ask(CLIENTS["callingbox"], config(api, "callingbox"), CB_CALL)


async def test_refused_connection_is_unavailable() -> None:
    """Nothing listening is `ProviderUnavailable`, and the message names the host only."""
    cfg = ApiConfig(base_url=f"http://127.0.0.1:{free_port()}", credentials={"api_key": Secret("k")})
    with pytest.raises(ProviderUnavailable) as raised:
        await ask(CLIENTS["callingbox"], cfg, CB_CALL)
    assert CB_CALL not in raised.value.message


async def test_wrong_credentials_are_an_error_without_the_secret(api: ProviderApi) -> None:
    """A 401 is a plain `ReconcileError`; its message does not echo the key that was sent."""
    api.callingbox[CB_CALL] = callingbox_call("completed")
    with pytest.raises(ReconcileError) as raised:
        await ask(CLIENTS["callingbox"], config(api, "callingbox", api_key="sk_wrong_key"), CB_CALL)
    assert raised.value.reason == "error"
    assert "HTTP 401" in raised.value.message and "sk_wrong_key" not in raised.value.message


async def test_status_without_a_mapping_is_unusable(api: ProviderApi) -> None:
    """A status the provider never documented is `UnusableAnswer`, not a guess."""
    api.callingbox[CB_CALL] = callingbox_call("teleported")
    with pytest.raises(UnusableAnswer):
        await ask(CLIENTS["callingbox"], config(api, "callingbox"), CB_CALL)


async def test_body_that_is_not_json_is_unusable(api: ProviderApi) -> None:
    """A 200 whose body is not JSON is `UnusableAnswer`."""
    api.script("callingbox.get", 200, {}, None)
    with pytest.raises(UnusableAnswer):
        await ask(CLIENTS["callingbox"], config(api, "callingbox"), CB_CALL)


def test_configuration_reads_env_secrets_and_hides_them() -> None:
    """``env:NAME`` credentials are read from the environment; the config's repr never shows them."""
    source = Source(
        name="cb",
        provider="callingbox",
        verify=False,
        options={"reconcile": {"api_key": "env:CB_KEY", "timeout_seconds": 3}},
    )
    cfg = CLIENTS["callingbox"].configure(source, {"CB_KEY": "sk_live_secret"})
    assert cfg is not None
    assert (cfg.base_url, cfg.timeout_s, cfg.secret("api_key")) == ("https://api.callingbox.io", 3.0, "sk_live_secret")
    assert "sk_live_secret" not in repr(cfg)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({}, "sources.cb.reconcile.api_key must be a non-empty string"),
        ({"api_key": "env:MISSING"}, "sources.cb.reconcile.api_key names environment variable MISSING"),
        ({"api_key": "k", "base_url": "ftp://x"}, "sources.cb.reconcile.base_url must be an http(s) URL"),
        ({"api_key": "k", "timeout_seconds": 0}, "sources.cb.reconcile.timeout_seconds must be a positive"),
    ],
)
def test_configuration_errors_name_the_key(table: dict[str, Any], message: str) -> None:
    """A bad ``reconcile`` table is refused at start-up with the key at fault."""
    source = Source(name="cb", provider="callingbox", verify=False, options={"reconcile": table})
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(").replace(")", r"\)")):
        CLIENTS["callingbox"].configure(source, {})
