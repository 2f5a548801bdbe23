"""Secrets at rest: encrypted, rotatable, never in error messages."""

import pytest

from core.crypto import TokenCipher, cipher_from_settings, generate_key
from core.errors import ConfigError
from core.settings import get_settings

TOKEN = {"access_token": "sk-live-abc123", "refresh_token": "rt-xyz789"}


def test_round_trip_and_no_plaintext_in_ciphertext():
    cipher = TokenCipher([generate_key()])
    sealed = cipher.encrypt(TOKEN)
    assert "abc123" not in sealed and "xyz789" not in sealed
    assert cipher.decrypt(sealed) == TOKEN


def test_rotation_old_ciphertexts_still_open_and_re_encrypt_under_the_new_key():
    old_key, new_key = generate_key(), generate_key()
    sealed_old = TokenCipher([old_key]).encrypt(TOKEN)
    rotating = TokenCipher([new_key, old_key])
    assert rotating.decrypt(sealed_old) == TOKEN
    rotated = rotating.rotate(sealed_old)
    assert TokenCipher([new_key]).decrypt(rotated) == TOKEN
    with pytest.raises(ConfigError) as error:
        TokenCipher([old_key]).decrypt(rotated)
    assert "abc123" not in str(error.value)


def test_bad_key_is_a_clear_config_error():
    with pytest.raises(ConfigError, match="not a valid Fernet key"):
        TokenCipher(["changethis"])


def test_dev_key_is_created_once_private_and_production_refuses_without_keys(monkeypatch, tmp_path):
    first = cipher_from_settings().encrypt(TOKEN)
    key_file = get_settings().data_dir / "secret.key"
    assert key_file.stat().st_mode & 0o077 == 0
    assert cipher_from_settings().decrypt(first) == TOKEN  # same key next time
    monkeypatch.setenv("COACHLOOP_ENVIRONMENT", "production")
    get_settings.cache_clear()
    with pytest.raises(ConfigError, match="COACHLOOP_ENCRYPTION_KEYS"):
        cipher_from_settings()
    monkeypatch.setenv("COACHLOOP_ENCRYPTION_KEYS", f'["{generate_key()}"]')
    get_settings.cache_clear()
    assert cipher_from_settings().decrypt(cipher_from_settings().encrypt(TOKEN)) == TOKEN
