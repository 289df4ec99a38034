"""One error tree for the whole package.

Every foreign error that crosses a payhook boundary is mapped onto one of these with
``raise ... from exc``, so callers catch payhook errors only.
"""

from typing import Literal


class PayhookError(Exception):
    """Root of every error payhook raises on purpose."""


class ConfigError(PayhookError):
    """The configuration is missing, malformed or inconsistent."""


#: Why verification failed, as a bounded label (metrics, logs): a signature header or field
#: is absent; no signature matches; the signed time is outside the tolerance; a PayPal
#: certificate could not vouch for the delivery; anything else is malformed.
VerificationCode = Literal["missing_signature", "mismatch", "timestamp", "certificate", "malformed"]


class VerificationError(PayhookError):
    """A webhook failed authentication: bad, missing, expired or malformed signature.

    The message names the reason but never carries the body or a secret; ``code`` says which
    kind of failure it is.
    """

    def __init__(self, message: str, *, code: VerificationCode = "malformed") -> None:
        super().__init__(message)
        self.code: VerificationCode = code


def certificate_error(message: str) -> VerificationError:
    """A PayPal certificate (its URL, download, chain or validity) cannot vouch for a
    delivery."""
    return VerificationError(message, code="certificate")


class PayloadError(PayhookError):
    """A webhook was authentic but its body cannot be used (not JSON, no event id, ...)."""


class PayloadTooLargeError(PayloadError):
    """An authentic body too large for the store to hold (a 413, so the provider stops)."""


class UnknownProviderError(PayhookError):
    """No provider of that name is configured."""


class StorageUnavailableError(PayhookError):
    """The store could not durably accept a write; the caller must retry later."""


class NotFoundError(PayhookError):
    """A webhook, payment or dead letter asked for by id does not exist."""


class ConcurrencyError(PayhookError):
    """A conditional write lost a race (a payment or the audit head moved); retry."""
