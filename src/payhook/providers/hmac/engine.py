"""The HMAC engine: verifies deliveries and signs samples with one scheme's facts, under
each configured secret (rotation). Keys are prepared once (``hmac.new(key, digestmod)``) and
copied per message; comparisons are constant-time with no early exit."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from payhook.core.clock import Clock
from payhook.core.model import WebhookRequest
from payhook.errors import ConfigError, VerificationError
from payhook.providers.base import check_tolerance
from payhook.providers.hmac.scheme import HmacScheme, parse_template

ALGORITHMS: dict[str, Callable[..., Any]] = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha512": hashlib.sha512,
}
#: A timestamp is ASCII digits (no sign, space or underscore, which ``int`` would also take).
_DIGITS = re.compile(r"[0-9]{1,20}")


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
        self._body_only = self.parts == (("body", ""),)
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
            raise VerificationError(f"missing {scheme.header} header", code="missing_signature")
        received = scheme.listing.parse(header, scheme.header)
        raw_timestamp, stamp_name = received.timestamp, scheme.header
        if scheme.timestamp_header:
            stamp_name = scheme.timestamp_header
            raw_timestamp = request.headers.get(stamp_name.lower())
            if raw_timestamp is None:
                raise VerificationError(f"missing {stamp_name} header", code="missing_signature")
        timestamp = None if raw_timestamp is None else _unix_time(raw_timestamp, stamp_name)
        message_id = None
        if scheme.id_header:
            message_id = request.headers.get(scheme.id_header.lower())
            if not message_id:
                raise VerificationError(
                    f"missing {scheme.id_header} header", code="missing_signature"
                )
        if timestamp is not None and scheme.timestamp_first:
            check_tolerance(timestamp, self.clock(), self.tolerance_seconds)
        content = self._content(request.body, request.headers, timestamp, message_id)
        if not _matches(self._macs(content), self._decoded(received.signatures)):
            raise VerificationError(f"no {scheme.header} signature matches", code="mismatch")
        if timestamp is not None and not scheme.timestamp_first:
            check_tolerance(timestamp, self.clock(), self.tolerance_seconds)
        return Signed(timestamp, message_id)

    def _content(
        self,
        body: bytes,
        headers: Mapping[str, str],
        timestamp: int | None,
        message_id: str | None,
    ) -> bytes:
        if self._body_only:  # most providers sign the body alone: no copy of it
            return body
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
                    raise VerificationError(
                        f"missing signed header {part[1]}", code="missing_signature"
                    )
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
