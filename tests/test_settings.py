"""Configuration: what a TOML file turns into, and the mistakes it refuses with a message naming the key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from receiver.providers import PROVIDERS
from receiver.settings import ConfigError, Secret, Settings
from receiver.sweeper import source_policy

PROVIDER_NAMES = list(PROVIDERS)

CONFIG = """
[server]
max_body_bytes = 1024

[streams]
prefix = "acme"
maxlen = 5000

[retention]
terminal_call_seconds = 3600

[sources.vobiz-prod]
provider = "vobiz"
secrets = ["env:VOBIZ_TOKEN", "previous-token"]
public_url = "https://hooks.example.com/webhooks/vobiz-prod"

[sources.minivoice-dev]
provider = "minivoice"
verify = false
"""


def test_toml_file_becomes_sources_and_limits() -> None:
    """Sources, secrets from the environment, stream and retention settings are all read."""
    settings = Settings.from_toml(CONFIG, {"VOBIZ_TOKEN": "t0ken"}, PROVIDER_NAMES)
    vobiz = settings.sources["vobiz-prod"]
    assert vobiz.provider == "vobiz"
    assert [secret.reveal() for secret in vobiz.secrets] == ["t0ken", "previous-token"]
    assert vobiz.verify is True
    assert vobiz.public_url == "https://hooks.example.com/webhooks/vobiz-prod"
    assert settings.sources["minivoice-dev"].verify is False
    assert settings.max_body_bytes == 1024
    assert settings.keys.transitions() == "acme:{0}:transitions"
    assert settings.retention.stream_maxlen == 5000
    assert settings.retention.terminal_call_ms == 3_600_000


def test_redis_url_from_environment_wins() -> None:
    settings = Settings.from_toml(CONFIG, {"VOBIZ_TOKEN": "x", "REDIS_URL": "redis://r:6379/2"}, PROVIDER_NAMES)
    assert settings.redis_url == "redis://r:6379/2"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[sources.a]\nprovider = 'nosuch'\nverify = false\n", "sources.a.provider 'nosuch' is not one of"),
        ("[sources.a]\nprovider = 'vobiz'\n", "sources.a verifies signatures (the default) but has no secrets"),
        ("[sources.a]\nprovider = 'vobiz'\nsecrets = ['env:MISSING']\n", "names environment variable MISSING"),
        ("[sources.a]\nprovider = 'vobiz'\nverify = 'no'\n", "sources.a.verify must be true or false"),
        (
            "[server]\nallow_unverified_public = 'false'\n[sources.a]\nverify = false\nprovider='vobiz'\n",
            "server.allow_unverified_public must be true or false",
        ),
        ("[server]\nmax_body_bytes = -1\n[sources.a]\nverify = false\nprovider='vobiz'\n", "max_body_bytes"),
        ("[sources]\n", "[sources] is empty"),
        ("not toml [", "not valid TOML"),
    ],
)
def test_mistakes_are_refused_naming_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        Settings.from_toml(text, {}, PROVIDER_NAMES)


def test_without_a_file_every_provider_is_mounted_unverified() -> None:
    settings = Settings.load(None, {}, PROVIDER_NAMES)
    assert sorted(settings.sources) == sorted(PROVIDER_NAMES)
    assert all(not source.verify for source in settings.sources.values())


def test_unverified_sources_are_refused_beyond_loopback() -> None:
    """Listening on a public address with unsigned sources needs an explicit opt-in."""
    settings = Settings.load(None, {}, PROVIDER_NAMES)
    settings.check_bind("127.0.0.1")
    with pytest.raises(ConfigError, match="refusing to listen on 0.0.0.0 with unverified sources"):
        settings.check_bind("0.0.0.0")  # noqa: S104


def test_secrets_never_show_in_reprs() -> None:
    settings = Settings.from_toml(CONFIG, {"VOBIZ_TOKEN": "t0ken-value"}, PROVIDER_NAMES)
    assert "t0ken-value" not in repr(settings)
    assert "previous-token" not in repr(settings)
    assert repr(Secret("abc")) == "Secret('**********')"


def test_sweeper_options_are_accepted_on_every_provider() -> None:
    """Staleness limits belong to every source, including generic ones that check their own options."""
    text = "[sources.gb]\nprovider = 'goodbox'\nverify = false\nstale_after_seconds = 600\n"
    settings = Settings.from_toml(text, {}, PROVIDER_NAMES)
    assert settings.sources["gb"].options["stale_after_seconds"] == 600


def test_replica_confirmation_is_read_and_must_end_before_the_read_timeout() -> None:
    """wait_replicas makes each step wait for replicas; its timeout must end before the client's read timeout."""
    base = "[sources.a]\nprovider = 'vobiz'\nverify = false\n"
    settings = Settings.from_toml("[redis]\nwait_replicas = 1\nwait_timeout_ms = 500\n" + base, {}, PROVIDER_NAMES)
    assert (settings.redis_wait_replicas, settings.redis_wait_timeout_ms) == (1, 500)
    with pytest.raises(ConfigError, match=r"redis.wait_timeout_ms \(2500\) must be below"):
        Settings.from_toml("[redis]\nwait_replicas = 1\nwait_timeout_ms = 2500\n" + base, {}, PROVIDER_NAMES)
    quick = Settings.from_toml("[server]\nredis_timeout_seconds = 0.5\n" + base, {}, PROVIDER_NAMES)
    assert quick.redis_wait_replicas == 0  # the WAIT timeout matters only when waiting
    with pytest.raises(ConfigError, match="redis.wait_replicas must be an integer >= 0"):
        Settings.from_toml("[redis]\nwait_replicas = -1\n" + base, {}, PROVIDER_NAMES)


SOURCE = "[sources.vobiz-prod]\nprovider = 'vobiz'\nverify = false\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[streams]\nmax_len = 1000\n" + SOURCE, "unknown key streams.max_len; did you mean `maxlen`?"),
        ("[retension]\nnonce_seconds = 60\n" + SOURCE, "unknown section [retension]; did you mean `retention`?"),
        ("[server]\nprot = 8001\n" + SOURCE, "unknown key server.prot; did you mean `port`?"),
        (
            "[sources.vobiz-prod]\nprovider = 'vobiz'\nsecret = 'x'\n",
            "sources.vobiz-prod.secret is not an option of a vobiz source; did you mean `secrets`?",
        ),
        (
            "[sources.ib]\nprovider = 'intandem'\nverify = false\npublic-url = 'https://h/x'\n",
            "sources.ib.public-url is not an option of an intandem source; did you mean `public_url`?",
        ),
        (
            "[sources.gb]\nprovider = 'goodbox'\nverify = false\nstale_after = 60\n",
            "sources.gb.stale_after is not an option of a goodbox source; did you mean `stale_after_seconds`?",
        ),
        ("[operator]\nbearer = 'x'\n" + SOURCE, "unknown key operator.bearer; valid: token"),
        ("[sources.a]\nprovider = 'vobis'\nverify = false\n", "sources.a.provider 'vobis' is not one of: callingbox,"),
        ("[sources.a]\nprovider = 'vobis'\nverify = false\n", "; did you mean 'vobiz'?"),
        (
            "[sources.vobiz-prod]\nverify = false\n",
            "sources.vobiz-prod has no provider and its name 'vobiz-prod' is not one of: callingbox,",
        ),
    ],
)
def test_unknown_sections_keys_and_providers_name_the_closest_valid_one(text: str, message: str) -> None:
    """A misspelt key is refused (never ignored) with the key as written and what it probably meant."""
    with pytest.raises(ConfigError) as caught:
        Settings.from_toml(text, {}, PROVIDER_NAMES)
    assert message in str(caught.value)


def test_keys_the_sinks_and_the_sweeper_read_are_accepted() -> None:
    """[sinks.*] tables belong to the sinks; a sweeper reconcile table with its own keys is fine."""
    text = (
        "[sinks.intandem]\nbase_url = 'https://api.example.com'\n"
        "[sweeper]\ninterval_seconds = 60\n"
        "[sources.cb]\nprovider = 'callingbox'\nverify = false\nstale_after_seconds = 600\n"
        "[sources.cb.reconcile]\napi_key = 'k'\ntimeout_seconds = 5\n"
    )
    settings = Settings.from_toml(text, {}, PROVIDER_NAMES)
    assert settings.sweeper_interval_s == 60


def test_a_misspelt_reconcile_key_is_refused_when_the_sweeper_reads_it() -> None:
    text = SOURCE + "[sources.vobiz-prod.reconcile]\nauth_id = 'a'\nauth_token = 'b'\nbase-url = 'https://x'\n"
    source = Settings.from_toml(text, {}, PROVIDER_NAMES).sources["vobiz-prod"]
    with pytest.raises(ConfigError) as caught:
        source_policy(source, {})
    assert str(caught.value) == "unknown key sources.vobiz-prod.reconcile.base-url; did you mean `base_url`?"


def test_a_mistake_in_a_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "callstream.toml"
    path.write_text("[streams]\nmax_len = 1000\n" + SOURCE)
    with pytest.raises(ConfigError) as caught:
        Settings.load(str(path), {}, PROVIDER_NAMES)
    assert str(caught.value) == f"{path}: unknown key streams.max_len; did you mean `maxlen`?"


class AnyEnvironment(dict[str, str]):
    """Every environment variable a documented configuration names is set."""

    def __contains__(self, name: object) -> bool:
        return True

    def __getitem__(self, name: str) -> str:
        return "value-from-the-environment"


def documented_configurations() -> list[tuple[str, str]]:
    root = Path(__file__).resolve().parent.parent
    pages = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    return [
        (f"{page.name}#{number}", block)
        for page in pages
        for number, block in enumerate(re.findall(r"```toml\n(.*?)```", page.read_text(encoding="utf-8"), re.S))
    ]


@pytest.mark.parametrize(("where", "text"), documented_configurations())
def test_every_configuration_in_the_docs_loads(where: str, text: str) -> None:
    """The strict key checks accept what README.md and docs/ tell users to write (a sink-only example gets a
    source added, as a real file would have)."""
    if "[sources." not in text:
        text += "\n" + SOURCE
    settings = Settings.from_toml(text, AnyEnvironment(), PROVIDER_NAMES)
    for source in settings.sources.values():
        source_policy(source, AnyEnvironment())
