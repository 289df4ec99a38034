"""How PayPal signs a delivery: the PAYPAL-* headers and the RSA signature over them.

``PAYPAL-TRANSMISSION-SIG`` is base64 RSA-SHA256 (PKCS#1 v1.5) over
``"{transmission id}|{transmission time}|{webhook id}|{crc32(raw body), unsigned decimal}"``,
made with the key of the certificate at ``PAYPAL-CERT-URL``. The one ``signed_message`` is
verified here and signed for samples (``PayPalSampleSigner``, with a key of our own).
"""

from __future__ import annotations

import base64
import re
import uuid
import zlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from payhook.core.model import WebhookRequest
from payhook.errors import VerificationError
from payhook.providers.base import iso_timestamp

ALGORITHM = "SHA256withRSA"
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$")
_TRANSMISSION_ID = re.compile(r"^[\x21-\x7b\x7d\x7e]{1,128}$")  # printable ASCII except "|"
_MAX_SIGNATURE_CHARS = 2048


@dataclass(frozen=True, slots=True)
class Transmission:
    """The signature headers of one delivery, checked for shape."""

    transmission_id: str
    time: str
    timestamp: float
    signature: bytes
    signature_b64: str
    cert_url: str
    algorithm: str


def signed_message(transmission_id: str, time: str, webhook_id: str, body: bytes) -> bytes:
    crc = zlib.crc32(body) & 0xFFFFFFFF
    return f"{transmission_id}|{time}|{webhook_id}|{crc}".encode()


def sign_paypal(
    key: RSAPrivateKey, transmission_id: str, time: str, webhook_id: str, body: bytes
) -> str:
    """Base64 ``PAYPAL-TRANSMISSION-SIG`` for a key of our own (samples and tests)."""
    message = signed_message(transmission_id, time, webhook_id, body)
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


@dataclass(frozen=True, slots=True)
class PayPalSampleSigner:
    """Signs deliveries as PayPal does, with a key of our own: they verify only where the
    certificate at ``cert_url`` is trusted (tests, with their own CA)."""

    private_key: RSAPrivateKey
    cert_url: str

    def request(
        self, body: bytes, webhook_id: str, time: str, transmission_id: str | None = None
    ) -> WebhookRequest:
        """A delivery of ``body`` for ``webhook_id`` transmitted at ``time`` (ISO 8601)."""
        transmission_id = transmission_id or str(uuid.uuid4())
        signature = sign_paypal(self.private_key, transmission_id, time, webhook_id, body)
        return WebhookRequest(
            body=body,
            headers={
                "content-type": "application/json",
                "paypal-auth-algo": ALGORITHM,
                "paypal-auth-version": "v2",
                "paypal-cert-url": self.cert_url,
                "paypal-transmission-id": transmission_id,
                "paypal-transmission-sig": signature,
                "paypal-transmission-time": time,
            },
        )


def _header(request: WebhookRequest, name: str) -> str:
    value = request.header(name)
    if not value:
        raise VerificationError(f"missing {name.upper()} header", code="missing_signature")
    return value


def read_transmission(request: WebhookRequest) -> Transmission:
    """Parse the PAYPAL-* headers; every malformed value is a VerificationError."""
    transmission_id = _header(request, "paypal-transmission-id")
    time = _header(request, "paypal-transmission-time")
    signature_b64 = _header(request, "paypal-transmission-sig")
    cert_url = _header(request, "paypal-cert-url")
    algorithm = _header(request, "paypal-auth-algo")
    if algorithm != ALGORITHM:
        raise VerificationError(f"PAYPAL-AUTH-ALGO must be {ALGORITHM}")
    if not _TRANSMISSION_ID.match(transmission_id):
        raise VerificationError("PAYPAL-TRANSMISSION-ID is malformed")
    timestamp = iso_timestamp(time) if _TIME.match(time) else None
    if timestamp is None:
        raise VerificationError("PAYPAL-TRANSMISSION-TIME is not an ISO 8601 time")
    if len(signature_b64) > _MAX_SIGNATURE_CHARS:
        raise VerificationError("PAYPAL-TRANSMISSION-SIG is too long")
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except ValueError as exc:  # binascii.Error is one
        raise VerificationError("PAYPAL-TRANSMISSION-SIG is not base64") from exc
    # Only the canonical encoding: another spelling of the same bytes is a changed header.
    if not signature or base64.b64encode(signature).decode() != signature_b64:
        raise VerificationError("PAYPAL-TRANSMISSION-SIG is not canonical base64")
    return Transmission(
        transmission_id, time, timestamp, signature, signature_b64, cert_url, algorithm
    )


def verify_paypal_signature(
    key: RSAPublicKey, transmission: Transmission, webhook_ids: tuple[str, ...], body: bytes
) -> None:
    """RSA check of one delivery against each configured webhook id (rotation)."""
    for webhook_id in webhook_ids:
        message = signed_message(transmission.transmission_id, transmission.time, webhook_id, body)
        try:
            key.verify(transmission.signature, message, padding.PKCS1v15(), hashes.SHA256())
            return
        except (InvalidSignature, ValueError):
            continue
    raise VerificationError("PayPal signature does not match", code="mismatch")
