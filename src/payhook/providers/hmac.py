"""The HMAC engine: a provider's signing scheme as facts, used both to verify deliveries and to
sign samples (``payhook send``), so the two can never disagree.

A scheme says which header carries the signature and how it lists signatures (one value;
``key=value`` pairs with a timestamp, as Stripe and Paddle; versioned entries, as Standard
Webhooks), what is signed (a template over the body, the timestamp, a message id, the
configured URL and other headers), the algorithm, how the MAC is written (hex or base64, a
prefix) and compared (as sent, or decoded), and how a secret becomes a key. Keys are prepared
once (``hmac.new(key, digestmod)``) and copied per message. Every malformed, missing, expired
or wrong input is one ``VerificationError``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from abc import abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

from payhook.core.clock import Clock, system_clock
from payhook.core.model import VerifiedEvent, WebhookRequest
from payhook.errors import ConfigError, VerificationError
from payhook.providers.base import Provider, ProviderConfig
from payhook.providers.samples import sample_bytes

ALGORITHMS: dict[str, Callable[..., Any]] = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha512": hashlib.sha512,
}
#: A timestamp is ASCII digits (no sign, space or underscore, which ``int`` would also take).
_DIGITS = re.compile(r"[0-9]{1,20}")
_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


@dataclass(frozen=True, slots=True)
class Received:
    """What a signature header holds: the signatures, and the timestamp if it carries one."""

    signatures: list[str]
    timestamp: str | None = None


class Listing(Protocol):
    """How a signature header lists its signatures (and maybe a timestamp)."""

    def parse(self, header: str, name: str) -> Received: ...

    def render(self, signature: str, timestamp: str | None) -> str: ...


@dataclass(frozen=True, slots=True)
class OneSignature:
    """The header is the signature, exactly as sent (most providers)."""

    def parse(self, header: str, name: str) -> Received:
        return Received([header])

    def render(self, signature: str, timestamp: str | None) -> str:
        return signature


@dataclass(frozen=True, slots=True)
class Pairs:
    """``t=...,v1=...,v1=...``: ``separator``-separated ``key=value`` items.

    Items without ``=`` are ignored; the last timestamp counts; with ``strict``, an unknown key
    or a second ``=`` rejects the whole header (Paddle's SDK), else they are ignored (Stripe's).
    """

    separator: str
    timestamp_key: str
    signature_key: str
    strict: bool = False
    strip: bool = False  # whitespace around items (Stripe's SDK strips it)

    def parse(self, header: str, name: str) -> Received:
        timestamp: str | None = None
        signatures: list[str] = []
        for item in header.split(self.separator):
            key, sep, value = (item.strip() if self.strip else item).partition("=")
            if not sep:
                continue
            if self.strict and "=" in value:
                raise VerificationError(f"{name} has a malformed entry")
            if key == self.timestamp_key:
                timestamp = value
            elif key == self.signature_key:
                signatures.append(value)
            elif self.strict:
                raise VerificationError(f"{name} has an unrecognised key")
        if timestamp is None:
            raise VerificationError(f"{name} has no timestamp")
        if not signatures:
            raise VerificationError(f"{name} has no {self.signature_key} signature")
        return Received(signatures, timestamp)

    def render(self, signature: str, timestamp: str | None) -> str:
        sep = self.separator
        return f"{self.timestamp_key}={timestamp}{sep}{self.signature_key}={signature}"


@dataclass(frozen=True, slots=True)
class Versioned:
    """``v1,<sig> v1,<sig>``: space-separated ``version,signature`` entries (Standard
    Webhooks); other versions are ignored, an entry without exactly one comma is malformed."""

    version: str = "v1"

    def parse(self, header: str, name: str) -> Received:
        signatures = []
        for entry in header.split(" "):
            if not entry:
                continue
            version, sep, value = entry.partition(",")
            if not sep or "," in value:
                raise VerificationError(f"malformed {name} entry")
            if version == self.version:
                signatures.append(value)
        return Received(signatures)

    def render(self, signature: str, timestamp: str | None) -> str:
        return f"{self.version},{signature}"


def utf8_key(secret: str) -> bytes:
    return secret.encode()


def whsec_key(secret: str) -> bytes:
    """``whsec_<base64>`` (or bare base64, padded or not) to key bytes: Standard Webhooks."""
    raw = secret.removeprefix("whsec_")
    try:
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError("a Standard Webhooks secret must be base64 after 'whsec_'") from exc
    if not key:  # an HMAC with an empty key is a MAC anyone can compute
        raise ConfigError("a Standard Webhooks secret must not be empty")
    return key


# A template part: literal bytes, or a placeholder ("body" | "timestamp" | "id" | "url"
# | "header", name).
Part = bytes | tuple[str, str]
_PLACEHOLDERS = ("body", "timestamp", "id", "url")


def parse_template(template: str, where: str = "signed content") -> tuple[Part, ...]:
    """Split a signed-content template into literal bytes and placeholders (``{{`` and ``}}``
    are literal braces); ConfigError when malformed."""
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
        if name in _PLACEHOLDERS:
            parts.append((name, ""))
        elif name.startswith("header:") and header:
            parts.append(("header", header.lower()))
        else:
            raise ConfigError(
                f"{where}: got placeholder {{{name}}}, expected {{body}}, {{timestamp}}, {{id}},"
                " {url} or {header:Name}"
            )
    literal += template[pos:]
    if literal:
        parts.append(literal.encode())
    if ("body", "") not in parts:
        raise ConfigError(f"{where}: got a template without {{body}}, expected one that signs it")
    return tuple(parts)


@dataclass(frozen=True, slots=True)
class HmacScheme:
    """How one provider signs its deliveries with an HMAC."""

    header: str  # the signature header, as the provider spells it (matched in any case)
    signed: str = "{body}"
    algorithm: Literal["sha1", "sha256", "sha512"] = "sha256"
    encoding: Literal["hex", "base64"] = "hex"
    prefix: str = ""  # before the encoded MAC ("sha256=")
    listing: Listing = field(default_factory=OneSignature)
    #: "text": the encoded MAC is compared with what was sent, character for character (as
    #: most SDKs do); "strict"/"lenient": what was sent is decoded (strict or lenient base64,
    #: hex) and compared as bytes.
    compare: Literal["text", "strict", "lenient"] = "text"
    timestamp_header: str | None = None  # when the timestamp is a header of its own
    id_header: str | None = None  # a signed message id ({id})
    key: Callable[[str], bytes] = utf8_key
    #: Check the timestamp before the MAC (Standard Webhooks) rather than after (Stripe).
    timestamp_first: bool = False

    @property
    def timestamped(self) -> bool:
        return self.timestamp_header is not None or isinstance(self.listing, Pairs)


@dataclass(frozen=True, slots=True)
class Signed:
    """What verification established beyond the body: the signed timestamp and message id."""

    timestamp: int | None = None
    message_id: str | None = None


class HmacEngine:
    """Verifies (and signs) with one scheme under each configured secret (rotation)."""

    def __init__(
        self,
        scheme: HmacScheme,
        secrets: Sequence[str],
        *,
        tolerance_seconds: int,
        clock: Clock,
        url: str = "",
        where: str = "providers",
    ) -> None:
        self.scheme = scheme
        self.tolerance_seconds = tolerance_seconds
        self.clock = clock
        self.url = url.encode()
        self.parts = parse_template(scheme.signed, f"{where}: signed content")
        digestmod = ALGORITHMS[scheme.algorithm]
        try:
            keys = [scheme.key(secret) for secret in secrets]
        except UnicodeEncodeError:
            raise ConfigError(f"{where}.secrets: not UTF-8 text") from None
        self._prepared = [hmac.new(key, digestmod=digestmod) for key in keys]
        self._secrets = list(secrets)

    # verifying ---------------------------------------------------------------------------

    def verify(self, request: WebhookRequest) -> Signed:
        """Raise VerificationError unless some secret signed this delivery (within the
        tolerance, for a timestamped scheme)."""
        scheme = self.scheme
        header = request.headers.get(scheme.header.lower())
        if not header:
            raise VerificationError(f"missing {scheme.header} header")
        received = scheme.listing.parse(header, scheme.header)
        raw_timestamp, stamp_name = received.timestamp, scheme.header
        if scheme.timestamp_header:
            stamp_name = scheme.timestamp_header
            raw_timestamp = request.headers.get(stamp_name.lower())
            if raw_timestamp is None:
                raise VerificationError(f"missing {stamp_name} header")
        timestamp = None if raw_timestamp is None else _unix_time(raw_timestamp, stamp_name)
        message_id = None
        if scheme.id_header:
            message_id = request.headers.get(scheme.id_header.lower())
            if not message_id:
                raise VerificationError(f"missing {scheme.id_header} header")
        if timestamp is not None and scheme.timestamp_first:
            self._check_tolerance(timestamp)
        content = self._content(request.body, request.headers, timestamp, message_id)
        if not _matches(self._macs(content), self._decoded(received.signatures)):
            raise VerificationError(f"no {scheme.header} signature matches")
        if timestamp is not None and not scheme.timestamp_first:
            self._check_tolerance(timestamp)
        return Signed(timestamp, message_id)

    def _check_tolerance(self, timestamp: int) -> None:
        now, tolerance = self.clock(), self.tolerance_seconds
        if timestamp < now - tolerance:
            raise VerificationError("timestamp is older than the tolerance")
        if timestamp > now + tolerance:
            raise VerificationError("timestamp is too far in the future")

    def _content(
        self,
        body: bytes,
        headers: Mapping[str, str],
        timestamp: int | None,
        message_id: str | None,
    ) -> bytes:
        chunks: list[bytes] = []
        for part in self.parts:
            if isinstance(part, bytes):
                chunks.append(part)
            elif part[0] == "body":
                chunks.append(body)
            elif part[0] == "timestamp":
                chunks.append(str(timestamp).encode())
            elif part[0] == "id":
                chunks.append(_text(message_id or ""))
            elif part[0] == "url":
                chunks.append(self.url)
            else:
                value = headers.get(part[1])
                if value is None:
                    raise VerificationError(f"missing signed header {part[1]}")
                chunks.append(_text(value))
        return b"".join(chunks)

    def _macs(self, content: bytes) -> list[bytes]:
        """The content's MAC under every key, as the scheme compares them."""
        macs = []
        for prepared in self._prepared:
            mac = prepared.copy()
            mac.update(content)
            digest = mac.digest()
            if self.scheme.compare == "text":
                macs.append(_text(self.scheme.prefix + _encode(digest, self.scheme.encoding)))
            else:
                macs.append(digest)
        return macs

    def _decoded(self, signatures: list[str]) -> list[bytes]:
        scheme = self.scheme
        if scheme.compare == "text":
            return [_text(s) for s in signatures]
        decoded = []
        for signature in signatures:
            if not signature.startswith(scheme.prefix):
                raise VerificationError(f"{scheme.header} lacks the expected prefix")
            value = signature[len(scheme.prefix) :]
            try:
                if scheme.encoding == "hex":
                    decoded.append(binascii.unhexlify(value))
                else:
                    decoded.append(base64.b64decode(value, validate=scheme.compare == "strict"))
            except (binascii.Error, ValueError) as exc:
                raise VerificationError(f"{scheme.header} is not {scheme.encoding}") from exc
        return decoded

    # signing ----------------------------------------------------------------------------

    def sign(
        self,
        body: bytes,
        headers: Mapping[str, str] | None = None,
        *,
        timestamp: int | None = None,
        message_id: str | None = None,
        secret_index: int = 0,
    ) -> dict[str, str]:
        """The headers that sign ``body`` (signature, and the timestamp and id headers)."""
        scheme = self.scheme
        headers = dict(headers or {})
        if scheme.timestamped and timestamp is None:
            timestamp = int(self.clock())
        if scheme.id_header and message_id is None:
            raise ValueError("this scheme signs a message id: give one")
        mac = self._prepared[secret_index].copy()
        mac.update(self._content(body, headers, timestamp, message_id))
        signature = scheme.prefix + _encode(mac.digest(), scheme.encoding)
        stamp = None if timestamp is None else str(timestamp)
        out = {scheme.header.lower(): scheme.listing.render(signature, stamp)}
        if scheme.timestamp_header and stamp is not None:
            out[scheme.timestamp_header.lower()] = stamp
        if scheme.id_header and message_id is not None:
            out[scheme.id_header.lower()] = message_id
        return out


def _unix_time(value: str, name: str) -> int:
    if not _DIGITS.fullmatch(value):
        raise VerificationError(f"{name} timestamp is not a unix time")
    return int(value)


def _encode(digest: bytes, encoding: str) -> str:
    return digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()


def _text(value: str) -> bytes:
    # surrogatepass: a stray surrogate in a header compares unequal instead of raising.
    return value.encode("utf-8", "surrogatepass")


def _matches(expected: list[bytes], received: list[bytes]) -> bool:
    """Constant-time comparison of every expected MAC with every received one."""
    matched = False
    for mac in expected:
        for signature in received:
            # No early exit: every pair is compared, so timing says nothing about which matched.
            matched |= hmac.compare_digest(mac, signature)
    return matched


class HmacProvider(Provider):
    """A provider whose deliveries carry an HMAC: its facts are ``scheme`` (how it signs), its
    sample event types (``payhook/samples/<type>/``) and ``events`` (what the signed body
    says: id, type, time); ``payment_events`` is its mapping."""

    scheme: ClassVar[HmacScheme]

    def __init__(self, config: ProviderConfig, clock: Clock = system_clock) -> None:
        super().__init__(config, clock)
        self.engine = HmacEngine(
            self.scheme,
            config.secrets,
            tolerance_seconds=self.tolerance_seconds,
            clock=clock,
            url=self.signed_url(),
            where=f"providers.{config.name}",
        )

    def signed_url(self) -> str:
        """The URL a ``{url}`` in the scheme stands for (Square signs its notification URL)."""
        return ""

    def verify(self, request: WebhookRequest) -> list[VerifiedEvent]:
        return self.events(request, self.engine.verify(request))

    @abstractmethod
    def events(self, request: WebhookRequest, signed: Signed) -> list[VerifiedEvent]:
        """The events of an authenticated delivery, identified from signed data only."""

    def sample_request(self, event_type: str | None = None, **values: Any) -> WebhookRequest:
        event_type = event_type or self.sample_event_types[0]
        now = int(self.clock())
        body = sample_bytes(self.type_name, event_type, now, **values)
        headers = {"content-type": "application/json", **self.sample_headers(event_type, body)}
        message_id = f"msg_{secrets.token_hex(12)}" if self.scheme.id_header else None
        headers |= self.engine.sign(body, headers, timestamp=now, message_id=message_id)
        return WebhookRequest(body=body, headers=headers)

    def sample_headers(self, event_type: str, body: bytes) -> dict[str, str]:
        """Headers a sample carries besides its signature (Shopify's topic, say)."""
        return {}
