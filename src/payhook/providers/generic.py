"""A generic HMAC provider, configured entirely from its TOML section.

``signature_header`` holds ``signature_prefix`` + the ``encoding`` (hex or base64) of
HMAC-``algorithm`` over ``signed_content``, keyed with each secret's UTF-8 bytes. The template
``signed_content`` (default ``{body}``) may use ``{body}`` (the raw bytes, never decoded),
``{timestamp}`` (the ``timestamp_header`` value, checked against the tolerance both ways) and
``{header:Name}``; ``{{`` and ``}}`` are literal braces.

Event id: ``event_id_header``, else ``event_id_path`` (dotted JSON path), else the SHA-256 of
the body (an identical redelivery dedups). Event type: ``event_type_header``, else
``event_type_path`` (default ``type``), else ``unknown``. An id taken from a header that is not
signed can be changed by whoever replays a captured request: sign it or use a timestamp.

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
from typing import Any

from payhook.core.clock import Clock, system_clock
from payhook.core.model import StoredWebhook, VerifiedEvent, WebhookRequest
from payhook.core.money import major_to_minor, minor_amount, normalize_currency
from payhook.core.payment import PaymentEvent, PaymentEventKind
from payhook.errors import ConfigError, PayloadError, VerificationError
from payhook.providers.base import (
    Provider,
    ProviderConfig,
    any_signature_matches,
    parse_json_object,
)

ALGORITHMS: dict[str, Callable[..., Any]] = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha512": hashlib.sha512,
}
ENCODINGS = ("hex", "base64")
OPTIONS = (
    "signature_header", "algorithm", "encoding", "signature_prefix", "timestamp_header",
    "signed_content", "event_id_header", "event_id_path", "event_type_header", "event_type_path",
    "payment_id_path", "kinds", "amount_path", "currency_path", "amount_units",
)  # fmt: skip
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

    def __init__(self, config: ProviderConfig, clock: Clock = system_clock) -> None:
        super().__init__(config, clock)
        where = f"providers.{config.name}"
        unknown = sorted(set(config.options) - set(OPTIONS))
        if unknown:
            raise ConfigError(
                f"{where}: got unknown option(s) {', '.join(unknown)},"
                f" expected some of: {', '.join(sorted(OPTIONS))}"
            )
        signature_header = self._text("signature_header")
        if signature_header is None:
            raise ConfigError(
                f"{where}.signature_header: got nothing, expected the header carrying the signature"
            )
        self.signature_header = signature_header.strip().lower()
        self.algorithm = self._choice("algorithm", tuple(ALGORITHMS), "sha256")
        self.encoding = self._choice("encoding", ENCODINGS, "hex")
        self.signature_prefix = self._text("signature_prefix") or ""
        self.timestamp_header = self._lower(self._text("timestamp_header"))
        template = self._text("signed_content") or "{body}"
        self.parts = parse_template(template, f"{where}.signed_content")
        self.event_id_header = self._lower(self._text("event_id_header"))
        self.event_id_path = self._text("event_id_path")
        self.event_type_header = self._lower(self._text("event_type_header"))
        self.event_type_path = self._text("event_type_path")
        self._check_consistency(where)
        if not self.event_type_header and not self.event_type_path:
            self.event_type_path = "type"
        self.payment_id_path = self._text("payment_id_path")
        self.amount_path = self._text("amount_path")
        self.currency_path = self._text("currency_path")
        self.amount_units = self._choice("amount_units", ("minor", "major"), "minor")
        self.kinds = self._kinds(where)

    # -- configuration ---------------------------------------------------------------------

    def _text(self, key: str) -> str | None:
        value = self.config.options.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(
                f"providers.{self.name}.{key}: got {value!r}, expected a non-empty string"
            )
        return value

    def _choice(self, key: str, allowed: tuple[str, ...], default: str) -> str:
        value = self.config.options.get(key, default)
        if value not in allowed:
            raise ConfigError(
                f"providers.{self.name}.{key}: got {value!r}, expected one of {', '.join(allowed)}"
            )
        return str(value)

    @staticmethod
    def _lower(value: str | None) -> str | None:
        return value.strip().lower() if value else None

    def _check_consistency(self, where: str) -> None:
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
            if self.config.options.get(f"event_{kind}_header") and self.config.options.get(
                f"event_{kind}_path"
            ):
                raise ConfigError(
                    f"{where}: got both event_{kind}_header and event_{kind}_path,"
                    " expected at most one"
                )

    def _kinds(self, where: str) -> dict[str, PaymentEventKind]:
        raw = self.config.options.get("kinds", {})
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{where}.kinds: got {type(raw).__name__}, expected a table")
        allowed = ", ".join(k.value for k in PaymentEventKind)
        kinds: dict[str, PaymentEventKind] = {}
        for event_type, kind in raw.items():
            try:
                kinds[str(event_type)] = PaymentEventKind(kind)
            except ValueError:
                raise ConfigError(
                    f"{where}.kinds.{event_type}: got {kind!r}, expected one of {allowed}"
                ) from None
        mapping = (self.amount_path, self.currency_path, self.config.options.get("amount_units"))
        if not self.payment_id_path and (kinds or any(mapping)):
            raise ConfigError(
                f"{where}: got a payment mapping without payment_id_path,"
                " expected payment_id_path to name the payment id"
            )
        if self.payment_id_path and not kinds:
            raise ConfigError(
                f"{where}.kinds: got no event types, expected a table mapping event types to kinds"
            )
        if self.amount_units == "major" and not self.currency_path:
            raise ConfigError(
                f"{where}.amount_units: got 'major' without currency_path,"
                " expected currency_path (major units need the currency's exponent)"
            )
        return kinds

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
        return [
            VerifiedEvent(
                event_id=event_id,
                event_type=event_type,
                payload=request.body,
                occurred_at=float(timestamp) if timestamp is not None else None,
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
            event_id = "sha256:" + hashlib.sha256(request.body).hexdigest()
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
