"""Braintree webhooks: a form-encoded body with ``bt_signature`` and ``bt_payload``.

``bt_signature`` holds ``public_key|hexsig`` pairs joined by ``&``; ``hexsig`` is HMAC-SHA1,
keyed with SHA1(private key), over ``bt_payload`` or ``bt_payload + "\\n"``. The pair checked
is the first one for the configured public key, and a malformed pair (``a|b|c``) before it is
a rejection, exactly as braintree-python's ``WebhookNotificationGateway.parse``. The event id
is the SHA-256 of the payload without line breaks; no replay window (Braintree signs no time).
Until verified the cost stays linear; base64 and XML are decoded only once authentic.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from typing import Annotated, Any
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
    iso_timestamp,
    json_response,
)
from payhook.providers.samples import sample_text

#: The characters the SDK allows in a payload (base64 and line breaks).
_PAYLOAD_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+=/\n"
#: The escapes a form encoder writes for those characters (letters and digits go as they are),
#: upper-case hex first, as encoders write it.
_PAYLOAD_ESCAPES = (
    ("%2B", "+"), ("%2F", "/"), ("%3D", "="), ("%0A", "\n"),
    ("%2b", "+"), ("%2f", "/"), ("%3d", "="), ("%0a", "\n"),
)  # fmt: skip
_HEXSIG = re.compile(r"[0-9a-f]{40}")
#: A challenge is an attacker-chosen string that we sign: its format is kept narrow.
_CHALLENGE = re.compile(r"[a-f0-9]{20,32}")
_CHALLENGE_RULE = "bt_challenge must be 20 to 32 lowercase hex digits"
_NOT_A_FORM = "body is not a form-encoded Braintree notification"
_BETWEEN_TAGS = re.compile(r">\s+<")
_MAX_FORM_FIELDS = 20
_FIELDS = ("bt_signature", "bt_payload")
#: A field name longer than this cannot be one of _FIELDS, even percent-encoded throughout.
_LONGEST_NAME = 3 * max(len(name) for name in _FIELDS)
#: bt_signature holds one ``public_key|hexsig`` pair per API key of the merchant, about 62
#: bytes each once form-encoded: 4 KiB is room for more than 60 keys, and bounds what
#: ``unquote`` (a Python step per escape) decodes before the signature is checked.
MAX_SIGNATURE_BYTES = 4096


def _prepared_key(private_key: str) -> hmac.HMAC:
    """HMAC-SHA1 keyed with SHA1(private key) (braintree-python's ``Crypto``), to copy."""
    key = hashlib.sha1(private_key.encode()).digest()  # noqa: S324 - Braintree's scheme
    return hmac.new(key, digestmod=hashlib.sha1)


def braintree_signature(key: str | hmac.HMAC, data: bytes) -> str:
    """The hex signature of ``data`` under a private key (or one from ``_prepared_key``)."""
    mac = (_prepared_key(key) if isinstance(key, str) else key).copy()
    mac.update(data)
    return mac.hexdigest()


def _form_fields(body: bytes) -> tuple[str, str]:
    """``bt_signature`` (decoded) and ``bt_payload`` (still form-encoded: see _payload_text)."""
    if not body.isascii() or body.count(b"&") >= _MAX_FORM_FIELDS:
        raise VerificationError(_NOT_A_FORM)
    found: dict[str, str] = {}
    try:
        # As urllib's parse_qsl reads a form (empty fields skipped, a field without "=" is
        # blank), decoding only the names that can be ours.
        for field in body.decode("ascii").split("&"):
            raw_name, _, value = field.partition("=")
            if not field or len(raw_name) > _LONGEST_NAME:
                continue
            name = unquote_plus(raw_name, errors="strict")
            if name in found:
                raise VerificationError(f"{name} appears more than once")
            if name in _FIELDS:
                found[name] = value
        if len(found) != len(_FIELDS):
            raise VerificationError("missing bt_signature or bt_payload", code="missing_signature")
        if len(found["bt_signature"]) > MAX_SIGNATURE_BYTES:
            raise VerificationError(f"bt_signature is longer than {MAX_SIGNATURE_BYTES} bytes")
        return unquote_plus(found["bt_signature"], errors="strict"), found["bt_payload"]
    except UnicodeDecodeError as exc:
        raise VerificationError(_NOT_A_FORM) from exc


def _payload_text(encoded: str) -> str:
    """A form-encoded bt_payload, decoded as urllib decodes it where the result can be
    allowed; any other escape stays as it is, and its "%" is then not allowed."""
    # A "+" is a space in a form, and spaces are not allowed; an escape is three characters,
    # so more "%" than a third of the text means some "%" is not ours (and a text dense in
    # "%" is the slowest for str.replace).
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


def _authentic_payload(encoded: str, received: list[tuple[hmac.HMAC, str | None]]) -> str:
    """bt_payload decoded, if signed by a key (each with the hexsig bt_signature names)."""
    received = [(key, hexsig) for key, hexsig in received if hexsig is not None]
    if not received:
        raise VerificationError("bt_signature has no usable pair for the key", code="mismatch")
    payload = _payload_text(encoded)
    data = payload.encode("utf-8", "surrogatepass")
    # One C pass deleting the allowed bytes (a regex search costs ~8x more); anything left,
    # non-ASCII text included, is not allowed.
    if data.translate(None, _PAYLOAD_ALPHABET):
        raise VerificationError("bt_payload contains characters that are not allowed")
    matched = False
    for key, hexsig in received:
        # Only 40 lower-case hex digits can equal a hexdigest: no HMAC for anything else.
        if hexsig is not None and _HEXSIG.fullmatch(hexsig):
            mac = key.copy()
            mac.update(data)
            with_newline = mac.copy()  # the payload + "\n" HMAC, without copying the payload
            with_newline.update(b"\n")
            # No early exit: timing says nothing about which key or spelling matched.
            matched |= hmac.compare_digest(mac.hexdigest(), hexsig)
            matched |= hmac.compare_digest(with_newline.hexdigest(), hexsig)
    if not matched:
        raise VerificationError("Braintree signature does not match", code="mismatch")
    return payload


def _notification(payload: str) -> Element:
    try:
        xml = base64.decodebytes(payload.encode("ascii")).decode("utf-8")
        # No DTD, no entity: all that defusedxml's forbid_dtd guarantees, with the C parser
        # (defusedxml's pure-Python one is about three times slower).
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


def _required(node: Element | None, path: str) -> str:
    value = _text(node, path)
    if value is None:
        raise PayloadError(f"notification has no <{path}>")
    return value


class BraintreeOptions(ProviderOptions, frozen=True):
    #: The public key, or one per secret (private key) while rotating.
    public_key: Annotated[str, Meta(min_length=1)] | list[Annotated[str, Meta(min_length=1)]]


class BraintreeProvider(Provider):
    Options = BraintreeOptions
    provider_type = "braintree"
    sample_event_types = (
        "transaction_settled", "transaction_settlement_declined", "dispute_opened",
        "dispute_won", "dispute_lost", "transaction_disbursed",
        "subscription_charged_successfully", "check",
    )  # fmt: skip

    def __init__(self, config: ProviderConfig, clock: Clock = system_clock) -> None:
        super().__init__(config, clock)
        public = config.option("public_key")  # a string or a list of them (BraintreeOptions)
        publics = [public] * len(config.secrets) if isinstance(public, str) else public
        if len(publics) != len(config.secrets):
            raise ConfigError(
                f"providers.{config.name}.public_key: got {len(publics)} public keys for"
                f" {len(config.secrets)} secrets, expected one per secret (private key)"
            )
        # braintree-python encodes both keys as ASCII; anything else could never match it.
        if not all(key.isascii() for key in (*publics, *config.secrets)):
            raise ConfigError(f"providers.{config.name}: Braintree keys must be ASCII")
        #: (public key, prepared private key) per configured pair, in order.
        self.keys = [(p, _prepared_key(s)) for p, s in zip(publics, config.secrets, strict=True)]

    def verify(self, request: WebhookRequest) -> list[VerifiedEvent]:
        signature, encoded_payload = _form_fields(request.body)
        # The pairs first: bounded, and without one for a configured key the payload (most of
        # the body) is never decoded.
        received = [(key, _received_signature(signature, public)) for public, key in self.keys]
        payload = _authentic_payload(encoded_payload, received)
        root = _notification(payload)
        kind = _text(root, "kind")
        if kind is None or len(kind) > 100:
            raise PayloadError("notification has no usable <kind>")
        event_id = hashlib.sha256(payload.replace("\n", "").encode()).hexdigest()
        when = iso_timestamp(_text(root, "timestamp"))
        return [VerifiedEvent(event_id, kind, request.body, when)]

    def payment_events(self, webhook: StoredWebhook) -> list[PaymentEvent]:
        try:
            payload = _payload_text(_form_fields(webhook.payload)[1])
        except VerificationError as exc:
            raise PayloadError(str(exc)) from exc
        subject, kind = _notification(payload).find("subject"), webhook.event_type
        # Other kinds (transaction_disbursed: a payout to the merchant) change no payment.
        tag = "dispute" if kind in _DISPUTES else "transaction" if kind in _SETTLEMENTS else None
        if tag is None:
            return []
        node = subject.find(tag) if subject is not None else None
        if node is None:
            raise PayloadError(f"notification subject has no <{tag}>")
        fields: dict[str, Any]
        if tag == "dispute":
            amount = _text(node, "amount-disputed") or _text(node, "amount")
            fields = {"payment_id": _required(node, "transaction/id"), "kind": _DISPUTES[kind]}
            fields["dispute_id"] = _required(node, "id")
        else:
            amount = _text(node, "amount")
            fields = {"payment_id": _required(node, "id"), "kind": _SETTLEMENTS[kind]}
            if _text(node, "type") == "credit":
                # A credit is a refund: its own id, pointing at the sale it refunds.
                original = _text(node, "refunded-transaction-id")
                if kind != "transaction_settled" or original is None:
                    return []
                fields["refund_id"] = fields["payment_id"]
                fields |= {"payment_id": original, "kind": PaymentEventKind.REFUNDED}
        currency = _text(node, "currency-iso-code")
        code = fields["currency"] = normalize_currency(currency) if currency else None
        fields["amount"] = major_to_minor(amount, code) if amount and code else None
        return [PaymentEvent.of(webhook, **fields)]

    def sample_request(self, event_type: str | None = None, **values: Any) -> WebhookRequest:
        """The sample of ``event_type`` (a kind) with fresh ids, signed with the first key."""
        kind = event_type or self.sample_event_types[0]
        xml = sample_text("braintree", kind, self.clock(), suffix=".xml", **values)
        payload = base64.encodebytes(xml.encode()).decode("ascii")
        public_key, key = self.keys[0]
        signature = f"{public_key}|{braintree_signature(key, payload.encode('ascii'))}"
        body = urlencode({"bt_signature": signature, "bt_payload": payload}).encode("ascii")
        return WebhookRequest(body, {"content-type": "application/x-www-form-urlencoded"})

    def challenge(self, request: WebhookRequest) -> ProviderResponse | None:
        challenge = request.query.get("bt_challenge")
        if challenge is None:
            return None
        if not _CHALLENGE.fullmatch(challenge):
            return json_response(400, {"error": "invalid_challenge", "reason": _CHALLENGE_RULE})
        public_key, key = self.keys[0]
        answer = f"{public_key}|{braintree_signature(key, challenge.encode('ascii'))}"
        return ProviderResponse(200, answer.encode("ascii"), "text/plain")


# disputed: the merchant answered, still open; accepted: the merchant (or Braintree, auto)
# accepted the chargeback; expired: no answer in time.
_DISPUTES = {
    f"dispute_{state}": kind
    for states, kind in (
        (("opened", "disputed", "under_review"), PaymentEventKind.DISPUTE_OPENED),
        (("won",), PaymentEventKind.DISPUTE_WON),
        (("lost", "accepted", "auto_accepted", "expired"), PaymentEventKind.DISPUTE_LOST),
    )
    for state in states
}
_SETTLEMENTS = {
    "transaction_settled": PaymentEventKind.SUCCEEDED,
    "transaction_settlement_declined": PaymentEventKind.FAILED,
}
