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
from typing import Any, NamedTuple

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


class Signed(NamedTuple):
    """What verification established beyond the body: the signed timestamp and message id."""

    timestamp: int | None = None
    message_id: str | None = None


NOTHING_SIGNED = Signed()


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
        # Header names as requests spell them (lower case), looked up on every delivery.
        self._header = scheme.header.lower()
        self._timestamp_header = (scheme.timestamp_header or "").lower()
        self._id_header = (scheme.id_header or "").lower()
        self._body_only = self.parts == (("body", ""),)
        self._compare_text = scheme.compare == "text"
        digestmod = ALGORITHMS[scheme.algorithm]
        try:
            keys = [scheme.key(secret) for secret in secrets]
        except UnicodeEncodeError:
            raise ConfigError(f"{where}.secrets: not UTF-8 text") from None
        self._prepared = [hmac.new(key, digestmod=digestmod) for key in keys]

    # verifying ---------------------------------------------------------------------------

    def verify(self, request: WebhookRequest) -> Signed:
        """Raise VerificationError unless some secret signed this delivery (within the
        tolerance, for a timestamped scheme)."""
        scheme, headers = self.scheme, request.headers
        header = headers.get(self._header)
        if not header:
            raise VerificationError(f"missing {scheme.header} header", code="missing_signature")
        received = scheme.listing.parse(header, scheme.header)
        raw_timestamp, timestamp, message_id = received.timestamp, None, None
        if scheme.timestamp_header:
            raw_timestamp = headers.get(self._timestamp_header)
            if raw_timestamp is None:
                raise VerificationError(
                    f"missing {scheme.timestamp_header} header", code="missing_signature"
                )
        if raw_timestamp is not None:
            timestamp = _unix_time(raw_timestamp, scheme.timestamp_header or scheme.header)
        if scheme.id_header:
            message_id = headers.get(self._id_header)
            if not message_id:
                raise VerificationError(
                    f"missing {scheme.id_header} header", code="missing_signature"
                )
        if timestamp is not None and scheme.timestamp_first:
            check_tolerance(timestamp, self.clock(), self.tolerance_seconds)
        body = request.body
        # Most providers sign the body alone: then it is the content, not a copy of it.
        content = body if self._body_only else self._content(body, headers, timestamp, message_id)
        if not self._signed_by_any(content, received.signatures):
            raise VerificationError(f"no {scheme.header} signature matches", code="mismatch")
        if timestamp is None and message_id is None:
            return NOTHING_SIGNED  # most schemes sign the body alone: no tuple per delivery
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

    def _signed_by_any(self, content: bytes, signatures: list[str]) -> bool:
        """Whether the content's MAC under some key is among ``signatures``, as the scheme
        compares them; constant time, with no early exit: every pair is compared, so timing
        says nothing about which matched."""
        text = self._compare_text
        received = [_text(s) for s in signatures] if text else self._decoded(signatures)
        matched = False
        for prepared in self._prepared:
            mac = prepared.copy()
            mac.update(content)
            expected = _text(self._written(mac.digest())) if text else mac.digest()
            for signature in received:
                matched |= hmac.compare_digest(expected, signature)
        return matched

    def _written(self, digest: bytes) -> str:
        """A MAC as the scheme writes it: the prefix, then hex or base64."""
        if self.scheme.encoding == "hex":
            return self.scheme.prefix + digest.hex()
        return self.scheme.prefix + base64.b64encode(digest).decode()

    def _decoded(self, signatures: list[str]) -> list[bytes]:
        scheme = self.scheme
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
        signature = self._written(mac.digest())
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


def _text(value: str) -> bytes:
    # surrogatepass: a stray surrogate in a header compares unequal instead of raising.
    return value.encode("utf-8", "surrogatepass")
