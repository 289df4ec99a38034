"""A generic HMAC provider, configured entirely from its TOML section.

``signature_header`` holds ``signature_prefix`` + the ``encoding`` (hex or base64) of
HMAC-``algorithm`` over ``signed_content``, keyed with each secret's UTF-8 bytes. The template
``signed_content`` (default ``{body}``) may use ``{body}`` (the raw bytes, never decoded),
``{timestamp}`` (the ``timestamp_header`` value, checked against the tolerance both ways) and
``{header:Name}``; ``{{`` and ``}}`` are literal braces.

Event id: ``event_id_header``, else ``event_id_path`` (dotted JSON path), else the SHA-256 of
the body (an identical redelivery dedups). Event type: ``event_type_header``, else
``event_type_path`` (default ``type``), else ``unknown``. An id or type header must be signed
(``{header:Name}`` in ``signed_content``): whoever captured one delivery could otherwise re-send
it under another id or type. ``unsigned_identity = true`` accepts such headers anyway; the
webhook's identity is then the body's digest (and the type), so a re-sent body is a duplicate
and the same id with another body is stored as a conflicting delivery.

Optional payment mapping: ``payment_id_path``, ``kinds`` (event type -> canonical kind),
``amount_path``, ``currency_path`` and ``amount_units`` (``minor`` or ``major``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets as _secrets
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from payhook.core.clock import Clock, system_clock
from payhook.core.model import StoredWebhook, VerifiedEvent, WebhookRequest, body_digest
from payhook.core.money import major_to_minor, minor_amount, normalize_currency
from payhook.core.payment import PaymentEvent, PaymentEventKind
from payhook.errors import ConfigError, PayloadError, VerificationError
from payhook.options import convert
from payhook.providers.base import (
    Provider,
    ProviderConfig,
    ProviderOptions,
    any_signature_matches,
    parse_json_object,
)

ALGORITHMS: dict[str, Callable[..., Any]] = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha512": hashlib.sha512,
}
NonEmpty = Annotated[str, Meta(min_length=1, pattern=r"\S")]


def _lower(value: str | None) -> str | None:
    return value.strip().lower() if value else None


class GenericOptions(ProviderOptions, frozen=True):
    signature_header: NonEmpty
    algorithm: Literal["sha1", "sha256", "sha512"] = "sha256"
    encoding: Literal["hex", "base64"] = "hex"
    signature_prefix: str = ""
    timestamp_header: NonEmpty | None = None
    signed_content: NonEmpty = "{body}"
    event_id_header: NonEmpty | None = None
    event_id_path: NonEmpty | None = None
    event_type_header: NonEmpty | None = None
    event_type_path: NonEmpty | None = None
    #: Trust an event id or type header that ``signed_content`` does not sign. Off: a captured
    #: delivery re-sent under another id or type must not count as another event.
    unsigned_identity: bool = False
    payment_id_path: NonEmpty | None = None
    kinds: dict[str, PaymentEventKind] = msgspec.field(default_factory=dict)
    amount_path: NonEmpty | None = None
    currency_path: NonEmpty | None = None
    amount_units: Literal["minor", "major"] | None = None


_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")

# A template part: literal bytes, or a placeholder ("body" | "timestamp" | "header", name).
Part = bytes | tuple[str, str]


def parse_template(template: str, where: str) -> tuple[Part, ...]:
    """Split ``signed_content`` into literal bytes and placeholders; ConfigError if malformed."""
    parts: list[Part] = []
    literal = ""
    pos = 0
    for match in _TOKEN.finditer(template):
        literal += template[pos : match.start()]
        pos = match.end()
        token, name = match.group(0), match.group(1)
        if token in ("{{", "}}"):
            literal += token[0]
            continue
        if name is None:
            raise ConfigError(f"{where}: got a lone {token!r}, expected {{{{ or }}}} for a brace")
        if literal:
            parts.append(literal.encode())
            literal = ""
        header = name.removeprefix("header:").strip()
        if name in ("body", "timestamp"):
            parts.append((name, ""))
        elif name.startswith("header:") and header:
            parts.append(("header", header.lower()))
        else:
            raise ConfigError(
                f"{where}: got placeholder {{{name}}}, expected {{body}}, {{timestamp}}"
                " or {header:Name}"
            )
    literal += template[pos:]
    if literal:
        parts.append(literal.encode())
    return tuple(parts)


def _path_value(data: Any, path: str) -> Any:
    for key in path.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _set_path(data: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for key in parents:
        if not isinstance(data.get(key), dict):
            data[key] = {}
        data = data[key]
    data[last] = value


def _scalar(value: Any) -> str | None:
    """A JSON id: a non-empty string or an integer (not a bool)."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


class GenericHmacProvider(Provider):
    type_name = "generic"
    Options = GenericOptions

    def __init__(self, config: ProviderConfig, clock: Clock = system_clock) -> None:
        super().__init__(config, clock)
        where = f"providers.{config.name}"
        options = convert(config.options, GenericOptions, where)
        self.signature_header = options.signature_header.strip().lower()
        self.algorithm = options.algorithm
        self.encoding = options.encoding
        self.signature_prefix = options.signature_prefix
        self.timestamp_header = _lower(options.timestamp_header)
        self.parts = parse_template(options.signed_content, f"{where}.signed_content")
        self.event_id_header = _lower(options.event_id_header)
        self.event_id_path = options.event_id_path
        self.event_type_header = _lower(options.event_type_header)
        self.event_type_path = options.event_type_path
        self.payment_id_path = options.payment_id_path
        self.amount_path = options.amount_path
        self.currency_path = options.currency_path
        self.amount_units = options.amount_units or "minor"
        self.kinds = dict(options.kinds)
        self._check_consistency(where, options)
        if not self.event_type_header and not self.event_type_path:
            self.event_type_path = "type"
        signed = {part for part in self.parts if isinstance(part, tuple)}
        #: Whether the event id (type) header is covered by the signature.
        self.id_signed = ("header", self.event_id_header) in signed
        self.type_signed = ("header", self.event_type_header) in signed

    # -- configuration ---------------------------------------------------------------------

    def _check_consistency(self, where: str, options: GenericOptions) -> None:
        signed = {part for part in self.parts if isinstance(part, tuple)}
        if ("body", "") not in signed:
            raise ConfigError(
                f"{where}.signed_content: got a template without {{body}},"
                " expected one that signs the body"
            )
        stamp = ("header", self.timestamp_header)
        timestamp_signed = ("timestamp", "") in signed or stamp in signed
        if ("timestamp", "") in signed and not self.timestamp_header:
            raise ConfigError(
                f"{where}.signed_content: got {{timestamp}} without timestamp_header,"
                " expected timestamp_header to name the header"
            )
        if self.timestamp_header and not timestamp_signed:
            # An unsigned timestamp can be rewritten by anyone, so checking it proves nothing.
            raise ConfigError(
                f"{where}.timestamp_header: got a timestamp that signed_content does not sign,"
                " expected {timestamp} in signed_content"
            )
        for kind in ("id", "type"):
            header = getattr(options, f"event_{kind}_header")
            if header and getattr(options, f"event_{kind}_path"):
                raise ConfigError(
                    f"{where}: got both event_{kind}_header and event_{kind}_path,"
                    " expected at most one"
                )
            unsigned = header and ("header", header.strip().lower()) not in signed
            if unsigned and not options.unsigned_identity:
                # Whoever captured one delivery could re-send it under another id or type.
                raise ConfigError(
                    f"{where}.event_{kind}_header: got a header that signed_content does"
                    f" not sign, expected {{header:{header}}} in signed_content (or"
                    " unsigned_identity = true to accept the risk)"
                )
        mapping = (self.amount_path, self.currency_path, options.amount_units)
        if not self.payment_id_path and (self.kinds or any(mapping)):
            raise ConfigError(
                f"{where}: got a payment mapping without payment_id_path,"
                " expected payment_id_path to name the payment id"
            )
        if self.payment_id_path and not self.kinds:
            raise ConfigError(
                f"{where}.kinds: got no event types, expected a table mapping event types to kinds"
            )
        if self.amount_units == "major" and not self.currency_path:
            raise ConfigError(
                f"{where}.amount_units: got 'major' without currency_path,"
                " expected currency_path (major units need the currency's exponent)"
            )

    # -- signing ---------------------------------------------------------------------------

    def signed_content(self, body: bytes, headers: Mapping[str, str]) -> bytes:
        """The bytes the sender signed; VerificationError when a signed header is missing."""
        chunks: list[bytes] = []
        for part in self.parts:
            if isinstance(part, bytes):
                chunks.append(part)
            elif part[0] == "body":
                chunks.append(body)
            else:
                name = self.timestamp_header if part[0] == "timestamp" else part[1]
                value = headers.get(name or "")
                if value is None:
                    raise VerificationError(f"missing signed header {name}")
                chunks.append(value.encode())
        return b"".join(chunks)

    def mac(self, secret: str, content: bytes) -> bytes:
        return hmac.digest(secret.encode(), content, ALGORITHMS[self.algorithm])

    def sign(self, secret: str, content: bytes) -> str:
        """The signature header value for ``content`` (prefix included)."""
        mac = self.mac(secret, content)
        encoded = mac.hex() if self.encoding == "hex" else base64.b64encode(mac).decode()
        return self.signature_prefix + encoded

    def _received(self, header: str) -> bytes:
        value = header.strip()
        if not value.startswith(self.signature_prefix):
            raise VerificationError("signature lacks the expected prefix")
        value = value[len(self.signature_prefix) :]
        try:
            if self.encoding == "hex":
                return binascii.unhexlify(value)
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise VerificationError(f"signature is not {self.encoding}") from exc

    # -- the provider interface ------------------------------------------------------------

    def verify(self, request: WebhookRequest) -> list[VerifiedEvent]:
        header = request.header(self.signature_header)
        if not header:
            raise VerificationError(f"missing {self.signature_header} header")
        timestamp: int | None = None
        if self.timestamp_header:
            raw = request.header(self.timestamp_header)
            if raw is None or not _TIMESTAMP.fullmatch(raw):
                raise VerificationError(f"{self.timestamp_header} is missing or not a unix time")
            timestamp = int(raw)
        received = self._received(header)
        content = self.signed_content(request.body, request.headers)
        expected = [self.mac(secret, content) for secret in self.config.secrets]
        if not any_signature_matches(expected, [received]):
            raise VerificationError("no signature matches")
        if timestamp is not None:
            self.check_timestamp(timestamp)
        event_id, event_type = self._identify(request)
        dedup_key = None
        if self.event_id_header and not self.id_signed:
            # The id is not signed (unsigned_identity): the signed body identifies the event,
            # with the type when that is unsigned too.
            digest = body_digest(request.body)
            dedup_key = digest if self.type_signed else f"{event_type}\x00{digest}"
        return [
            VerifiedEvent(
                event_id=event_id,
                event_type=event_type,
                payload=request.body,
                occurred_at=float(timestamp) if timestamp is not None else None,
                dedup_key=dedup_key,
            )
        ]

    def _identify(self, request: WebhookRequest) -> tuple[str, str]:
        body: dict[str, Any] | None = None
        if self.event_id_path or self.event_type_path:
            body = parse_json_object(request.body)
        if self.event_id_header:
            event_id = request.header(self.event_id_header) or None
        elif self.event_id_path:
            event_id = _scalar(_path_value(body, self.event_id_path))
        else:
            event_id = body_digest(request.body)
        if event_id is None:
            source = self.event_id_header or f"body.{self.event_id_path}"
            raise PayloadError(f"no event id at {source}")
        if self.event_type_header:
            event_type = request.header(self.event_type_header)
        else:
            event_type = _scalar(_path_value(body, self.event_type_path or "type"))
        return event_id, event_type or "unknown"

    def payment_events(self, webhook: StoredWebhook) -> list[PaymentEvent]:
        kind = self.kinds.get(webhook.event_type)
        if kind is None or not self.payment_id_path:
            return []
        body = parse_json_object(webhook.payload)
        payment_id = _scalar(_path_value(body, self.payment_id_path))
        if payment_id is None:
            raise PayloadError(f"no payment id at body.{self.payment_id_path}")
        currency = None
        if self.currency_path:
            raw_currency = _path_value(body, self.currency_path)
            currency = normalize_currency(raw_currency) if raw_currency is not None else None
        amount = None
        raw_amount = _path_value(body, self.amount_path) if self.amount_path else None
        if raw_amount is not None:
            if self.amount_units == "minor":
                amount = minor_amount(raw_amount)
            elif currency is None:
                raise PayloadError(f"a major-unit amount needs a currency at {self.currency_path}")
            else:
                amount = major_to_minor(raw_amount, currency)
        return [
            PaymentEvent.of(
                webhook,
                payment_id=payment_id,
                kind=kind,
                amount=amount,
                currency=currency,
            )
        ]

    def sample_request(self, event_type: str | None = None) -> WebhookRequest:
        event_type = event_type or next(iter(self.kinds), "payment.succeeded")
        now = int(self.clock())
        event_id = f"evt_{_secrets.token_hex(12)}"
        payload: dict[str, Any] = {}
        headers = {"content-type": "application/json"}
        if self.event_id_header:
            headers[self.event_id_header] = event_id
        elif self.event_id_path:
            _set_path(payload, self.event_id_path, event_id)
        if self.event_type_header:
            headers[self.event_type_header] = event_type
        elif self.event_type_path:
            _set_path(payload, self.event_type_path, event_type)
        if self.payment_id_path:
            _set_path(payload, self.payment_id_path, f"pay_{_secrets.token_hex(8)}")
        if self.currency_path:
            _set_path(payload, self.currency_path, "USD")
        if self.amount_path:
            _set_path(payload, self.amount_path, "20.00" if self.amount_units == "major" else 2000)
        if self.timestamp_header:
            headers[self.timestamp_header] = str(now)
        for part in self.parts:
            if isinstance(part, tuple) and part[0] == "header":
                headers.setdefault(part[1], _secrets.token_hex(8))
        body = json.dumps(payload, separators=(",", ":")).encode()
        content = self.signed_content(body, headers)
        headers[self.signature_header] = self.sign(self.config.secrets[0], content)
        return WebhookRequest(body=body, headers=headers)
