"""An HMAC scheme as facts: how a provider's signature header lists signatures, what it
signs (a template), how the MAC is written and compared, how a secret becomes a key."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from payhook.errors import ConfigError, VerificationError

_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


@dataclass(slots=True)  # made per delivery: not frozen, whose __init__ costs a third more
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
    """The header is the signature, exactly as sent (most providers), or with surrounding
    whitespace stripped (``strip``: the generic provider always has)."""

    strip: bool = False

    def parse(self, header: str, name: str) -> Received:
        return Received([header.strip() if self.strip else header])

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


@dataclass(frozen=True, slots=True)
class OptionalPrefix:
    """The header is the signature, after ``prefix`` when it starts with one (Mollie's SDK
    takes ``sha256=<hex>`` and bare ``<hex>`` alike); signing writes the prefix."""

    prefix: str

    def parse(self, header: str, name: str) -> Received:
        return Received([header.removeprefix(self.prefix)])

    def render(self, signature: str, timestamp: str | None) -> str:
        return self.prefix + signature


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
