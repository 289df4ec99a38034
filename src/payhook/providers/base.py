"""The provider interface: raw bytes, headers and query in; verified events out.

A provider module is pure: no I/O, no clock of its own, no logging of payloads. Verification
turns every malformed, missing, expired or wrong input into one ``VerificationError``; a body
that is authentic but unusable raises ``PayloadError``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from payhook.core.clock import Clock, system_clock
from payhook.core.model import IngestOutcome, StoredWebhook, VerifiedEvent, WebhookRequest
from payhook.core.payment import PaymentEvent
from payhook.errors import ConfigError, PayloadError, VerificationError
from payhook.options import Options, convert

DEFAULT_TOLERANCE_SECONDS = 300


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """One ``[providers.<name>]`` section (or the same JSON object in Secrets Manager)."""

    name: str
    type: str
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
            raise ConfigError(f"providers.{self.name}.{key} is required for type {self.type!r}")
        return value


@dataclass(frozen=True, slots=True)
class ProviderResponse:
    """What a provider is answered: status, body, content type and further headers."""

    status: int
    body: bytes
    media_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


def json_response(status: int, data: Any) -> ProviderResponse:
    return ProviderResponse(status, _COMPACT.encode(data).encode())


# json.dumps with options builds an encoder on every call; this is every acknowledgment.
_COMPACT = json.JSONEncoder(separators=(",", ":"))


class ProviderOptions(Options, frozen=True):
    """A provider's own options besides ``type``, ``secrets`` and ``tolerance_seconds``:
    none, unless the provider declares a subclass."""


class Provider(ABC):
    """Base class of every provider. Subclasses set ``type_name`` and implement the hooks."""

    type_name: ClassVar[str]
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

    # helpers shared by the HMAC providers -------------------------------------------------

    def check_timestamp(self, timestamp: int) -> None:
        """Reject timestamps too old OR too far in the future (replay protection)."""
        check_tolerance(timestamp, self.clock(), self.tolerance_seconds)


class HmacProvider(Provider):
    """A provider whose secrets are HMAC-SHA256 keys, as UTF-8 text, signing the body (or a
    provider-specific text around it): ``self.keys``, prepared once."""

    def __init__(self, config: ProviderConfig, clock: Clock = system_clock) -> None:
        super().__init__(config, clock)
        self.keys = HmacKeys.of_secrets(config)


def check_tolerance(timestamp: float, now: float, tolerance: int) -> None:
    """A signed timestamp must lie within ``tolerance`` seconds of now, in both directions."""
    if timestamp < now - tolerance:
        raise VerificationError("timestamp is older than the tolerance")
    if timestamp > now + tolerance:
        raise VerificationError("timestamp is too far in the future")


def _bytes(value: bytes | str) -> bytes:
    # surrogatepass: a stray surrogate in a header compares unequal instead of raising.
    return value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value


def any_signature_matches(expected: Sequence[bytes | str], received: Sequence[bytes | str]) -> bool:
    """Constant-time comparison of every expected signature with every received one."""
    if len(expected) == 1 and len(received) == 1:
        # One secret, one signature (the usual case): the one comparison, without the loops,
        # and as given when both are bytes or both ASCII text (compare_digest takes those;
        # callers pass one type, as raising costs more than encoding).
        try:
            return hmac.compare_digest(expected[0], received[0])  # type: ignore[arg-type]
        except TypeError:  # bytes with text, or non-ASCII text: as bytes, as below
            return hmac.compare_digest(_bytes(expected[0]), _bytes(received[0]))
    matched = False
    for candidate in expected:
        a = _bytes(candidate)
        for signature in received:
            # No early exit: every pair is compared, so timing says nothing about which matched.
            matched |= hmac.compare_digest(a, _bytes(signature))
    return matched


_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


class HmacKeys:
    """HMAC-SHA256 under each of several keys (rotation), prepared once (RFC 2104).

    ``hmac.digest`` sets OpenSSL's HMAC up afresh on every call; here each key's padded blocks
    are hashed once, and a message costs two copies of prepared SHA-256 states: half the time.
    ``prefix`` is signed ahead of every message (Square's notification URL).
    ``digests(m)[i]`` is ``hmac.digest(keys[i], prefix + m, "sha256")``.
    """

    __slots__ = ("_states",)

    def __init__(self, keys: Iterable[bytes], prefix: bytes = b"") -> None:
        states = []
        for key in keys:
            if len(key) > 64:  # longer than a block: the key is hashed first
                key = hashlib.sha256(key).digest()
            key = key.ljust(64, b"\0")
            inner = hashlib.sha256(key.translate(_IPAD))
            inner.update(prefix)
            states.append((inner, hashlib.sha256(key.translate(_OPAD))))
        self._states = tuple(states)

    @classmethod
    def of_secrets(cls, config: ProviderConfig, prefix: bytes = b"") -> HmacKeys:
        """The configured secrets, as UTF-8, in order."""
        try:
            return cls([secret.encode() for secret in config.secrets], prefix)
        except UnicodeEncodeError:
            raise ConfigError(f"providers.{config.name}.secrets: not UTF-8 text") from None

    def __len__(self) -> int:
        return len(self._states)

    def digests(self, message: bytes) -> list[bytes]:
        """The message's HMAC under every key, in order (one call per message, not one per
        key: this is on every verification)."""
        if len(self._states) == 1:  # one secret, the usual case: no loop (a fifth of the cost)
            inner, outer = self._states[0]
            return [_finish(inner, outer, message).digest()]
        return [_finish(inner, outer, message).digest() for inner, outer in self._states]

    def hexdigests(self, message: bytes) -> list[str]:
        """As digests, in lower-case hex."""
        if len(self._states) == 1:
            inner, outer = self._states[0]
            return [_finish(inner, outer, message).hexdigest()]
        return [_finish(inner, outer, message).hexdigest() for inner, outer in self._states]


def _finish(inner: Any, outer: Any, message: bytes) -> Any:
    """The outer hash of one prepared key over ``message``. hashlib, not hmac: below 2 KiB
    neither releases the GIL (hmac.digest always does, and taking it back waits on the event
    loop and the writer in the server)."""
    inner = inner.copy()
    inner.update(message)
    outer = outer.copy()
    outer.update(inner.digest())
    return outer


_DECODER = json.JSONDecoder()
_SCAN: Callable[[str, int], tuple[Any, int]] = _DECODER.scan_once  # type: ignore[attr-defined]


def parse_json_object(body: bytes) -> dict[str, Any]:
    """Decode an authentic body; anything but a JSON object is a PayloadError."""
    try:
        # UTF-8 first: json.loads(bytes) sniffs for UTF-16/32 on every call (~1 us). Bodies
        # that are not plainly UTF-8 JSON (a BOM, UTF-16/32) still take json.loads's general
        # path, so what is accepted does not change.
        if body[:1] in (b"{", b"[") and body[1:2] != b"\x00":
            text = body.decode()
            # The scanner alone; only a body with something after its value (whitespace, or
            # extra data to reject) needs the decoder's end-of-text rules.
            data, end = _SCAN(text, 0)
            if end != len(text):
                data = _DECODER.decode(text)
        else:
            data = json.loads(body)
    except StopIteration as exc:  # the scanner's "no value here" (decode says Expecting value)
        raise PayloadError("body is not valid JSON: Expecting value") from exc
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
