"""PayPal REST webhooks.

Offline (default): the RSA signature in the PAYPAL-* headers (``signature``), made with the key
of the certificate at ``PAYPAL-CERT-URL`` (``certificates``: URL policy, bounded fetching,
caching, chain validation). ``webhook_id`` is this receiver's own subscription id, so a delivery
signed for another subscription fails. The transmission time must be within the tolerance in
both directions.

Online (``verification = "online"``): the same local checks, then PayPal's
``verify-webhook-signature`` with an OAuth token from the secrets (``online``).

Options: ``webhook_id`` (required; a list during a migration), ``verification``
(``"offline"`` or ``"online"``), ``trust_store`` (a PEM bundle of trust anchors; default the
system bundle, else certifi's), ``api_base`` (online; default ``https://api-m.paypal.com``).

``payhook send`` cannot simulate PayPal: only PayPal holds the signing key. ``sample_request``
signs only with an injected ``PayPalSampleSigner`` (tests, whose verifier also trusts the test
CA), and otherwise raises PayloadError saying so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from msgspec import Meta

from payhook.core.clock import Clock, system_clock
from payhook.core.model import StoredWebhook, VerifiedEvent, WebhookRequest
from payhook.core.payment import PaymentEvent
from payhook.errors import ConfigError, PayloadError, VerificationError
from payhook.providers.base import (
    Provider,
    ProviderConfig,
    ProviderOptions,
    iso_timestamp,
    parse_json_object,
    require_str,
)
from payhook.providers.paypal.certificates import (
    CertificateCache,
    CertificateChain,
    CertificateFetcher,
    TrustStore,
    check_cert_url,
    default_trust_store_path,
    paypal_public_key,
)
from payhook.providers.paypal.mapping import paypal_payment_events
from payhook.providers.paypal.online import (
    DEFAULT_API_BASE,
    HttpClient,
    HttpResponse,
    PayPalOnlineVerifier,
    UrllibHttpClient,
)
from payhook.providers.paypal.samples import PayPalSampleSigner, sample_delivery, sample_event
from payhook.providers.paypal.signature import (
    ALGORITHM,
    Transmission,
    read_transmission,
    sign_paypal,
    signed_message,
    verify_paypal_signature,
)


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
        fetcher: CertificateFetcher | None = None,
        certificates: CertificateCache | None = None,
        http_client: HttpClient | None = None,
        sample_signer: PayPalSampleSigner | None = None,
    ) -> None:
        """``certificates`` (a configured cache) wins over ``fetcher`` (its transport)."""
        super().__init__(config, clock)
        self.webhook_ids = _webhook_ids(config)
        self.mode = config.option("verification", "offline")
        if self.mode not in ("offline", "online"):
            raise ConfigError(
                f"providers.{config.name}.verification: got {self.mode!r},"
                " expected 'offline' or 'online'"
            )
        self.certificates = certificates or CertificateCache(fetcher, clock=clock)
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
            key = self._validated_key(transmission.cert_url, chain)
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

    def _validated_key(self, url: str, chain: CertificateChain) -> RSAPublicKey:
        try:
            return paypal_public_key(chain, self.trust_store, self.clock())
        except VerificationError as exc:
            # An untrusted chain must not hold a cache slot a genuine one needs.
            self.certificates.reject(url, str(exc))
            raise

    def payment_events(self, webhook: StoredWebhook) -> list[PaymentEvent]:
        return paypal_payment_events(webhook)

    def sample_request(self, event_type: str | None = None) -> WebhookRequest:
        if self.sample_signer is None:
            raise PayloadError(
                "PayPal signs deliveries with its own private key, so payhook cannot simulate"
                " one; use the webhook simulator in PayPal's developer dashboard"
            )
        event_type = event_type or self.sample_event_types[0]
        return sample_delivery(
            self.sample_signer, self.webhook_ids[0], event_type, int(self.clock())
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


__all__ = [
    "ALGORITHM",
    "DEFAULT_API_BASE",
    "CertificateCache",
    "CertificateChain",
    "CertificateFetcher",
    "HttpClient",
    "HttpResponse",
    "PayPalOnlineVerifier",
    "PayPalOptions",
    "PayPalProvider",
    "PayPalSampleSigner",
    "Transmission",
    "TrustStore",
    "UrllibHttpClient",
    "paypal_payment_events",
    "read_transmission",
    "sample_event",
    "sign_paypal",
    "signed_message",
    "verify_paypal_signature",
]
