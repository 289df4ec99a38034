"""Standard Webhooks (and Svix, which sends the same under ``svix-*`` header names).

``webhook-signature`` holds space-separated ``v1,<base64>`` entries: HMAC-SHA256 over
``"{id}.{timestamp}.{body}"`` keyed with the base64-decoded secret (after ``whsec_``).
Entries of other versions (``v1a`` is ed25519) are ignored; a malformed entry is a
verification failure, never a ValueError.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets as _secrets
from datetime import UTC, datetime

from payhook.core.clock import Clock, system_clock
from payhook.core.model import StoredWebhook, VerifiedEvent, WebhookRequest
from payhook.core.payment import PaymentEvent
from payhook.errors import ConfigError, VerificationError
from payhook.providers.base import (
    HmacKeys,
    Provider,
    ProviderConfig,
    any_signature_matches,
    check_tolerance,
    parse_json_object,
)

_PREFIXES = ("webhook", "svix")
_DIGITS = re.compile(r"[0-9]{1,12}")
_SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret


def decode_secret(secret: str) -> bytes:
    """``whsec_<base64>`` (or bare base64) to key bytes."""
    raw = secret.removeprefix(_SECRET_PREFIX)
    try:
        # Unpadded secrets are accepted, as the reference library accepts them.
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError("a Standard Webhooks secret must be base64 after 'whsec_'") from exc
    if not key:
        # An HMAC with an empty key is a MAC anyone can compute.
        raise ConfigError("a Standard Webhooks secret must not be empty")
    return key


def standard_signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.digest(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac).decode()


def _headers(request: WebhookRequest) -> tuple[str, str, str]:
    for prefix in _PREFIXES:
        msg_id = request.header(f"{prefix}-id")
        timestamp = request.header(f"{prefix}-timestamp")
        signature = request.header(f"{prefix}-signature")
        if msg_id and timestamp and signature:
            return msg_id, timestamp, signature
    raise VerificationError("missing webhook-id, webhook-timestamp or webhook-signature header")


def _received_signatures(header: str) -> list[bytes]:
    signatures: list[bytes] = []
    for entry in header.split(" "):
        if not entry:
            continue
        version, sep, value = entry.partition(",")
        if not sep or "," in value:
            raise VerificationError("malformed webhook-signature entry")
        if version != "v1":
            continue
        try:
            # Lenient decoding, as the reference library does: the HMAC must still match.
            signatures.append(base64.b64decode(value))
        except (binascii.Error, ValueError) as exc:
            raise VerificationError("webhook-signature is not base64") from exc
    return signatures


def verify_standard_signature(
    request: WebhookRequest, keys: HmacKeys, now: float, tolerance: int
) -> tuple[str, int]:
    """Verify a Standard Webhooks delivery; returns (message id, timestamp)."""
    msg_id, raw_timestamp, header = _headers(request)
    if not _DIGITS.fullmatch(raw_timestamp):
        raise VerificationError("webhook-timestamp is not a unix time")
    timestamp = int(raw_timestamp)
    check_tolerance(timestamp, now, tolerance)
    signed = f"{msg_id}.{timestamp}.".encode() + request.body
    if not any_signature_matches(keys.digests(signed), _received_signatures(header)):
        raise VerificationError("no webhook signature matches")
    return msg_id, timestamp


class StandardWebhooksProvider(Provider):
    type_name = "standard"
    sample_event_types = ("payment.succeeded", "invoice.paid")

    def __init__(self, config: ProviderConfig, clock: Clock = system_clock) -> None:
        super().__init__(config, clock)
        self.keys = [decode_secret(s) for s in config.secrets]
        self.hmac_keys = HmacKeys(self.keys)

    def verify(self, request: WebhookRequest) -> list[VerifiedEvent]:
        msg_id, timestamp = verify_standard_signature(
            request, self.hmac_keys, self.clock(), self.tolerance_seconds
        )
        body = parse_json_object(request.body)
        event_type = body.get("type")
        return [
            VerifiedEvent(
                event_id=msg_id,
                event_type=event_type if isinstance(event_type, str) and event_type else "unknown",
                payload=request.body,
                occurred_at=float(timestamp),
            )
        ]

    def payment_events(self, webhook: StoredWebhook) -> list[PaymentEvent]:
        # A generic Standard Webhooks sender has no common payment schema: the event is stored,
        # audited and published, but it feeds no ledger row.
        return []

    def sample_request(self, event_type: str | None = None) -> WebhookRequest:
        event_type = event_type or self.sample_event_types[0]
        now = int(self.clock())
        msg_id = f"msg_{_secrets.token_hex(12)}"
        body = json.dumps(
            {
                "type": event_type,
                "timestamp": datetime.fromtimestamp(now, UTC).isoformat().replace("+00:00", "Z"),
                "data": {"id": f"pay_{_secrets.token_hex(8)}", "amount": 2000, "currency": "USD"},
            },
            separators=(",", ":"),
        ).encode()
        return WebhookRequest(
            body=body,
            headers={
                "content-type": "application/json",
                "webhook-id": msg_id,
                "webhook-timestamp": str(now),
                "webhook-signature": standard_signature(self.keys[0], msg_id, now, body),
            },
        )
