"""Generic JSON sources: a provider described in configuration instead of code.

A source with ``provider = "generic"`` reads its JSON body through dotted paths and a status table
given in the source's TOML options, and authenticates it with one of the signature families::

    [sources.acme]
    provider = "generic"
    secrets = ["env:ACME_WEBHOOK_SECRET"]
    call_id = "data.call.id"            # required in practice; default "call_id"
    status = "data.status"              # default "status"
    time = "data.created"               # ISO 8601 with a zone, or unix seconds; default "timestamp"
    from = "data.from"                  # optional, like to, direction and dedupe
    dedupe = "event_id"                 # default: "<call id>:<status>"
    signature = "hmac-timestamped"      # or "shared-secret", "jwt-hs256"; or as = "<built-in provider>"
    signature_header = "X-Acme-Signature"
    timestamp_header = "X-Acme-Timestamp"
    signature_format = "v1"             # "v1=<hex>", "t,v1" (t=<unix>,v1=<hex>) or "hex"
    [sources.acme.statuses]             # provider status → canonical trigger
    ringing = "ringing"
    "in-progress" = "answered"
    [sources.acme.extras]               # optional: extra name → path
    duration_s = "data.duration"

Statuses are compared case- and punctuation-insensitively; one missing from the table is an unknown
event (dead-lettered). With no options at all a source accepts callstream's own canonical shape,
``{"call_id", "status": "<canonical trigger>", "timestamp"}``, signed ``X-Callstream-Signature: v1=<hex
HMAC-SHA256(timestamp.body)>`` with ``X-Callstream-Timestamp``. Options are checked when the
configuration is loaded (`check_options`), and every error names the key.
Presets (Goodbox) are a table of default options given to `adapter_for`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from receiver.delivery import JSON, Delivery
from receiver.errors import UnknownEvent
from receiver.providers.base import (
    OutgoingRequest,
    ProviderAdapter,
    dig,
    iso_utc,
    make_event,
    normalized_name,
    number_or_none,
    text_or_none,
    unix_utc,
)
from receiver.settings import ConfigError, Source
from receiver.signatures import jwt_hs256, shared_secret, timestamped_hmac
from receiver.signatures.common import Verified, required_header, secrets_of
from statemachine.events import CallEvent
from statemachine.states import Trigger

NAME = "generic"

#: Signature families, by the name ``signature`` takes in the options; ``as`` borrows a built-in's.
SHARED_HEADER = "shared-secret"
HMAC_TIMESTAMPED = "hmac-timestamped"
JWT_HS256 = "jwt-hs256"
BUILTIN = "as"

#: Default header per family, when ``signature_header`` is not set.
DEFAULT_HEADERS: dict[str, str] = {
    SHARED_HEADER: "X-Callstream-Secret",
    HMAC_TIMESTAMPED: "X-Callstream-Signature",
    JWT_HS256: "Authorization",
}
DEFAULT_TIMESTAMP_HEADER = "X-Callstream-Timestamp"
SIGNATURE_FORMATS = timestamped_hmac.FORMATS

#: Option → default dotted path (None: not read unless configured).
PATHS: dict[str, str | None] = {
    "call_id": "call_id",
    "status": "status",
    "time": "timestamp",
    "from": None,
    "to": None,
    "direction": None,
    "dedupe": None,
}
SIGNATURE_OPTIONS = ("signature", BUILTIN, "signature_header", "timestamp_header", "signature_format")
KNOWN_OPTIONS = frozenset({*PATHS, *SIGNATURE_OPTIONS, "statuses", "extras"})

#: Config-driven providers cannot lend their scheme to ``as``.
NOT_BUILTIN = frozenset({NAME, "goodbox"})


@dataclass(frozen=True, slots=True)
class SignatureConfig:
    """How a generic source is authenticated."""

    family: str
    header: str
    timestamp_header: str | None = None
    value_format: str = "v1"
    builtin: str | None = None


@dataclass(frozen=True, slots=True)
class GenericConfig:
    """A generic source's options, checked."""

    paths: Mapping[str, str | None]
    statuses: Mapping[str, Trigger]
    extras: Mapping[str, str]
    signature: SignatureConfig


def _path(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value or any(not part for part in value.split(".")):
        raise ConfigError(f"{key} must be a dotted path such as 'data.call.id', got {value!r}")
    return value


def _name(options: Mapping[str, Any], option: str, where: str, default: str) -> str:
    value = options.get(option, default)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}.{option} must be a non-empty string, got {value!r}")
    return value.strip()


def _table(options: Mapping[str, Any], option: str, where: str) -> Mapping[str, Any]:
    value = options.get(option, {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}.{option} must be a table")
    return value


def _statuses(table: Mapping[str, Any], where: str) -> dict[str, Trigger]:
    allowed = {trigger.value for trigger in Trigger}
    statuses: dict[str, Trigger] = {}
    for status, target in table.items():
        if target not in allowed:
            raise ConfigError(f"{where}.statuses.{status} must be one of: {', '.join(sorted(allowed))}; got {target!r}")
        statuses[normalized_name(str(status))] = Trigger(target)
    if not statuses:
        raise ConfigError(f"{where}.statuses is empty: map at least one provider status")
    return statuses


def _signature(options: Mapping[str, Any], where: str) -> SignatureConfig:
    if BUILTIN in options:
        if "signature" in options:
            raise ConfigError(f"{where}.as and {where}.signature are exclusive: choose one")
        from receiver.providers import PROVIDERS  # the registry is complete once a source is configured

        builtin = options[BUILTIN]
        choices = sorted(set(PROVIDERS) - NOT_BUILTIN)
        if builtin not in choices:
            raise ConfigError(f"{where}.as must be one of: {', '.join(choices)}; got {builtin!r}")
        return SignatureConfig(family=BUILTIN, header="", builtin=builtin)
    family = options.get("signature", HMAC_TIMESTAMPED)
    if family not in DEFAULT_HEADERS:
        raise ConfigError(f"{where}.signature must be one of: {', '.join(DEFAULT_HEADERS)}; got {family!r}")
    value_format = _name(options, "signature_format", where, "v1")
    if value_format not in SIGNATURE_FORMATS:
        raise ConfigError(
            f"{where}.signature_format must be one of: {', '.join(SIGNATURE_FORMATS)}; got {value_format!r}"
        )
    return SignatureConfig(
        family=family,
        header=_name(options, "signature_header", where, DEFAULT_HEADERS[family]),
        timestamp_header=_name(options, "timestamp_header", where, DEFAULT_TIMESTAMP_HEADER),
        value_format=value_format,
    )


def load_config(options: Mapping[str, Any], where: str, preset: Mapping[str, Any] | None = None) -> GenericConfig:
    """Options (over a preset's) checked into a `GenericConfig`; ConfigError naming the key otherwise."""
    unknown = sorted(set(options) - KNOWN_OPTIONS)
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]} is not an option of a generic source")
    preset = preset or {}
    merged = {**preset, **options}
    if BUILTIN in options and "signature" in preset and "signature" not in options:
        del merged["signature"]  # an explicit ``as`` replaces the preset's family
    paths = {
        option: _path(merged[option], f"{where}.{option}") if merged.get(option) is not None else default
        for option, default in PATHS.items()
    }
    status_table = {**_table(preset, "statuses", where), **_table(options, "statuses", where)}
    extras = {
        str(name): _path(path, f"{where}.extras.{name}")
        for name, path in {**_table(preset, "extras", where), **_table(options, "extras", where)}.items()
    }
    return GenericConfig(
        paths=paths,
        statuses=_statuses(status_table or {trigger.value: trigger.value for trigger in Trigger}, where),
        extras=extras,
        signature=_signature(merged, where),
    )


def moment(value: Any) -> str | None:
    """A configured time field: unix seconds (number or numeric text) or ISO 8601 with a zone, as UTC."""
    return unix_utc(value) if number_or_none(value) is not None else iso_utc(value)


def _read(document: Mapping[str, Any], path: str | None) -> Any:
    return dig(document, path) if path else None


def normalize_with(delivery: Delivery, config: GenericConfig) -> list[CallEvent]:
    """One JSON delivery → one canonical event, read through the source's paths and status table."""
    document = delivery.fields((JSON,))
    paths = config.paths
    status = text_or_none(_read(document, paths["status"])) or ""
    key = normalized_name(status)
    if key not in config.statuses:
        raise UnknownEvent(f"unknown status {status or '(none)'!r} for source {delivery.source.name}", event=status)
    trigger = config.statuses[key]
    call_id = _read(document, paths["call_id"])
    dedupe = text_or_none(_read(document, paths["dedupe"])) or f"{call_id}:{key}"
    extras = {name: _read(document, path) for name, path in config.extras.items()}
    if trigger is Trigger.ANNOTATION:
        extras["annotation"] = key
    return [
        make_event(
            delivery,
            call_id=call_id,
            call_id_field=str(paths["call_id"]),
            trigger=trigger,
            provider_event=status,
            provider_status=status,
            dedupe_key=dedupe,
            occurred_at=moment(_read(document, paths["time"])),
            from_number=_read(document, paths["from"]),
            to_number=_read(document, paths["to"]),
            direction=text_or_none(_read(document, paths["direction"])),
            extras=extras,
            raw=document,
        )
    ]


def _verify_shared_secret(delivery: Delivery, now: float, signature: SignatureConfig) -> Verified:
    provided = required_header(delivery.headers, signature.header)
    shared_secret.verify(secrets_of(delivery.source.secrets), provided, signature.header)
    return shared_secret.verified(signature.header)


def _hmac_scheme(signature: SignatureConfig) -> timestamped_hmac.Scheme:
    return timestamped_hmac.Scheme(signature.header, signature.timestamp_header, signature.value_format)


def _verify_hmac(delivery: Delivery, now: float, signature: SignatureConfig) -> Verified:
    return _hmac_scheme(signature).verify(delivery, now)


def _verify_jwt(delivery: Delivery, now: float, signature: SignatureConfig) -> Verified:
    token = shared_secret.bearer_token(required_header(delivery.headers, signature.header), signature.header)
    tolerance_s = delivery.source.timestamp_tolerance_s
    claims = jwt_hs256.verify(
        secrets_of(delivery.source.secrets), token, delivery.body, now, tolerance_s, signature.header
    )
    return jwt_hs256.verified(claims, tolerance_s, signature.header)


def _verify_builtin(delivery: Delivery, now: float, signature: SignatureConfig) -> Verified:
    from receiver.providers import PROVIDERS

    return PROVIDERS[str(signature.builtin)].verify(delivery, now)


VERIFIERS: dict[str, Callable[[Delivery, float, SignatureConfig], Verified]] = {
    SHARED_HEADER: _verify_shared_secret,
    HMAC_TIMESTAMPED: _verify_hmac,
    JWT_HS256: _verify_jwt,
    BUILTIN: _verify_builtin,
}


def _sign_shared(signature: SignatureConfig, request: OutgoingRequest, secret: str, now: float) -> dict[str, str]:
    return {signature.header: secret}


def _sign_hmac(signature: SignatureConfig, request: OutgoingRequest, secret: str, now: float) -> dict[str, str]:
    return _hmac_scheme(signature).sign(request, secret, now)


def _sign_jwt(signature: SignatureConfig, request: OutgoingRequest, secret: str, now: float) -> dict[str, str]:
    claims = {"iat": int(now), "payload_hash": jwt_hs256.payload_hash(request.body)}
    return {signature.header: "Bearer " + jwt_hs256.encode(claims, secret)}


def _sign_builtin(signature: SignatureConfig, request: OutgoingRequest, secret: str, now: float) -> dict[str, str]:
    from receiver.providers import PROVIDERS

    return PROVIDERS[str(signature.builtin)].sign(request, secret, now)


#: Family → the headers a sender configured that way sends (for tests and ``callstream replay``).
SIGNERS: dict[str, Callable[[SignatureConfig, OutgoingRequest, str, float], dict[str, str]]] = {
    SHARED_HEADER: _sign_shared,
    HMAC_TIMESTAMPED: _sign_hmac,
    JWT_HS256: _sign_jwt,
    BUILTIN: _sign_builtin,
}


def config_of(source: Source, preset: Mapping[str, Any] | None) -> GenericConfig:
    """A source's configuration, read from its options at the time of use."""
    return load_config(source.options, f"sources.{source.name}", preset)


def adapter_for(name: str, preset: Mapping[str, Any] | None = None) -> ProviderAdapter:
    """An adapter reading each source's options over ``preset``."""

    def normalize(delivery: Delivery) -> list[CallEvent]:
        return normalize_with(delivery, config_of(delivery.source, preset))

    def verify(delivery: Delivery, now: float) -> Verified:
        signature = config_of(delivery.source, preset).signature
        return VERIFIERS[signature.family](delivery, now, signature)

    def sign(request: OutgoingRequest, secret: str, now: float) -> dict[str, str]:
        signature = load_config({}, name, preset).signature
        return SIGNERS[signature.family](signature, request, secret, now)

    return ProviderAdapter(name=name, verify=verify, normalize=normalize, sign=sign, content_types=(JSON,))


def check_options(options: Mapping[str, Any], where: str) -> None:
    """Refuse a generic source's options at load time; the error names the key."""
    load_config(options, where)


ADAPTER = adapter_for(NAME)
