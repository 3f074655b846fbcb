"""The operator token: who may look calls up (and scrape metrics when a token is configured).

Operator endpoints are never open by default. With no ``[operator] token`` configured they answer 403
``operator_access_disabled``, saying how to enable them; with one, the request must carry
``Authorization: Bearer <token>`` (compared in constant time), else 401 ``unauthorized``.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import Response

from receiver.errors import OperatorAccessDisabled, OperatorAuthError
from receiver.responses import error_response
from receiver.settings import Secret, Settings
from receiver.signatures.shared_secret import parse_bearer

ENABLE_HINT = 'set [operator] token in the configuration (for example token = "env:CALLSTREAM_OPERATOR_TOKEN")'
#: Sent with every 401, as RFC 6750 asks of bearer-token resources.
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="callstream"'}


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    return parse_bearer(request.headers.get("authorization", ""))


def secret_matches(secret: Secret | None, presented: str | None) -> bool:
    """Whether ``presented`` is ``secret``, compared in constant time (False when either is missing)."""
    if secret is None or not presented:
        return False
    return hmac.compare_digest(presented.encode(), secret.reveal().encode())


def token_matches(settings: Settings, presented: str | None) -> bool:
    """Whether ``presented`` is the configured operator token (False when none is configured)."""
    return secret_matches(settings.operator_token, presented)


def refusal(settings: Settings, request: Request, what: str) -> Response | None:
    """The error response for an operator request that may not proceed, or None when it may."""
    if settings.operator_token is None:
        return error_response(OperatorAccessDisabled(f"{what} is disabled: {ENABLE_HINT}"))
    if token_matches(settings, bearer_token(request)):
        return None
    response = error_response(
        OperatorAuthError(f"{what} needs the operator token: send Authorization: Bearer <operator token>")
    )
    response.headers.update(CHALLENGE)
    return response
