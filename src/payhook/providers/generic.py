"""A generic HMAC provider, configured entirely from its TOML section: the options become an
``HmacScheme``, verified (and samples signed) by the ``HmacEngine`` of providers/hmac.py.

``signature_header`` holds ``signature_prefix`` + the ``encoding`` (hex or base64) of
HMAC-``algorithm`` over ``signed_content``, keyed with each secret's UTF-8 bytes; what was sent
is decoded (strictly) and compared as bytes, whitespace around it ignored. The template
``signed_content`` (default ``{body}``) may use ``{body}`` (the raw bytes, never decoded),
``{timestamp}`` (the ``timestamp_header`` as sent, checked against the tolerance both ways)
and ``{header:Name}``; ``{{`` and ``}}`` are literal braces.

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

import secrets as _secrets
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from payhook.core.clock import Clock, system_clock
from payhook.core.model import StoredWebhook, VerifiedEvent, WebhookRequest, body_digest
from payhook.core.money import major_to_minor, minor_amount, normalize_currency
from payhook.core.payment import PaymentEvent, PaymentEventKind
from payhook.errors import ConfigError, PayloadError
from payhook.options import convert
from payhook.providers.base import (
    ProviderConfig,
    ProviderOptions,
    canonical_json,
    dig,
    parse_json_object,
)
from payhook.providers.events import json_id
from payhook.providers.hmac import (
    HmacProvider,
    HmacScheme,
    OneSignature,
    Part,
    Signed,
    parse_template,
)

NonEmpty = Annotated[str, Meta(min_length=1, pattern=r"\S")]


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


def _lower(value: str | None) -> str | None:
    return value.strip().lower() if value else None


def generic_scheme(options: GenericOptions, where: str) -> HmacScheme:
    """The scheme these options describe; ConfigError when they contradict each other."""
    parts = parse_template(options.signed_content, f"{where}.signed_content")
    _check(options, parts, where)
    stamp = _lower(options.timestamp_header)
    return HmacScheme(
        header=options.signature_header.strip(),
        # {timestamp} signs the header as sent (the engine's stands for the parsed number).
        signed="".join(_template_text(part, stamp) for part in parts),
        algorithm=options.algorithm,
        encoding=options.encoding,
        prefix=options.signature_prefix,
        listing=OneSignature(strip=True),
        compare="strict",
        timestamp_header=stamp,
    )


def _template_text(part: Part, timestamp_header: str | None) -> str:
    if isinstance(part, bytes):
        return part.decode().replace("{", "{{").replace("}", "}}")
    if part[0] in ("header", "timestamp"):
        return f"{{header:{part[1] or timestamp_header}}}"
    return f"{{{part[0]}}}"


def _check(options: GenericOptions, parts: tuple[Part, ...], where: str) -> None:
    signed = {part for part in parts if isinstance(part, tuple)}
    others = sorted(name for name, _ in signed if name in ("id", "url"))
    if others:  # the engine's {id} and {url} have no setting here
        raise ConfigError(
            f"{where}.signed_content: got placeholder {{{others[0]}}}, expected {{body}},"
            " {timestamp} or {header:Name}"
        )
    stamp = _lower(options.timestamp_header)
    if ("timestamp", "") in signed and not stamp:
        raise ConfigError(
            f"{where}.signed_content: got {{timestamp}} without timestamp_header,"
            " expected timestamp_header to name the header"
        )
    if stamp and ("timestamp", "") not in signed and ("header", stamp) not in signed:
        # An unsigned timestamp can be rewritten by anyone, so checking it proves nothing.
        raise ConfigError(
            f"{where}.timestamp_header: got a timestamp that signed_content does not sign,"
            " expected {timestamp} in signed_content"
        )
    for kind in ("id", "type"):
        header = getattr(options, f"event_{kind}_header")
        if header and getattr(options, f"event_{kind}_path"):
            raise ConfigError(
                f"{where}: got both event_{kind}_header and event_{kind}_path, expected at most one"
            )
        if header and ("header", _lower(header)) not in signed and not options.unsigned_identity:
            # Whoever captured one delivery could re-send it under another id or type.
            raise ConfigError(
                f"{where}.event_{kind}_header: got a header that signed_content does"
                f" not sign, expected {{header:{header}}} in signed_content (or"
                " unsigned_identity = true to accept the risk)"
            )
    mapping = (options.kinds, options.amount_path, options.currency_path, options.amount_units)
    if not options.payment_id_path and any(mapping):
        raise ConfigError(
            f"{where}: got a payment mapping without payment_id_path,"
            " expected payment_id_path to name the payment id"
        )
    if options.payment_id_path and not options.kinds:
        raise ConfigError(
            f"{where}.kinds: got no event types, expected a table mapping event types to kinds"
        )
    if options.amount_units == "major" and not options.currency_path:
        raise ConfigError(
            f"{where}.amount_units: got 'major' without currency_path,"
            " expected currency_path (major units need the currency's exponent)"
        )


def _keys(path: str | None) -> tuple[str, ...]:
    return tuple(path.split(".")) if path else ()


def _path(data: Any, path: str) -> Any:
    return dig(data, *_keys(path))


def _set_path(data: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for key in parents:
        if not isinstance(data.get(key), dict):
            data[key] = {}
        data = data[key]
    data[last] = value


class GenericHmacProvider(HmacProvider):
    provider_type = "generic"
    Options = GenericOptions

    def __init__(self, config: ProviderConfig, clock: Clock = system_clock) -> None:
        where = f"providers.{config.name}"
        self.options = convert(config.options, GenericOptions, where)
        self.scheme = generic_scheme(self.options, where)
        super().__init__(config, clock)
        self.event_id_header = _lower(self.options.event_id_header)
        self.event_type_header = _lower(self.options.event_type_header)
        self.event_type_path = self.options.event_type_path
        if not self.event_type_header and not self.event_type_path:
            self.event_type_path = "type"
        # Split once: these are read on every delivery.
        self._id_keys = _keys(self.options.event_id_path)
        self._type_keys = _keys(self.event_type_path)
        signed = {part for part in self.engine.parts if isinstance(part, tuple)}
        #: Whether the event id (type) header is covered by the signature.
        self.id_signed = ("header", self.event_id_header) in signed
        self.type_signed = ("header", self.event_type_header) in signed

    def events(self, request: WebhookRequest, signed: Signed) -> list[VerifiedEvent]:
        event_id, event_type = self._identify(request)
        dedup_key = None
        if self.event_id_header and not self.id_signed:
            # The id is not signed (unsigned_identity): the signed body identifies the event,
            # with the type when that is unsigned too.
            digest = body_digest(request.body)
            dedup_key = digest if self.type_signed else f"{event_type}\x00{digest}"
        when = None if signed.timestamp is None else float(signed.timestamp)
        return [VerifiedEvent(event_id, event_type, request.body, when, dedup_key=dedup_key)]

    def _identify(self, request: WebhookRequest) -> tuple[str, str]:
        body: dict[str, Any] | None = None
        if self._id_keys or self._type_keys:
            body = parse_json_object(request.body)
        if self.event_id_header:
            event_id = request.headers.get(self.event_id_header) or None
        elif self._id_keys:
            event_id = json_id(dig(body, *self._id_keys))
        else:
            event_id = body_digest(request.body)
        if event_id is None:
            where = self.event_id_header or f"body.{self.options.event_id_path}"
            raise PayloadError(f"no event id at {where}")
        if self.event_type_header:
            event_type = request.headers.get(self.event_type_header)
        else:
            event_type = json_id(dig(body, *self._type_keys))
        return event_id, event_type or "unknown"

    def payment_events(self, webhook: StoredWebhook) -> list[PaymentEvent]:
        options = self.options
        kind = options.kinds.get(webhook.event_type)
        if kind is None or not options.payment_id_path:
            return []
        body = parse_json_object(webhook.payload)
        payment_id = json_id(_path(body, options.payment_id_path))
        if payment_id is None:
            raise PayloadError(f"no payment id at body.{options.payment_id_path}")
        currency = None
        if options.currency_path:
            raw_currency = _path(body, options.currency_path)
            currency = normalize_currency(raw_currency) if raw_currency is not None else None
        amount = None
        raw_amount = _path(body, options.amount_path) if options.amount_path else None
        if raw_amount is not None:
            if options.amount_units != "major":
                amount = minor_amount(raw_amount)
            elif currency is None:
                raise PayloadError(
                    f"a major-unit amount needs a currency at {options.currency_path}"
                )
            else:
                amount = major_to_minor(raw_amount, currency)
        return [
            PaymentEvent.of(
                webhook, payment_id=payment_id, kind=kind, amount=amount, currency=currency
            )
        ]

    def sample_request(self, event_type: str | None = None, **values: Any) -> WebhookRequest:
        """A body built from the options (a generic sender has no recorded samples; ``values``
        are not used)."""
        options = self.options
        event_type = event_type or next(iter(options.kinds), "payment.succeeded")
        now = int(self.clock())
        amount = "20.00" if options.amount_units == "major" else 2000
        fields: list[tuple[str | None, str | None, Any]] = [
            (self.event_id_header, options.event_id_path, f"evt_{_secrets.token_hex(12)}"),
            (self.event_type_header, self.event_type_path, event_type),
            (None, options.payment_id_path, f"pay_{_secrets.token_hex(8)}"),
            (None, options.currency_path, "USD"),
            (None, options.amount_path, amount),
            (self.scheme.timestamp_header, None, str(now)),
        ]
        payload: dict[str, Any] = {}
        headers = {"content-type": "application/json"}
        for header, path, value in fields:
            if header:
                headers[header] = value
            elif path:
                _set_path(payload, path, value)
        for part in self.engine.parts:  # other signed headers: any value
            if isinstance(part, tuple) and part[0] == "header":
                headers.setdefault(part[1], _secrets.token_hex(8))
        body = canonical_json(payload)
        headers |= self.engine.sign(body, headers, timestamp=now)
        return WebhookRequest(body=body, headers=headers)
