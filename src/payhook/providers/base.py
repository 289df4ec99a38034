"""The provider interface: raw bytes, headers and query in; verified events out.

A provider module is pure: no I/O, no clock of its own, no logging of payloads. Verification
turns every malformed, missing, expired or wrong input into one ``VerificationError``; a body
that is authentic but unusable raises ``PayloadError``.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar

from msgspec import Meta

from payhook.core.clock import Clock, system_clock
from payhook.core.model import IngestOutcome, StoredWebhook, VerifiedEvent, WebhookRequest
from payhook.core.payment import PaymentEvent
from payhook.errors import ConfigError, PayloadError, VerificationCode, VerificationError
from payhook.options import Options, convert

DEFAULT_TOLERANCE_SECONDS = 300


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """One ``[providers.<name>]`` section (or the same JSON object in Secrets Manager)."""

    name: str
    provider_type: str  # the section's ``type`` (its name when it has none)
    secrets: tuple[str, ...] = ()
    tolerance_seconds: int | None = None  # None: the provider's default
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, name: str, section: dict[str, Any]) -> ProviderConfig:
        if not isinstance(section, dict):
            raise ConfigError(f"providers.{name}: got {type(section).__name__}, expected a table")
        options = dict(section)
        provider_type = options.pop("type", name)
        secrets = options.pop("secrets", [])
        if isinstance(secrets, str):
            secrets = [secrets]
        if not isinstance(secrets, list) or not all(isinstance(s, str) and s for s in secrets):
            raise ConfigError(f"providers.{name}.secrets: expected a list of non-empty strings")
        tolerance = options.pop("tolerance_seconds", None)
        if tolerance is not None and (
            isinstance(tolerance, bool) or not isinstance(tolerance, int) or tolerance <= 0
        ):
            raise ConfigError(
                f"providers.{name}.tolerance_seconds: got {tolerance!r},"
                " expected a positive integer"
            )
        return cls(name, str(provider_type), tuple(secrets), tolerance, options)

    def check_secrets(self, min_bytes: int) -> None:
        """Refuse blank secrets, secrets with surrounding whitespace (a copy-paste slip) and
        secrets shorter than ``min_bytes``; the message never shows a secret."""
        for index, secret in enumerate(self.secrets):
            where = f"providers.{self.name}.secrets[{index}]"
            if not secret.strip():
                raise ConfigError(f"{where}: got a blank secret")
            if secret != secret.strip():
                raise ConfigError(f"{where}: got a secret with leading or trailing whitespace")
            if len(secret.encode()) < min_bytes:
                raise ConfigError(
                    f"{where}: got {len(secret.encode())} bytes, expected at least {min_bytes}"
                )

    def option(self, key: str, default: Any = None) -> Any:
        return self.options.get(key, default)

    def required_option(self, key: str) -> Any:
        value = self.options.get(key)
        if value in (None, ""):
            raise ConfigError(
                f"providers.{self.name}.{key} is required for type {self.provider_type!r}"
            )
        return value


@dataclass(frozen=True, slots=True)
class ProviderResponse:
    """What a provider is answered: status, body, content type and further headers."""

    status: int
    body: bytes
    media_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    #: Why verification failed, when it did (metrics and logs; never sent).
    verification: VerificationCode | None = None


def json_response(status: int, data: Any) -> ProviderResponse:
    return ProviderResponse(status, canonical_json(data))


def canonical_json(data: Any) -> bytes:
    """Compact, ASCII-only JSON: one event of a batch as it is stored, and every answer.

    The same value always gives the same bytes, and a lone surrogate (which JSON can carry as
    an escape) stays an escape, so the bytes are always encodable.
    """
    return _COMPACT.encode(data).encode()


# Built once: json.dumps with options builds an encoder on every call. No cycle check: what
# json.loads makes, and what providers answer, has no cycles.
_COMPACT = json.JSONEncoder(separators=(",", ":"), check_circular=False)


class ProviderOptions(Options, frozen=True):
    """A provider's own options besides ``type``, ``secrets`` and ``tolerance_seconds``:
    none, unless the provider declares a subclass."""


#: An API credential: at least 16 characters, not blank (masked by ``config check``).
ApiSecret = Annotated[str, Meta(min_length=16, pattern=r"^\S+$")]
#: An API base URL (tests point it at a local fake).
ApiBase = Annotated[str, Meta(pattern=r"^https?://[^\s]+$")]


class EventsApiOptions(ProviderOptions, frozen=True, kw_only=True):
    """Options of a provider with an events API (``payhook backfill``, ``[reconcile]``)."""

    #: A key that may read the provider's events; none disables backfill for the provider.
    api_key: ApiSecret | None = None
    #: Default: the provider's live API.
    api_base: ApiBase | None = None


class Provider(ABC):
    """Base class of every provider. Subclasses set ``provider_type`` and implement the hooks."""

    provider_type: ClassVar[str]
    #: The provider's own options; an unknown or mistyped one is a ConfigError.
    Options: ClassVar[type[ProviderOptions]] = ProviderOptions
    #: The shortest secret configuration may give (bytes): shorter ones are refused.
    min_secret_bytes: ClassVar[int] = 16
    #: The largest body this provider can send, when it is far below the server's limit and
    #: its body must be parsed before a signature can be checked (Adyen): larger is a 413.
    max_body_bytes: ClassVar[int | None] = None
    #: HTTP status for a request that fails verification (GoCardless wants 498).
    rejection_status: ClassVar[int] = 401
    #: Event types ``payhook send`` can produce; the first is the default.
    sample_event_types: ClassVar[tuple[str, ...]] = ()
    #: True when verification needs at least one secret.
    requires_secrets: ClassVar[bool] = True
    #: True when ``verify`` may block on the network (PayPal fetches certificates): the server
    #: then runs it off the event loop.
    verify_blocks: ClassVar[bool] = False
    #: Timestamp tolerance (both directions) when the section does not set tolerance_seconds.
    default_tolerance_seconds: ClassVar[int] = DEFAULT_TOLERANCE_SECONDS

    def __init__(self, config: ProviderConfig, clock: Clock = system_clock) -> None:
        if self.requires_secrets and not config.secrets:
            raise ConfigError(f"providers.{config.name}: at least one secret is required")
        convert(config.options, self.Options, f"providers.{config.name}")
        self.config = config
        self.name = config.name
        self.clock = clock
        self.tolerance_seconds = config.tolerance_seconds or self.default_tolerance_seconds

    @abstractmethod
    def verify(self, request: WebhookRequest) -> list[VerifiedEvent]:
        """Authenticate a delivery and split it into events (several for a batch)."""

    @abstractmethod
    def payment_events(self, webhook: StoredWebhook) -> list[PaymentEvent]:
        """Canonical payment events of one stored event (empty when it is not about a payment)."""

    @abstractmethod
    def sample_request(self, event_type: str | None = None) -> WebhookRequest:
        """A realistic delivery signed with the first configured secret (``payhook send``)."""

    def acknowledge(self, outcomes: list[IngestOutcome]) -> ProviderResponse:
        """The response the provider expects once its events are stored."""
        return json_response(
            200,
            {
                "webhookId": outcomes[0].webhook_id if len(outcomes) == 1 else None,
                "duplicate": all(o.duplicate for o in outcomes),
                "events": [
                    {"webhookId": o.webhook_id, "eventId": o.event_id, "duplicate": o.duplicate}
                    for o in outcomes
                ],
            },
        )

    def challenge(self, request: WebhookRequest) -> ProviderResponse | None:
        """Answer a provider's GET verification challenge, if it has one."""
        return None

    def check_timestamp(self, timestamp: int) -> None:
        """Reject timestamps too old OR too far in the future (replay protection)."""
        check_tolerance(timestamp, self.clock(), self.tolerance_seconds)


def check_tolerance(timestamp: float, now: float, tolerance: int) -> None:
    """A signed timestamp must lie within ``tolerance`` seconds of now, in both directions."""
    if timestamp < now - tolerance:
        raise VerificationError("timestamp is older than the tolerance", code="timestamp")
    if timestamp > now + tolerance:
        raise VerificationError("timestamp is too far in the future", code="timestamp")


def parse_json_object(body: bytes) -> dict[str, Any]:
    """Decode an authentic body; anything but a JSON object is a PayloadError."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # also UnicodeDecodeError, the int-digit limit
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else type(exc).__name__
        raise PayloadError(f"body is not valid JSON: {reason}") from exc
    if not isinstance(data, dict):
        raise PayloadError(f"body must be a JSON object, got {type(data).__name__}")
    return data


def require_str(data: dict[str, Any], key: str, where: str = "body") -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise PayloadError(f"{where}.{key} is missing or not a string")
    return value


_FROM_ISO = datetime.fromisoformat
#: The last second datetime can show (9999-12-31T23:59:59Z).
MAX_UNIX_TIME = 253_402_300_799


def unix_time(value: object) -> float | None:
    """Unix seconds of a JSON integer time; None when absent, not an integer (a bool is not)
    or outside years 1970..9999 (a signed body may still carry a 400-digit number)."""
    if type(value) is int and 0 <= value <= MAX_UNIX_TIME:
        return float(value)
    return None


def iso_timestamp(value: object, *, naive_as_utc: bool = True) -> float | None:
    """Unix seconds of an ISO 8601 time; None when absent or unreadable.

    Provider event times only order a payment's events, so an unreadable one is not an error.
    A time without an offset is taken as UTC unless ``naive_as_utc`` is False (then None).
    """
    if not isinstance(value, str):
        return None
    try:
        moment = _FROM_ISO(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        if not naive_as_utc:
            return None
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def dig(data: Any, *path: str) -> Any:
    """Follow a path of keys through nested dicts; None when any step is missing."""
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data
