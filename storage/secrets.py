"""Secrets at rest: remote passwords and keys are stored encrypted (Fernet: AES-128-CBC + HMAC-SHA256).

The catalog seals a remote's secret fields with a ``SecretBox`` before they reach the database and
opens them when a remote is read, so the database (and its backups) hold only ciphertext. The same
goes for the value of a header in a remote's ``headers`` whose name carries a credential
(``is_secret_header``: ``Authorization``, a token), stored as ``SEALED_PREFIX`` + ciphertext; a
value stored in the clear before (an older row) still reads back as it was. The key
comes from the settings (``MIRRORFLOW_SECRET_KEY``) or, for the embedded default, from a key file
created once by ``load_or_create_key``.

Errors::

    SecretError                     base
     ├── InvalidSecretKey           (.source) the key is not a Fernet key (32 url-safe base64 bytes)
     ├── NoSecretKey                (.field) a secret must be sealed or opened but no key was given
     └── WrongSecretKey             (.field) a stored secret does not open with this key: the key
                                    changed, or the row was written with another one
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from mirrorflow.storage.errors import MirrorflowError
from mirrorflow.storage.schema import SEALED_PREFIX

__all__ = [
    "SEALED_PREFIX",
    "is_secret_header",
    "SecretBox",
    "SecretError",
    "InvalidSecretKey",
    "NoSecretKey",
    "WrongSecretKey",
    "generate_key",
    "load_or_create_key",
]


#: Parts of a header name that mark its value as a credential (``is_secret_header``).
_SECRET_HEADER_PARTS = ("auth", "token", "secret", "password", "api-key", "apikey", "cookie")


def is_secret_header(name: str) -> bool:
    """Return whether a header in a remote's ``headers`` carries a credential: its value is stored
    sealed, never printed, and never accepted inline (where Prefect would record it).

    >>> is_secret_header("Authorization"), is_secret_header("X-JFrog-Art-Api-Key"), is_secret_header("Accept")
    (True, True, False)
    """
    lowered = name.lower()
    return any(part in lowered for part in _SECRET_HEADER_PARTS)


class SecretError(MirrorflowError):
    """Base of the errors about encrypted secrets."""


class InvalidSecretKey(SecretError, ValueError):
    def __init__(self, source: str) -> None:
        self.source = source
        super().__init__(
            f"the secret key from {source} is not a valid key: expected 32 url-safe base64-encoded "
            "bytes (make one with: python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())')"
        )


class NoSecretKey(SecretError):
    def __init__(self, field: str) -> None:
        self.field = field
        super().__init__(
            f"the remote field {field!r} is a secret, and this catalog was opened without a secret key: "
            "pass one (Catalog(..., secrets=SecretBox(key)))"
        )


class WrongSecretKey(SecretError):
    def __init__(self, field: str) -> None:
        self.field = field
        super().__init__(
            f"the stored secret {field!r} cannot be decrypted with the configured secret key: "
            "set MIRRORFLOW_SECRET_KEY to the key the catalog was written with, "
            "or set the secret again (remote update)"
        )


def generate_key() -> str:
    """Return a new random key, as text."""
    return Fernet.generate_key().decode("ascii")


class SecretBox:
    """Encrypts and decrypts text with one key. The key never appears in ``repr``."""

    def __init__(self, key: str | bytes, *, source: str = "the settings") -> None:
        try:
            self._fernet = Fernet(key.encode("ascii") if isinstance(key, str) else key)
        except (ValueError, UnicodeEncodeError):
            raise InvalidSecretKey(source) from None

    def __repr__(self) -> str:
        return "SecretBox(<key hidden>)"

    def encrypt(self, plaintext: str) -> str:
        """Return the ciphertext of ``plaintext`` (url-safe text; differs on every call)."""
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, ciphertext: str, *, field: str = "secret") -> str:
        """Return the plaintext. Raises ``WrongSecretKey`` (naming ``field``) if it does not open."""
        try:
            return self._fernet.decrypt(ciphertext.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError):
            raise WrongSecretKey(field) from None


def load_or_create_key(path: Path) -> str:
    """Return the key kept in ``path``, creating it (mode 0600) on first use.

    Creation is atomic: the key is written to a private temporary file and hard-linked into place,
    so two processes starting at once agree on one key and nobody reads a half-written file.
    Raises ``InvalidSecretKey`` if the file holds something else.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".secret-", dir=path.parent)  # mkstemp: mode 0600
        try:
            with os.fdopen(fd, "w") as out:
                out.write(generate_key() + "\n")
                out.flush()
                os.fsync(out.fileno())
            with contextlib.suppress(FileExistsError):  # another process won the race: use its key
                os.link(tmp, path)
        finally:
            os.unlink(tmp)
    key = path.read_text().strip()
    SecretBox(key, source=str(path))  # validates
    return key
