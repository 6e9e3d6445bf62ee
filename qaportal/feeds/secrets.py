"""Credentials at rest: the STOW-RS credentials of a peer are stored sealed, never plain.

seal() encrypts with Fernet (AES-128-CBC with an HMAC-SHA256 tag, a random IV per value);
its 32 bytes of key come from HKDF-SHA256 over the key material:

- QAPORTAL_FEEDS_KEY when set (at least 32 characters; every app server and worker must
  share it);
- otherwise, on the embedded SQLite database, the instance file `feeds-key` (created on
  first use, mode 0600, next to `secret_key`; config.py fills FEEDS_KEY from it);
- otherwise (a server database) QAPORTAL_SECRET_KEY, which every app server already shares.
  The HKDF "info" differs from any other use of that key. Changing SECRET_KEY then makes the
  stored credentials unreadable: set QAPORTAL_FEEDS_KEY to the old SECRET_KEY before
  rotating it, or enter the credentials again.

A value sealed under another key does not open: unseal() raises SecretError saying so.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app

# Sealed values start with this, so a plain value stored by mistake is recognised as such.
PREFIX = "sealed1:"
_INFO = b"qaportal feeds credentials v1"


class SecretError(RuntimeError):
    """A sealed value cannot be opened; the message says why and what to do."""


def key_source() -> str:
    """Name where the key material comes from (for messages; never the key itself)."""
    cfg = current_app.config
    if cfg.get("FEEDS_KEY_FILE"):
        return f"the instance file {cfg['FEEDS_KEY_FILE']}"
    if cfg.get("FEEDS_KEY"):
        return "QAPORTAL_FEEDS_KEY"
    return "a key derived from QAPORTAL_SECRET_KEY"


def _fernet() -> Fernet:
    cfg = current_app.config
    material = cfg.get("FEEDS_KEY") or cfg.get("SECRET_KEY")
    if not material:
        raise SecretError("no key to seal credentials with: set QAPORTAL_FEEDS_KEY")
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
        str(material).encode("utf-8"))
    return Fernet(base64.urlsafe_b64encode(key))


def seal(text: str) -> str:
    """Return text encrypted under the feeds key, as printable ASCII."""
    return PREFIX + _fernet().encrypt(text.encode("utf-8")).decode("ascii")


def unseal(token: str) -> str:
    """Return the text sealed in token; SecretError when it is not sealed or the key differs."""
    if not isinstance(token, str) or not token.startswith(PREFIX):
        raise SecretError("the stored credentials are not a sealed value; enter them again")
    try:
        return _fernet().decrypt(token[len(PREFIX):].encode("ascii")).decode("utf-8")
    except (InvalidToken, UnicodeError, ValueError) as exc:
        raise SecretError(
            f"the stored credentials cannot be decrypted with {key_source()}: the key has "
            "changed since they were saved; restore the old key or enter them again"
        ) from exc
