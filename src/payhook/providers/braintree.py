"""Braintree webhooks: a form-encoded body with ``bt_signature`` and ``bt_payload``.

``bt_signature`` holds ``public_key|hexsig`` pairs joined by ``&``; ``hexsig`` is HMAC-SHA1,
keyed with SHA1(private key), over ``bt_payload`` or over ``bt_payload + "\\n"``. A payload
with characters outside ``[A-Za-z0-9+=/\\n]`` is refused before any HMAC. The pair checked is
the first one for the configured public key, and a malformed pair (``a|b|c``) met before it is
a rejection: exactly what braintree-python's ``WebhookNotificationGateway.parse`` does, which
the differential tests hold us to. Several ``(public_key, private key)`` pairs may be
configured for rotation; a delivery is accepted when any of them accepts it.

No event id: it is the SHA-256 of the payload without its line breaks (the base64 text is the
notification, where it wraps is not). No replay window: Braintree signs no delivery time and a
retry repeats the same payload, which dedup absorbs.

Before the signature is checked, the cost stays linear with a small constant: the body must
be ASCII with at most ``_MAX_FORM_FIELDS`` fields, only the two fields are decoded, the
signature field is bounded (``MAX_SIGNATURE_BYTES``) and read first, and the payload, whose
decoded alphabet is fixed, is decoded by replacing the four escapes a form encoder writes for
base64 text (``%2B``, ``%2F``, ``%3D``, ``%0A``, either case); any other escape (urllib's
``unquote`` costs a Python step per escape) is a character that is not allowed. The base64
and XML of the payload are decoded only once it is authentic.

``bt_payload`` is base64 XML; one with a DTD is refused before parsing, so no entity can be
declared, expanded or fetched (an entity bomb never reaches the parser).
``GET ?bt_challenge=`` is answered with ``public_key|hexsig(challenge)``; the challenge must
be 20-32 lowercase hex digits (an attacker-chosen string signed with our key, so the format is
kept narrow).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import re
import secrets as _secrets
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import unquote_plus, urlencode
from xml.etree.ElementTree import Element, ParseError, fromstring

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
    ProviderResponse,
    any_signature_matches,
    iso_timestamp,
    json_response,
)

K = PaymentEventKind
#: The characters the SDK allows in a payload (base64 and line breaks).
_PAYLOAD_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+=/\n"
#: The escapes a form encoder writes for those characters (letters and digits go as they are),
#: upper-case hex first, as encoders write it.
_PAYLOAD_ESCAPES = (
    ("%2B", "+"), ("%2F", "/"), ("%3D", "="), ("%0A", "\n"),
    ("%2b", "+"), ("%2f", "/"), ("%3d", "="), ("%0a", "\n"),
)  # fmt: skip
_HEXSIG = re.compile(r"[0-9a-f]{40}")
_CHALLENGE = re.compile(r"[a-f0-9]{20,32}")
_BETWEEN_TAGS = re.compile(r">\s+<")
_MAX_FORM_FIELDS = 20
_FIELDS = ("bt_signature", "bt_payload")
#: A field name longer than this cannot be one of _FIELDS, even percent-encoded throughout.
_LONGEST_NAME = 3 * max(len(name) for name in _FIELDS)
#: bt_signature holds one ``public_key|hexsig`` pair per API key of the merchant, about 62
#: bytes each once form-encoded: 4 KiB is room for more than 60 keys, and bounds what
#: ``unquote`` (a Python step per escape) decodes before the signature is checked.
MAX_SIGNATURE_BYTES = 4096


@functools.lru_cache(maxsize=64)
def _hmac_key(private_key: str) -> bytes:
    return hashlib.sha1(private_key.encode()).digest()  # noqa: S324 - Braintree's scheme


def braintree_signature(private_key: str, data: bytes) -> str:
    """Hex HMAC-SHA1 keyed with SHA1(private key), as braintree-python's ``Crypto``."""
    return hmac.digest(_hmac_key(private_key), data, hashlib.sha1).hex()


def _form_fields(body: bytes) -> tuple[str, str]:
    """``bt_signature`` (decoded) and ``bt_payload`` (still form-encoded: see _payload_text)."""
    if not body.isascii() or body.count(b"&") >= _MAX_FORM_FIELDS:
        raise VerificationError("body is not a form-encoded Braintree notification")
    found: dict[str, str] = {}
    # As urllib's parse_qsl reads a form (empty fields skipped, a field without "=" is blank),
    # decoding only the names that can be ours.
    for field in body.decode("ascii").split("&"):
        raw_name, _, value = field.partition("=")
        if not field or len(raw_name) > _LONGEST_NAME:
            continue
        name = _unquote(raw_name)
        if name in _FIELDS:
            if name in found:
                raise VerificationError(f"{name} appears more than once")
            found[name] = value
    if len(found) != len(_FIELDS):
        raise VerificationError("missing bt_signature or bt_payload")
    if len(found["bt_signature"]) > MAX_SIGNATURE_BYTES:
        raise VerificationError(f"bt_signature is longer than {MAX_SIGNATURE_BYTES} bytes")
    return _unquote(found["bt_signature"]), found["bt_payload"]


def _unquote(text: str) -> str:
    try:
        return unquote_plus(text, errors="strict")
    except UnicodeDecodeError as exc:
        raise VerificationError("body is not a form-encoded Braintree notification") from exc


def _payload_text(encoded: str) -> str:
    """A form-encoded bt_payload, decoded as urllib decodes it where the result can be
    allowed; any other escape stays as it is, and its "%" is then not allowed."""
    # A "+" is a space in a form, and spaces are not allowed; an escape is three characters,
    # so more "%" than a third of the text means some "%" is not one of ours (and a text
    # dense in "%" is the slowest for str.replace).
    if "+" in encoded or 3 * encoded.count("%") > len(encoded):
        raise VerificationError("bt_payload contains characters that are not allowed")
    for escape, char in _PAYLOAD_ESCAPES:
        if "%" not in encoded:  # memchr: nothing left to decode
            break
        encoded = encoded.replace(escape, char)
    return encoded


def _received_signature(signature: str, public_key: str) -> str | None:
    # The SDK's walk: pairs with a "|", first one for our public key; a malformed pair met
    # before it makes the SDK fail (unpacking error), so it is a rejection here too.
    for pair in signature.split("&"):
        if "|" not in pair:
            continue
        parts = pair.split("|")
        if len(parts) != 2:
            return None
        if parts[0] == public_key:
            return parts[1] or None
    return None


def _received_signatures(
    signature: str, keypairs: tuple[tuple[str, str], ...]
) -> list[tuple[str, str]]:
    """(private key, received hexsig) for each configured key pair that bt_signature names."""
    received = []
    for public_key, private_key in keypairs:
        hexsig = _received_signature(signature, public_key)
        if hexsig is not None:
            received.append((private_key, hexsig))
    if not received:
        raise VerificationError("bt_signature has no usable pair for the configured public key")
    return received


def _check_payload_signature(payload: str, received: list[tuple[str, str]]) -> None:
    data = payload.encode("utf-8", "surrogatepass")
    # One C pass deleting the allowed bytes (a regex search costs ~8x more); anything left,
    # non-ASCII text included, is not allowed.
    if data.translate(None, _PAYLOAD_ALPHABET):
        raise VerificationError("bt_payload contains characters that are not allowed")
    matched = False
    for private_key, hexsig in received:
        # Only 40 lower-case hex digits can equal a hexdigest: no HMAC for anything else.
        if _HEXSIG.fullmatch(hexsig):
            mac = hmac.new(_hmac_key(private_key), data, hashlib.sha1)
            with_newline = mac.copy()  # the payload + "\n" HMAC, without copying the payload
            with_newline.update(b"\n")
            expected = [mac.hexdigest(), with_newline.hexdigest()]
            matched |= any_signature_matches(expected, [hexsig])
    if not matched:
        raise VerificationError("Braintree signature does not match")


def verify_braintree_signature(
    signature: str, payload: str, keypairs: tuple[tuple[str, str], ...]
) -> None:
    """Accept when any configured (public, private) key pair accepts, else VerificationError."""
    _check_payload_signature(payload, _received_signatures(signature, keypairs))


def _notification(payload: str) -> Element:
    try:
        xml = base64.decodebytes(payload.encode("ascii")).decode("utf-8")
        # No DTD means no entity can be declared, expanded or fetched, which is all that
        # defusedxml's forbid_dtd guarantees; checked here so that the C parser does the
        # parsing (defusedxml's is the pure-Python one, about three times slower).
        if "<!DOCTYPE" in xml:
            raise ValueError("a DTD is refused")
        # Normalised as braintree-python does (whitespace between tags dropped, then
        # stripped), so a payload the SDK parses parses here too.
        root = fromstring(_BETWEEN_TAGS.sub("><", xml).strip())  # noqa: S314 - no DTD
    except (binascii.Error, ParseError, ValueError) as exc:
        raise PayloadError("bt_payload is not a well-formed XML notification") from exc
    if root.tag != "notification":
        raise PayloadError(f"bt_payload root element is <{root.tag[:40]}>, expected <notification>")
    return root


def _text(node: Element | None, path: str) -> str | None:
    element = node.find(path) if node is not None else None
    if element is None or element.get("nil") == "true":
        return None
    return (element.text or "").strip() or None


class BraintreeOptions(ProviderOptions, frozen=True):
    #: The public key, or one per secret (private key) while rotating.
    public_key: Annotated[str, Meta(min_length=1)] | list[Annotated[str, Meta(min_length=1)]]


class BraintreeProvider(Provider):
    Options = BraintreeOptions
    type_name = "braintree"
    sample_event_types = (
        "transaction_settled",
        "transaction_settlement_declined",
        "dispute_opened",
        "dispute_won",
        "dispute_lost",
        "transaction_disbursed",
        "subscription_charged_successfully",
        "check",
    )

    def __init__(self, config: ProviderConfig, clock: Clock = system_clock) -> None:
        super().__init__(config, clock)
        self.keypairs = _keypairs(config)

    def verify(self, request: WebhookRequest) -> list[VerifiedEvent]:
        signature, encoded_payload = _form_fields(request.body)
        # The pairs first: bounded, and without one for a configured key the payload (most of
        # the body) is never decoded.
        received = _received_signatures(signature, self.keypairs)
        payload = _payload_text(encoded_payload)
        _check_payload_signature(payload, received)
        root = _notification(payload)
        kind = _text(root, "kind")
        if kind is None or len(kind) > 100:
            raise PayloadError("notification has no usable <kind>")
        event_id = hashlib.sha256(payload.replace("\n", "").encode()).hexdigest()
        return [
            VerifiedEvent(
                event_id=event_id,
                event_type=kind,
                payload=request.body,
                occurred_at=iso_timestamp(_text(root, "timestamp")),
            )
        ]

    def payment_events(self, webhook: StoredWebhook) -> list[PaymentEvent]:
        try:
            payload = _payload_text(_form_fields(webhook.payload)[1])
        except VerificationError as exc:
            raise PayloadError(str(exc)) from exc
        subject = _notification(payload).find("subject")
        kind = webhook.event_type
        if kind in ("transaction_settled", "transaction_settlement_declined"):
            return _transaction_events(kind, _element(subject, "transaction"), webhook)
        if kind in _DISPUTE_KINDS:
            dispute = _element(subject, "dispute")
            currency = _text(dispute, "currency-iso-code")
            amount = _text(dispute, "amount-disputed") or _text(dispute, "amount")
            return [
                PaymentEvent.of(
                    webhook,
                    payment_id=_required(dispute, "transaction/id"),
                    kind=_DISPUTE_KINDS[kind],
                    dispute_id=_required(dispute, "id"),
                    amount=_minor(amount, currency),
                    currency=normalize_currency(currency) if currency else None,
                )
            ]
        # transaction_disbursed (a payout to the merchant), subscription_* and the rest do not
        # change a payment's state.
        return []

    def sample_request(self, event_type: str | None = None) -> WebhookRequest:
        kind = event_type or self.sample_event_types[0]
        public_key, private_key = self.keypairs[0]
        xml = sample_notification_xml(kind, int(self.clock()))
        payload = base64.encodebytes(xml).decode("ascii")
        signature = braintree_signature(private_key, payload.encode("ascii"))
        body = urlencode({"bt_signature": f"{public_key}|{signature}", "bt_payload": payload})
        return WebhookRequest(
            body=body.encode("ascii"),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )

    def challenge(self, request: WebhookRequest) -> ProviderResponse | None:
        challenge = request.query.get("bt_challenge")
        if challenge is None:
            return None
        if not _CHALLENGE.fullmatch(challenge):
            return json_response(
                400,
                {
                    "error": "invalid_challenge",
                    "reason": "bt_challenge must be 20 to 32 lowercase hex digits",
                },
            )
        public_key, private_key = self.keypairs[0]
        answer = f"{public_key}|{braintree_signature(private_key, challenge.encode('ascii'))}"
        return ProviderResponse(200, answer.encode("ascii"), "text/plain")


def _keypairs(config: ProviderConfig) -> tuple[tuple[str, str], ...]:
    public = config.required_option("public_key")
    publics = [public] * len(config.secrets) if isinstance(public, str) else public
    if (
        not isinstance(publics, list)
        or len(publics) != len(config.secrets)
        or not all(isinstance(p, str) and p for p in publics)
    ):
        raise ConfigError(
            f"providers.{config.name}.public_key: expected a string, or a list with one"
            " public key per secret (private key)"
        )
    pairs = tuple(zip(publics, config.secrets, strict=True))
    for public_key, private_key in pairs:
        # braintree-python encodes both keys as ASCII; anything else could never match it.
        if not (public_key.isascii() and private_key.isascii()):
            raise ConfigError(f"providers.{config.name}: Braintree keys must be ASCII")
    return pairs


_DISPUTE_KINDS = {
    "dispute_opened": K.DISPUTE_OPENED,
    "dispute_disputed": K.DISPUTE_OPENED,  # the merchant answered; still open
    "dispute_under_review": K.DISPUTE_OPENED,
    "dispute_won": K.DISPUTE_WON,
    "dispute_lost": K.DISPUTE_LOST,
    "dispute_accepted": K.DISPUTE_LOST,  # the merchant accepted the chargeback
    "dispute_auto_accepted": K.DISPUTE_LOST,
    "dispute_expired": K.DISPUTE_LOST,  # no answer in time
}


def _element(subject: Element | None, tag: str) -> Element:
    element = subject.find(tag) if subject is not None else None
    if element is None:
        raise PayloadError(f"notification subject has no <{tag}>")
    return element


def _required(node: Element, path: str) -> str:
    value = _text(node, path)
    if value is None:
        raise PayloadError(f"notification has no <{path}>")
    return value


def _minor(amount: str | None, currency: str | None) -> int | None:
    if amount is None or currency is None:
        return None
    return major_to_minor(amount, normalize_currency(currency))


def _transaction_events(
    kind: str, transaction: Element, webhook: StoredWebhook
) -> list[PaymentEvent]:
    transaction_id = _required(transaction, "id")
    currency = _text(transaction, "currency-iso-code")
    amount = _minor(_text(transaction, "amount"), currency)
    code = normalize_currency(currency) if currency else None
    if _text(transaction, "type") == "credit":
        # A credit is a refund: its own id, pointing at the sale it refunds.
        original = _text(transaction, "refunded-transaction-id")
        if kind != "transaction_settled" or original is None:
            return []
        return [
            PaymentEvent.of(
                webhook,
                payment_id=original,
                kind=K.REFUNDED,
                refund_id=transaction_id,
                amount=amount,
                currency=code,
            )
        ]
    outcome = K.SUCCEEDED if kind == "transaction_settled" else K.FAILED
    return [
        PaymentEvent.of(
            webhook, payment_id=transaction_id, kind=outcome, amount=amount, currency=code
        )
    ]


def _iso(unix: int) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def sample_notification_xml(kind: str, now: int, amount: str = "100.00") -> bytes:
    """A notification shaped like Braintree's (element names as in its gateway's XML)."""
    tx_id = _secrets.token_hex(4)
    if kind in ("transaction_settled", "transaction_settlement_declined"):
        status = "settled" if kind == "transaction_settled" else "settlement_declined"
        subject = (
            f"<transaction><id>{tx_id}</id><status>{status}</status><type>sale</type>"
            f"<currency-iso-code>USD</currency-iso-code><amount>{amount}</amount>"
            "<merchant-account-id>payhook_usd</merchant-account-id>"
            "<payment-instrument-type>credit_card</payment-instrument-type></transaction>"
        )
    elif kind == "transaction_disbursed":
        subject = (
            f"<transaction><id>{tx_id}</id><amount>{amount}</amount><disbursement-details>"
            f"<settlement-amount>{amount}</settlement-amount>"
            f'<disbursement-date type="datetime">{_iso(now)}</disbursement-date>'
            "</disbursement-details></transaction>"
        )
    elif kind in _DISPUTE_KINDS:
        status = {"dispute_won": "won", "dispute_lost": "lost"}.get(kind, "open")
        subject = (
            f"<dispute><id>{_secrets.token_hex(4)}</id><amount>{amount}</amount>"
            f"<amount-disputed>{amount}</amount-disputed>"
            "<currency-iso-code>USD</currency-iso-code><kind>chargeback</kind>"
            f"<reason>fraud</reason><status>{status}</status>"
            f'<created-at type="datetime">{_iso(now - 86400)}</created-at>'
            f"<transaction><id>{tx_id}</id><amount>{amount}</amount></transaction></dispute>"
        )
    elif kind.startswith("subscription_"):
        subject = (
            f'<subscription><id>{_secrets.token_hex(3)}</id><transactions type="array">'
            f"<transaction><id>{tx_id}</id><status>submitted_for_settlement</status>"
            f"<amount>{amount}</amount></transaction></transactions></subscription>"
        )
    elif kind == "check":
        subject = '<check type="boolean">true</check>'
    else:
        raise PayloadError(f"no Braintree sample for kind {kind!r}")
    return (
        f'<notification><timestamp type="datetime">{_iso(now)}</timestamp>'
        f"<kind>{kind}</kind><subject>{subject}</subject></notification>"
    ).encode()
