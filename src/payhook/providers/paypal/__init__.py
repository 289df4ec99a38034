"""PayPal REST webhooks.

Offline (default): the RSA signature in the PAYPAL-* headers (``signature``), made with the key
of the certificate at ``PAYPAL-CERT-URL`` (``certificates``: URL policy, bounded fetching,
caching, chain validation). ``webhook_id`` is this receiver's own subscription id, so a delivery
signed for another subscription fails. The transmission time must be within the tolerance in
both directions. Online (``verification = "online"``): the same local checks, then PayPal's
``verify-webhook-signature`` with an OAuth token from the secrets (``online``).

``payhook send`` cannot simulate PayPal: only PayPal holds the signing key. ``sample_request``
signs the samples (``payhook/samples/paypal``) only with an injected ``PayPalSampleSigner``
(tests, whose verifier also trusts the test CA), and otherwise raises PayloadError saying so.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from msgspec import Meta

from payhook.core.clock import Clock, system_clock
from payhook.core.model import StoredWebhook, VerifiedEvent, WebhookRequest
from payhook.core.payment import PaymentEvent
from payhook.errors import ConfigError, PayloadError, VerificationError
from payhook.providers.base import (
    ApiSecret,
    Provider,
    ProviderConfig,
    ProviderOptions,
    canonical_json,
)
from payhook.providers.events import EventFields
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
from payhook.providers.paypal.signature import (
    ALGORITHM,
    PayPalSampleSigner,
    Transmission,
    read_transmission,
    sign_paypal,
    signed_message,
    verify_paypal_signature,
)
from payhook.providers.samples import family_sample

_Id = Annotated[str, Meta(min_length=1)]
EVENT_FIELDS = EventFields("id", "event_type", ("create_time",))


class PayPalOptions(ProviderOptions, frozen=True):
    #: This receiver's webhook id (a list while migrating from one webhook to another).
    webhook_id: _Id | Annotated[list[_Id], Meta(min_length=1)]
    verification: Literal["offline", "online"] = "offline"
    #: A PEM bundle of trust anchors; default the system bundle, else certifi's.
    trust_store: str | None = None
    #: Online verification: PayPal's REST API, where the client credentials are sent.
    api_base: str = DEFAULT_API_BASE
    #: Backfill: the REST app's client credentials (OAuth client credentials grant).
    client_id: ApiSecret | None = None
    client_secret: ApiSecret | None = None


class PayPalProvider(Provider):
    Options = PayPalOptions
    provider_type = "paypal"
    requires_secrets = False  # offline verification needs a webhook id, not a secret
    verify_blocks = True  # certificate fetches (first use) and online verification
    sample_event_types = (
        "PAYMENT.CAPTURE.COMPLETED",
        "PAYMENT.CAPTURE.PENDING",
        "PAYMENT.CAPTURE.DENIED",
        "PAYMENT.CAPTURE.DECLINED",
        "PAYMENT.CAPTURE.REFUNDED",
        "PAYMENT.CAPTURE.REVERSED",
        "PAYMENT.SALE.REFUNDED",
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
        super().__init__(config, clock)  # the options are checked against PayPalOptions
        ids = config.option("webhook_id")
        self.webhook_ids: tuple[str, ...] = (ids,) if isinstance(ids, str) else tuple(ids)
        self.mode = config.option("verification", "offline")
        self.certificates = certificates or CertificateCache(fetcher, clock=clock)
        self._trust_store = trust_store
        path = None if trust_store else config.option("trust_store")
        if path and not Path(path).is_file():
            raise ConfigError(f"providers.{config.name}.trust_store: no file at {path!r}")
        if not path and trust_store is None and self.mode == "offline":
            path = default_trust_store_path()
        self._trust_store_path = path
        self.online: PayPalOnlineVerifier | None = None
        if self.mode == "online":
            self.online = PayPalOnlineVerifier(
                http_client or UrllibHttpClient(), _api_base(config), _credentials(config), clock
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
        return [EVENT_FIELDS.event(request.body)]

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
        now = int(self.clock())
        # A type without a sample of its own takes its family's (a denied capture, the
        # declined one's: v2 captures have no status DENIED).
        event = family_sample(
            "paypal",
            event_type or self.sample_event_types[0],
            now,
            type_key="event_type",
            amount="30.00",
            refunded="30.00",
        )
        body = canonical_json(event)
        time = datetime.fromtimestamp(now, UTC).isoformat().replace("+00:00", "Z")
        return self.sample_signer.request(body, self.webhook_ids[0], time)


def _api_base(config: ProviderConfig) -> str:
    api_base = str(config.option("api_base", DEFAULT_API_BASE))
    try:
        check_cert_url(api_base)  # the same rule: https on paypal.com, where credentials go
    except VerificationError as exc:
        raise ConfigError(f"providers.{config.name}.api_base: {exc}") from exc
    return api_base


def _credentials(config: ProviderConfig) -> list[tuple[str, str]]:
    pairs = [(id_, secret) for id_, _, secret in (s.partition(":") for s in config.secrets)]
    if not pairs or not all(client_id and client_secret for client_id, client_secret in pairs):
        raise ConfigError(
            f'providers.{config.name}.secrets: online verification needs "client_id:client_secret"'
            " entries"
        )
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
    "sign_paypal",
    "signed_message",
    "verify_paypal_signature",
]
