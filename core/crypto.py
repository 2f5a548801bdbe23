"""Encryption of secrets at rest (OAuth tokens) with key rotation.

Keys are Fernet keys (AES-128-CBC + HMAC-SHA256). The first configured key encrypts; every
key decrypts, so a new key can be put first and old ciphertexts re-encrypted at leisure
(`TokenCipher.rotate`). In development, when no key is configured, one is generated once into
the data dir (mode 0600); in production a missing key is a configuration error.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from core.settings import Settings, get_settings

DEV_KEY_FILE = "secret.key"


class TokenCipher:
    """Encrypts and decrypts JSON-able secrets; never puts plaintext in errors."""

    def __init__(self, keys: list[str]):
        from cryptography.fernet import Fernet, MultiFernet

        if not keys:
            raise ConfigError("no encryption key: set COACHLOOP_ENCRYPTION_KEYS")
        try:
            self._fernet = MultiFernet([Fernet(k.encode() if isinstance(k, str) else k)
                                        for k in keys])
        except (ValueError, TypeError) as exc:
            raise ConfigError("COACHLOOP_ENCRYPTION_KEYS holds a key that is not a valid "
                              "Fernet key (32 url-safe base64-encoded bytes)") from exc

    def encrypt(self, secret: dict[str, Any]) -> str:
        return self._fernet.encrypt(json.dumps(secret, sort_keys=True).encode()).decode()

    def decrypt(self, ciphertext: str) -> dict[str, Any]:
        from cryptography.fernet import InvalidToken

        try:
            return json.loads(self._fernet.decrypt(ciphertext.encode()))
        except InvalidToken as exc:
            raise ConfigError("a stored secret cannot be decrypted with the configured keys "
                              "(was COACHLOOP_ENCRYPTION_KEYS changed without keeping the old "
                              "key?)") from exc

    def rotate(self, ciphertext: str) -> str:
        """Re-encrypt with the current (first) key."""
        return self._fernet.rotate(ciphertext.encode()).decode()


def generate_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def cipher_from_settings(settings: Settings | None = None) -> TokenCipher:
    """The cipher for the configured keys, or a dev key kept in the data dir."""
    settings = settings or get_settings()
    keys = [k.get_secret_value() for k in settings.encryption_keys]
    if keys:
        return TokenCipher(keys)
    if settings.environment != "dev":
        raise ConfigError("COACHLOOP_ENCRYPTION_KEYS must be set outside development "
                          "(generate one with `coachloop keygen`)")
    return TokenCipher([_dev_key(settings.data_dir)])


def _dev_key(data_dir: Path) -> str:
    path = data_dir / DEV_KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(generate_key())
    return path.read_text().strip()
