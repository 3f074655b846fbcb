"""Who may use the console: the token, login sessions in a signed cookie, and CSRF tokens for the one action.

The console token is the operator token (``[operator] token``). With none configured, ``callstream serve``
bound to loopback makes a fresh random token at each start, hands it to its workers in
`ONE_TIME_TOKEN_ENV` and prints the URL that logs in with it (as notebook servers do); bound anywhere else
it makes none, and the console answers 403, as the operator endpoints do.

A request is let in with ``Authorization: Bearer <token>``, or with the session cookie that logging in
sets: ``<issued ms>.<random>.<signature>``, HMAC-SHA256 under a key derived from the token, so every worker
checks it without shared state, it lasts `SESSION_SECONDS`, and changing the token ends every session.
The cookie is HttpOnly, SameSite=Strict, limited to ``/console`` and Secure over HTTPS. Forms that change
something carry a CSRF token, an HMAC of the session's random part; a bearer-authenticated request needs
none (a browser never adds that header on its own). Every comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass

from starlette.requests import Request

from receiver.operator import bearer_token, secret_matches
from receiver.settings import LOOPBACK_HOSTS, Secret, Settings
from receiver.signatures.jwt_hs256 import b64url

ONE_TIME_TOKEN_ENV = "CALLSTREAM_CONSOLE_TOKEN"  # noqa: S105 - the variable's name, not a secret
COOKIE = "callstream_console"
SESSION_SECONDS = 12 * 3600
PATH = "/console"


def console_token(settings: Settings, environ: Mapping[str, str]) -> Secret | None:
    """The token that opens the console: the operator token, else the one `serve` made; None: console off."""
    if settings.operator_token is not None:
        return settings.operator_token
    made = environ.get(ONE_TIME_TOKEN_ENV)
    return Secret(made) if made else None


def announce(settings: Settings, host: str, port: int, environ: MutableMapping[str, str]) -> str:
    """For ``serve``: make the one-time token when it applies (into ``environ``, for the workers) and say
    where the console is."""
    environ.pop(ONE_TIME_TOKEN_ENV, None)
    where = f"http://{f'[{host}]' if ':' in host else host}:{port}{PATH}"
    if settings.operator_token is not None:
        return f"callstream: console at {where} (log in with the operator token)"
    if host not in LOOPBACK_HOSTS:
        return f"callstream: console off on {host} without an operator token: set [operator] token to use it"
    token = secrets.token_urlsafe(24)
    environ[ONE_TIME_TOKEN_ENV] = token
    return f"callstream: console at {where}/login?token={token}"


@dataclass(frozen=True, slots=True)
class Visitor:
    """Someone let in: by a session (``session`` is its random part) or by the bearer header (None)."""

    session: str | None


class Access:
    """Token checks, sessions and CSRF tokens for one console token (None: the console is off)."""

    def __init__(self, token: Secret | None) -> None:
        self.token = token
        secret = token.reveal().encode() if token is not None else b""
        # Derived, so a leaked cookie signature tells nothing about the token itself.
        self._key = hmac.new(secret, b"callstream console session v1", hashlib.sha256).digest()

    @property
    def enabled(self) -> bool:
        return self.token is not None

    def token_matches(self, presented: str | None) -> bool:
        return secret_matches(self.token, presented)

    def _sign(self, text: str) -> str:
        return b64url(hmac.new(self._key, text.encode(), hashlib.sha256).digest())

    def new_session(self, now: float | None = None) -> str:
        """A fresh session cookie value."""
        issued = int((time.time() if now is None else now) * 1000)
        body = f"{issued}.{b64url(secrets.token_bytes(18))}"
        return f"{body}.{self._sign(body)}"

    def session_of(self, cookie: str | None, now: float | None = None) -> str | None:
        """The random part of a valid, unexpired session cookie, else None."""
        if not self.enabled or not cookie or cookie.count(".") != 2:
            return None
        issued, random_part, signature = cookie.split(".")
        if not hmac.compare_digest(signature.encode(), self._sign(f"{issued}.{random_part}").encode()):
            return None
        age_ms = int((time.time() if now is None else now) * 1000) - int(issued) if issued.isdigit() else -1
        return random_part if 0 <= age_ms < SESSION_SECONDS * 1000 else None

    def visitor(self, request: Request) -> Visitor | None:
        """Who sends ``request``, or None when it carries neither the token nor a valid session."""
        if self.token_matches(bearer_token(request)):
            return Visitor(session=None)
        session = self.session_of(request.cookies.get(COOKIE))
        return Visitor(session=session) if session is not None else None

    def csrf_token(self, visitor: Visitor) -> str:
        return self._sign(f"csrf.{visitor.session or 'bearer'}")

    def csrf_ok(self, visitor: Visitor, presented: str | None) -> bool:
        if visitor.session is None:  # the bearer header itself proves the request is not forged by a page
            return True
        return bool(presented) and hmac.compare_digest(str(presented).encode(), self.csrf_token(visitor).encode())
