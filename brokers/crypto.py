"""The token vault: broker tokens encrypted at rest with Fernet, keys rotatable.

`ENCRYPTION_KEYS` holds Fernet keys, newest first: the first encrypts, all decrypt. Errors name
the setting, never the token or the ciphertext.
"""

from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class VaultError(Exception):
    """The vault cannot encrypt or decrypt; the message names the setting to fix."""


@cache
def _vault(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise VaultError("ENCRYPTION_KEYS is not set: broker tokens cannot be encrypted or read.")
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except (ValueError, TypeError):
        raise VaultError("ENCRYPTION_KEYS holds a value that is not a Fernet key.") from None


def vault() -> MultiFernet:
    return _vault(tuple(settings.ENCRYPTION_KEYS))


def encrypt(plaintext: str) -> str:
    return vault().encrypt(plaintext.encode()).decode()


def decrypt(ciphertext: str) -> str:
    return _readable(vault().decrypt, ciphertext)


def rotate(ciphertext: str) -> str:
    """Re-encrypt with the current (first) key; idempotent."""
    return _readable(vault().rotate, ciphertext)


def _readable(operation, ciphertext: str) -> str:
    try:
        return operation(ciphertext.encode()).decode()
    except InvalidToken:
        raise VaultError(
            "A stored broker token cannot be decrypted with ENCRYPTION_KEYS (was a key removed?)."
        ) from None
