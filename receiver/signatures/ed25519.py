"""Ed25519 over ``f"{timestamp}|{raw body}"``: Telnyx (Call Control and TeXML).

The provider signs with its private key; a receiver holds only the account's public key (base64 of 32
bytes, from the Telnyx portal), so a configured value is read by `verifying_keys`:

- base64 of exactly 32 bytes: a **public key**. This is what a production source holds.
- ``seed:`` followed by base64 of 32 bytes: a **private seed**; its public key is derived.
- anything else: a **passphrase** whose SHA-256 is the private seed. For local replay and tests, where
  one string both signs and verifies; a genuine provider request never verifies against it, so a
  mistyped public key fails closed.

`signing_key` reads the secret a replay signs with: a private seed (``seed:`` optional, since signing
needs private material), or a passphrase. Replaying against a source that holds the public key thus takes
``--secret <base64 seed>``; against a source configured with the passphrase, the passphrase itself.
Sources: ../shared/providers.md §9, telnyx-python ``src/telnyx/lib/webhook_verification.py``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from receiver.errors import SignatureError

SEED_PREFIX = "seed:"
KEY_BYTES = 32
SIGNATURE_BYTES = 64


def _key_bytes(text: str) -> bytes | None:
    """The 32 bytes a strict base64 value decodes to, or None."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == KEY_BYTES else None


def signing_key(secret: str) -> Ed25519PrivateKey:
    """The private key a secret stands for when signing: a (``seed:``-prefixed or bare) seed, or a passphrase."""
    seed = _key_bytes(secret.removeprefix(SEED_PREFIX))
    if seed is None:
        seed = hashlib.sha256(secret.encode()).digest()
    return Ed25519PrivateKey.from_private_bytes(seed)


def verifying_key(secret: str) -> Ed25519PublicKey:
    """The public key a configured secret stands for (see the module docstring)."""
    if not secret.startswith(SEED_PREFIX):
        public = _key_bytes(secret)
        if public is not None:
            return Ed25519PublicKey.from_public_bytes(public)
    return signing_key(secret).public_key()


def signed_message(timestamp: str, body: bytes) -> bytes:
    return timestamp.encode() + b"|" + body


def signature(private_key: Ed25519PrivateKey, timestamp: str, body: bytes) -> str:
    """base64 Ed25519 signature of ``timestamp|body``."""
    return base64.b64encode(private_key.sign(signed_message(timestamp, body))).decode()


def verify(keys: Sequence[Ed25519PublicKey], timestamp: str, body: bytes, provided: str, header: str) -> None:
    """Accept when any key (several while rotating) verifies ``provided`` over ``timestamp|body``."""
    try:
        raw = base64.b64decode(provided.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    message = signed_message(timestamp, body)
    valid = False
    if len(raw) == SIGNATURE_BYTES:
        for key in keys:
            try:
                key.verify(raw, message)
            except InvalidSignature:
                continue
            valid = True
    if not valid:
        raise SignatureError(f"{header} does not match the request", header=header)
