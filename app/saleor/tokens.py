"""The installed app's Saleor token, encrypted at rest.

Fernet (AES-128-CBC with HMAC-SHA256, from ``cryptography``) under a key derived with HKDF from
SALEOR_APP_TOKEN_KEY: a database dump alone does not give anyone the right to act as the app
in the shop's Saleor.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_PURPOSE = b"momo-gateway saleor app token v1"


class UndecryptableToken(Exception):
    """The stored token was encrypted under another SALEOR_APP_TOKEN_KEY."""


class TokenBox:
    def __init__(self, key: str) -> None:
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_PURPOSE).derive(
            key.encode()
        )
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def seal(self, token: str) -> str:
        return self._fernet.encrypt(token.encode()).decode()

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise UndecryptableToken from None


def token_fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
