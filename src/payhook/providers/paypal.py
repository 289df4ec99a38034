"""PayPal REST webhooks.

Offline (default): ``PAYPAL-TRANSMISSION-SIG`` is base64 RSA-SHA256 (PKCS#1 v1.5) over
``"{transmission id}|{transmission time}|{webhook id}|{crc32(raw body), unsigned decimal}"``,
made with the key of the certificate at ``PAYPAL-CERT-URL`` (see ``paypal_certs`` for the URL
policy, the chain validation and the cache). ``webhook_id`` is this receiver's own subscription
id, so a delivery signed for another subscription fails. The transmission time must be within
the tolerance in both directions.

Online (``verification = "online"``): the same local checks, then PayPal's
``POST /v1/notifications/verify-webhook-signature`` with an OAuth token from the secrets
(``"client_id:client_secret"``). The raw body is embedded verbatim as ``webhook_event``:
re-serialising it could change the bytes PayPal's CRC covers.

Options: ``webhook_id`` (required; a list during a migration), ``verification``
(``"offline"`` or ``"online"``), ``trust_store`` (a PEM bundle of trust anchors; default the
system bundle, else certifi's), ``api_base`` (online; default ``https://api-m.paypal.com``).

``payhook send`` cannot simulate PayPal: only PayPal holds the signing key. ``sample_request``
signs only with an injected ``PayPalSampleSigner`` (tests, whose verifier also trusts the test
CA), and otherwise raises PayloadError saying so.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets as _secrets
import uuid
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from msgspec import Meta

from payhook.core.clock import Clock, system_clock
from payhook.core.model import StoredWebhook, VerifiedEvent, WebhookRequest
from payhook.core.money import major_to_minor, normalize_currency
from payhook.core.payment import PaymentEvent, PaymentEventKind
from payhook.errors import ConfigError, PayloadError, VerificationError
from payhook.providers.base import (
    Provider,
    ProviderConfig,
    ProviderOptions,
    dig,
    iso_timestamp,
    parse_json_object,
    require_str,
)
from payhook.providers.paypal_certs import (
    CertificateCache,
    CertificateFetcher,
    HttpClient,
    HttpResponse,
    TrustStore,
    UrllibHttpClient,
    check_cert_url,
    default_trust_store_path,
    paypal_public_key,
    urllib_fetch,
)

ALGORITHM = "SHA256withRSA"
DEFAULT_API_BASE = "https://api-m.paypal.com"
K = PaymentEventKind
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


def _header(request: WebhookRequest, name: str) -> str:
    value = request.header(name)
    if not value:
        raise VerificationError(f"missing {name.upper()} header")
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
    except (binascii.Error, ValueError) as exc:
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
    raise VerificationError("PayPal signature does not match")


class PayPalOnlineVerifier:
    """``POST /v1/notifications/verify-webhook-signature`` with a cached OAuth token."""

    def __init__(
        self, http: HttpClient, api_base: str, credentials: list[tuple[str, str]], clock: Clock
    ) -> None:
        self.http = http
        self.api_base = api_base.rstrip("/")
        self.credentials = credentials
        self.clock = clock
        self._token: tuple[str, float] | None = None

    def verify(self, transmission: Transmission, webhook_ids: tuple[str, ...], body: bytes) -> None:
        try:
            json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise VerificationError("body is not JSON, so PayPal cannot verify it") from exc
        for webhook_id in webhook_ids:
            if self._status(transmission, webhook_id, body) == "SUCCESS":
                return
        raise VerificationError("PayPal reports the signature as not verified")

    def _status(self, transmission: Transmission, webhook_id: str, body: bytes) -> str:
        fields = {
            "auth_algo": transmission.algorithm,
            "cert_url": transmission.cert_url,
            "transmission_id": transmission.transmission_id,
            "transmission_sig": transmission.signature_b64,
            "transmission_time": transmission.time,
            "webhook_id": webhook_id,
        }
        payload = json.dumps(fields)[:-1].encode() + b',"webhook_event":' + body + b"}"
        url = f"{self.api_base}/v1/notifications/verify-webhook-signature"
        response = self._post(url, payload, self._bearer())
        if response.status == 401:  # the token expired early or was revoked: one fresh token
            self._token = None
            response = self._post(url, payload, self._bearer())
        if response.status != 200:
            raise VerificationError(f"PayPal verification API answered HTTP {response.status}")
        status: str = _json_field(response.body, "verification_status")
        return status

    def _bearer(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self._access_token()}",
            "Content-Type": "application/json",
        }

    def _post(self, url: str, body: bytes, headers: dict[str, str]) -> HttpResponse:
        try:
            return self.http.post(url, body, headers)
        except Exception as exc:  # transport failures: verification could not happen
            raise VerificationError("PayPal verification API is unreachable") from exc

    def _access_token(self) -> str:
        now = self.clock()
        if self._token is not None and self._token[1] > now:
            return self._token[0]
        for client_id, client_secret in self.credentials:
            basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
            response = self._post(
                f"{self.api_base}/v1/oauth2/token",
                b"grant_type=client_credentials",
                {
                    "Authorization": f"Basic {basic}",
                    "Content-Type": "application/x-www-form-urlencoded",
                },
            )
            if response.status != 200:
                continue  # next credentials (rotation)
            token: str = _json_field(response.body, "access_token")
            expires_in = _json_field(response.body, "expires_in", int)
            # Renew a minute early so a token never expires between check and use.
            self._token = (token, now + max(0, expires_in - 60))
            return token
        raise VerificationError("PayPal refused every configured client credential")


def _json_field(body: bytes, key: str, kind: type = str) -> Any:
    try:
        value = json.loads(body).get(key)
    except (ValueError, AttributeError) as exc:
        raise VerificationError("PayPal API answered with malformed JSON") from exc
    if not isinstance(value, kind) or isinstance(value, bool):
        raise VerificationError(f"PayPal API answer has no {key}")
    return value


@dataclass(frozen=True, slots=True)
class PayPalSampleSigner:
    """A key of our own for ``sample_request``; its certificate must be at ``cert_url``."""

    private_key: RSAPrivateKey
    cert_url: str


class PayPalOptions(ProviderOptions, frozen=True):
    #: The webhook's id (a list while migrating from one webhook to another).
    webhook_id: Annotated[str, Meta(min_length=1)] | list[Annotated[str, Meta(min_length=1)]]
    verification: Literal["offline", "online"] = "offline"
    trust_store: str | None = None
    api_base: str = DEFAULT_API_BASE


class PayPalProvider(Provider):
    Options = PayPalOptions
    type_name = "paypal"
    requires_secrets = False  # offline verification needs a webhook id, not a secret
    verify_blocks = True  # certificate fetches (first use) and online verification
    sample_event_types = (
        "PAYMENT.CAPTURE.COMPLETED",
        "PAYMENT.CAPTURE.PENDING",
        "PAYMENT.CAPTURE.DENIED",
        "PAYMENT.CAPTURE.REFUNDED",
        "PAYMENT.CAPTURE.REVERSED",
        "CUSTOMER.DISPUTE.CREATED",
        "CUSTOMER.DISPUTE.RESOLVED",
    )

    def __init__(
        self,
        config: ProviderConfig,
        clock: Clock = system_clock,
        *,
        trust_store: TrustStore | None = None,
        fetcher: CertificateFetcher = urllib_fetch,
        http_client: HttpClient | None = None,
        sample_signer: PayPalSampleSigner | None = None,
    ) -> None:
        super().__init__(config, clock)
        self.webhook_ids = _webhook_ids(config)
        self.mode = config.option("verification", "offline")
        if self.mode not in ("offline", "online"):
            raise ConfigError(
                f"providers.{config.name}.verification: got {self.mode!r},"
                " expected 'offline' or 'online'"
            )
        self.certificates = CertificateCache(fetcher, clock=clock)
        self._trust_store = trust_store
        self._trust_store_path = None if trust_store else config.option("trust_store")
        if self._trust_store_path and not Path(str(self._trust_store_path)).is_file():
            raise ConfigError(
                f"providers.{config.name}.trust_store: no file at {self._trust_store_path!r}"
            )
        if self.mode == "offline" and trust_store is None and not self._trust_store_path:
            self._trust_store_path = default_trust_store_path()
        self.online: PayPalOnlineVerifier | None = None
        if self.mode == "online":
            self.online = PayPalOnlineVerifier(
                http_client or UrllibHttpClient(),
                _api_base(config),
                _credentials(config),
                clock,
            )
        self.sample_signer = sample_signer

    @property
    def trust_store(self) -> TrustStore:
        # Loaded on first use: reading a CA bundle is I/O, kept out of construction.
        if self._trust_store is None:
            self._trust_store = TrustStore.from_file(str(self._trust_store_path))
        return self._trust_store

    def verify(self, request: WebhookRequest) -> list[VerifiedEvent]:
        transmission = read_transmission(request)
        # Cheap checks first: a replayed or malformed delivery must not cost a fetch.
        self.check_timestamp(int(transmission.timestamp))
        check_cert_url(transmission.cert_url)
        if self.online is not None:
            self.online.verify(transmission, self.webhook_ids, request.body)
        else:
            chain = self.certificates.chain(transmission.cert_url)
            key = paypal_public_key(chain, self.trust_store, self.clock())
            verify_paypal_signature(key, transmission, self.webhook_ids, request.body)
        event = parse_json_object(request.body)
        return [
            VerifiedEvent(
                event_id=require_str(event, "id"),
                event_type=require_str(event, "event_type"),
                payload=request.body,
                occurred_at=iso_timestamp(event.get("create_time")),
            )
        ]

    def payment_events(self, webhook: StoredWebhook) -> list[PaymentEvent]:
        event = parse_json_object(webhook.payload)
        resource = event.get("resource")
        if not isinstance(resource, dict):
            raise PayloadError("PayPal event has no resource object")
        event_type = webhook.event_type
        if event_type in _PAYMENT_KINDS:
            amount, currency = _money(resource.get("amount"))
            return [
                PaymentEvent.of(
                    webhook,
                    payment_id=require_str(resource, "id", "resource"),
                    kind=_PAYMENT_KINDS[event_type],
                    amount=amount,
                    currency=currency,
                )
            ]
        if event_type in _REFUND_TYPES:
            if resource.get("status") in ("FAILED", "CANCELLED"):
                return []
            amount, currency = _money(resource.get("amount"))
            total, _ = _money(
                dig(resource, "seller_payable_breakdown", "total_refunded_amount")
                or resource.get("total_refunded_amount")
            )
            # v1 sale refunds state the amount as negative ("-0.01"): a refund amount is not.
            return [
                PaymentEvent.of(
                    webhook,
                    payment_id=_refunded_payment_id(resource),
                    kind=K.REFUNDED,
                    amount=abs(amount) if amount is not None else None,
                    currency=currency,
                    refund_id=require_str(resource, "id", "resource"),
                    refunded_total=abs(total) if total is not None else None,
                )
            ]
        if event_type in ("CUSTOMER.DISPUTE.CREATED", "CUSTOMER.DISPUTE.RESOLVED"):
            return _dispute_events(event_type, resource, webhook)
        return []

    def sample_request(self, event_type: str | None = None) -> WebhookRequest:
        if self.sample_signer is None:
            raise PayloadError(
                "PayPal signs deliveries with its own private key, so payhook cannot simulate"
                " one; use the webhook simulator in PayPal's developer dashboard"
            )
        event_type = event_type or self.sample_event_types[0]
        now = int(self.clock())
        body = json.dumps(sample_event(event_type, now), separators=(",", ":")).encode()
        transmission_id = str(uuid.uuid4())
        time = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        signer = self.sample_signer
        signature = sign_paypal(
            signer.private_key, transmission_id, time, self.webhook_ids[0], body
        )
        return WebhookRequest(
            body=body,
            headers={
                "content-type": "application/json",
                "paypal-auth-algo": ALGORITHM,
                "paypal-auth-version": "v2",
                "paypal-cert-url": signer.cert_url,
                "paypal-transmission-id": transmission_id,
                "paypal-transmission-sig": signature,
                "paypal-transmission-time": time,
            },
        )


def _webhook_ids(config: ProviderConfig) -> tuple[str, ...]:
    value = config.required_option("webhook_id")
    ids = [value] if isinstance(value, str) else value
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i for i in ids):
        raise ConfigError(
            f"providers.{config.name}.webhook_id: expected a string or a list of strings"
        )
    return tuple(ids)


def _api_base(config: ProviderConfig) -> str:
    api_base = str(config.option("api_base", DEFAULT_API_BASE))
    try:
        check_cert_url(api_base)  # the same rule: https on paypal.com, where credentials go
    except VerificationError as exc:
        raise ConfigError(f"providers.{config.name}.api_base: {exc}") from exc
    return api_base


def _credentials(config: ProviderConfig) -> list[tuple[str, str]]:
    if not config.secrets:
        raise ConfigError(
            f"providers.{config.name}: online verification needs secrets"
            ' as "client_id:client_secret"'
        )
    pairs = []
    for secret in config.secrets:
        client_id, sep, client_secret = secret.partition(":")
        if not (sep and client_id and client_secret):
            raise ConfigError(
                f'providers.{config.name}.secrets: expected "client_id:client_secret" entries'
            )
        pairs.append((client_id, client_secret))
    return pairs


_PAYMENT_KINDS = {
    "PAYMENT.CAPTURE.COMPLETED": K.SUCCEEDED,
    "PAYMENT.CAPTURE.PENDING": K.PENDING,
    "PAYMENT.CAPTURE.DENIED": K.FAILED,
    "PAYMENT.CAPTURE.DECLINED": K.FAILED,
    # v1 sales: still sent for subscriptions (billing agreements).
    "PAYMENT.SALE.COMPLETED": K.SUCCEEDED,
    "PAYMENT.SALE.PENDING": K.PENDING,
    "PAYMENT.SALE.DENIED": K.FAILED,
}
# A reversal is money PayPal takes back (typically a chargeback). Its resource is a refund of
# the capture, so it counts as a refund: the dispute itself arrives as CUSTOMER.DISPUTE.* with
# its own id, and mapping the reversal to dispute_lost would count the disputed amount twice.
_REFUND_TYPES = frozenset(
    {
        "PAYMENT.CAPTURE.REFUNDED",
        "PAYMENT.CAPTURE.REVERSED",
        "PAYMENT.SALE.REFUNDED",
        "PAYMENT.SALE.REVERSED",
    }
)
_OUTCOMES = {
    "RESOLVED_BUYER_FAVOUR": K.DISPUTE_LOST,
    "ACCEPTED": K.DISPUTE_LOST,  # the seller accepted the claim
    "RESOLVED_SELLER_FAVOUR": K.DISPUTE_WON,
    "CANCELED_BY_BUYER": K.DISPUTE_WON,
    "DENIED": K.DISPUTE_WON,  # the claim was denied
    "RESOLVED_WITH_PAYOUT": K.DISPUTE_WON,  # PayPal paid the buyer; the seller keeps the funds
}
_CAPTURE_PATH = re.compile(r"/v2/payments/captures/([A-Za-z0-9-]+)/?$")


def _money(value: object) -> tuple[int | None, str | None]:
    """(minor units, currency) of a v2 ``{value, currency_code}`` or v1 ``{total, currency}``."""
    if not isinstance(value, dict):
        return None, None
    amount = value.get("value", value.get("total"))
    currency = value.get("currency_code", value.get("currency"))
    if amount is None or currency is None:
        return None, None
    code = normalize_currency(currency)
    return major_to_minor(amount, code), code


def _refunded_payment_id(resource: dict[str, Any]) -> str:
    sale_id = resource.get("sale_id")
    if isinstance(sale_id, str) and sale_id:
        return sale_id
    links = resource.get("links")
    for link in links if isinstance(links, list) else []:
        if isinstance(link, dict) and link.get("rel") == "up":
            match = _CAPTURE_PATH.search(str(link.get("href", "")))
            if match:
                return match.group(1)
    capture_id = dig(resource, "supplementary_data", "related_ids", "capture_id")
    if isinstance(capture_id, str) and capture_id:
        return capture_id
    raise PayloadError("PayPal refund names no capture (no 'up' link to a capture)")


def _dispute_events(
    event_type: str, resource: dict[str, Any], webhook: StoredWebhook
) -> list[PaymentEvent]:
    if event_type == "CUSTOMER.DISPUTE.CREATED":
        kind = K.DISPUTE_OPENED
    else:
        outcome = _OUTCOMES.get(str(dig(resource, "dispute_outcome", "outcome_code")))
        if outcome is None:
            return []
        kind = outcome
    dispute_id = require_str(resource, "dispute_id", "resource")
    transactions = resource.get("disputed_transactions")
    payment_ids = [
        t["seller_transaction_id"]
        for t in (transactions if isinstance(transactions, list) else [])
        if isinstance(t, dict) and isinstance(t.get("seller_transaction_id"), str)
    ]
    amount, currency = _money(resource.get("dispute_amount"))
    # One dispute may cover several payments; its amount then belongs to none of them alone.
    share = amount if len(payment_ids) == 1 else None
    return [
        PaymentEvent.of(
            webhook,
            payment_id=payment_id,
            kind=kind,
            amount=share,
            currency=currency,
            dispute_id=dispute_id,
        )
        for payment_id in payment_ids
    ]


def _pid(length: int = 17) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return "".join(_secrets.choice(alphabet) for _ in range(length))


def _iso(unix: int) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def sample_event(event_type: str, now: int, amount: str = "30.00") -> dict[str, Any]:
    """A PayPal event shaped like the real thing (Payments v2, Disputes v1)."""
    api = "https://api.paypal.com"
    capture_id = _pid()
    money = {"currency_code": "USD", "value": amount}
    resource: dict[str, Any]
    if event_type in ("PAYMENT.CAPTURE.REFUNDED", "PAYMENT.CAPTURE.REVERSED"):
        refund_id = _pid()
        resource_type = "refund"
        resource = {
            "id": refund_id,
            "amount": money,
            "seller_payable_breakdown": {
                "gross_amount": money,
                "net_amount": money,
                "total_refunded_amount": money,
            },
            "status": "COMPLETED",
            "create_time": _iso(now - 5),
            "update_time": _iso(now - 5),
            "links": [
                {"href": f"{api}/v2/payments/refunds/{refund_id}", "rel": "self", "method": "GET"},
                {"href": f"{api}/v2/payments/captures/{capture_id}", "rel": "up", "method": "GET"},
            ],
        }
    elif event_type.startswith("PAYMENT.CAPTURE."):
        status = event_type.rsplit(".", 1)[1]
        order_id = _pid()
        resource_type = "capture"
        resource = {
            "id": capture_id,
            "amount": money,
            "final_capture": True,
            "seller_protection": {"status": "ELIGIBLE"},
            "status": status,
            "supplementary_data": {"related_ids": {"order_id": order_id}},
            "create_time": _iso(now - 5),
            "update_time": _iso(now - 5),
            "links": [
                {"href": f"{api}/v2/payments/captures/{capture_id}", "rel": "self"},
                {"href": f"{api}/v2/checkout/orders/{order_id}", "rel": "up", "method": "GET"},
            ],
        }
    elif event_type.startswith("CUSTOMER.DISPUTE."):
        resolved = event_type.endswith("RESOLVED")
        resource_type = "dispute"
        resource = {
            "dispute_id": f"PP-D-{_secrets.randbelow(10**6):06d}",
            "create_time": _iso(now - 86400),
            "update_time": _iso(now - 5),
            "disputed_transactions": [
                {"seller_transaction_id": capture_id, "buyer_transaction_id": _pid()}
            ],
            "reason": "MERCHANDISE_OR_SERVICE_NOT_RECEIVED",
            "status": "RESOLVED" if resolved else "OPEN",
            "dispute_amount": money,
            "dispute_life_cycle_stage": "CHARGEBACK" if resolved else "INQUIRY",
        }
        if resolved:
            resource["dispute_outcome"] = {
                "outcome_code": "RESOLVED_BUYER_FAVOUR",
                "amount_refunded": money,
            }
    else:
        raise PayloadError(f"no PayPal sample for event type {event_type!r}")
    event_id = f"WH-{_pid()}-{_pid()}"
    return {
        "id": event_id,
        "event_version": "1.0",
        "create_time": _iso(now),
        "resource_type": resource_type,
        "resource_version": "2.0",
        "event_type": event_type,
        "summary": f"{event_type} for $ {amount} USD",
        "resource": resource,
        "links": [
            {"href": f"{api}/v1/notifications/webhooks-events/{event_id}", "rel": "self"},
        ],
    }
