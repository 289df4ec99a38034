"""The key that authenticates the audit chain, held outside the database.

``ChainKey`` is the port the chain code uses on both runtimes. The embedded runtime holds an
HMAC-SHA256 key from its configuration (``HmacChainKey``); the AWS runtime a KMS HMAC key
(``payhook.backends.aws.audit.KmsChainKey``), whose key material never leaves KMS.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Protocol

from payhook.errors import ConfigError

#: The shortest key accepted: HMAC-SHA256 gains nothing from more than 32 bytes of entropy,
#: and loses strength with fewer.
MIN_KEY_BYTES = 32


class ChainKey(Protocol):
    def mac(self, message: bytes) -> str:
        """The MAC of ``message``, as text stored beside the entry it authenticates."""
        ...

    def verify(self, message: bytes, mac: str) -> bool:
        """Whether ``mac`` authenticates ``message``; False (never an error) when malformed."""
        ...


class HmacChainKey:
    """HMAC-SHA256 in hex; the key is the UTF-8 bytes of the configured text."""

    __slots__ = ("_key",)

    def __init__(self, key: str | bytes) -> None:
        raw = key.encode() if isinstance(key, str) else bytes(key)
        if len(raw) < MIN_KEY_BYTES:
            raise ConfigError(f"audit key: got {len(raw)} bytes, expected at least {MIN_KEY_BYTES}")
        self._key = raw

    def __repr__(self) -> str:
        return "HmacChainKey(<redacted>)"

    def mac(self, message: bytes) -> str:
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def verify(self, message: bytes, mac: str) -> bool:
        # Compared as bytes: compare_digest refuses non-ASCII text instead of answering False.
        return hmac.compare_digest(self.mac(message).encode(), mac.encode())
