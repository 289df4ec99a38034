"""payhook: payment webhooks verified, stored once, turned into a ledger with an audit trail."""

from payhook.errors import (
    ConfigError,
    PayhookError,
    PayloadError,
    StorageUnavailableError,
    VerificationError,
)

__all__ = [
    "ConfigError",
    "PayhookError",
    "PayloadError",
    "StorageUnavailableError",
    "VerificationError",
]

__version__ = "0.1.0"
