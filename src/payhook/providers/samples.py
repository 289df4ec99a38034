"""Realistic sample events, kept as data: ``payhook/samples/<provider type>/<event type>.json``.

``payhook send`` signs them with the same engine that verifies deliveries, and the tests load
the same files. A sample is a recorded delivery whose varying values are placeholders
holding the recorded value: ``"{{name:kind=recorded}}"`` (or ``"{{name=recorded}}"``), alone
in a JSON string (its value then replaces the whole string, and digits become a number) or
inside one (spliced in as text). Loaded as recorded (no ``now``), every placeholder gives its
recorded value: the tests' fixtures. Loaded fresh (``now`` given, as ``payhook send`` does),
every delivery differs: ``now`` is that time (``{{now:iso}}`` ISO 8601 with ``Z``,
``{{now:iso_ms}}`` with milliseconds), and a placeholder with a kind gets a new value of it:
``int`` a 13-digit number, ``digits`` a string of 7 digits (recorded digits stay a string
too), ``upper`` 16 upper-case letters and digits, ``uuid`` a UUID,
``hex`` 24 hex digits, any other kind an id with that prefix (``{{payment:pi=...}}``: ``pi_``
and 24 hex digits); one without a kind (an amount) keeps its recorded value. A value the caller
passes by name wins either way. The same name is the same value throughout one sample.

A sample that is not JSON (Braintree's notification XML) is text, ``<event type><suffix>``:
``sample_text`` splices every placeholder in as text, by the same rules. A folder's
``_families.json`` (not a sample) names the sample that stands for event types without one.
"""

from __future__ import annotations

import json
import re
import secrets
import string
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any

from payhook.errors import PayhookError
from payhook.providers.base import canonical_json

_PLACEHOLDER = re.compile(r"\{\{([a-z_][a-z0-9_]*)(?::([a-z_]+))?(?:=([^}]*))?\}\}")
_ALNUM = string.ascii_uppercase + string.digits


class SampleError(PayhookError):
    """No sample of that provider and event type, or one without a recorded value."""


@cache
def _template(provider_type: str, event_type: str, suffix: str = ".json") -> str:
    path = resources.files("payhook") / "samples" / provider_type / f"{event_type}{suffix}"
    try:
        return path.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError):
        raise SampleError(f"no {provider_type} sample for {event_type!r}") from None


def sample_types(provider_type: str, suffix: str = ".json") -> list[str]:
    """The event types with a sample, sorted."""
    folder = resources.files("payhook") / "samples" / provider_type
    if not folder.is_dir():
        return []
    names = (entry.name for entry in folder.iterdir() if not entry.name.startswith("_"))
    return sorted(name.removesuffix(suffix) for name in names if name.endswith(suffix))


_Value = Callable[[str, str | None, str | None], Any]


def _values(where: str, now: float | None, values: dict[str, Any]) -> _Value:
    """The value of each placeholder of one sample (see the module docstring)."""
    chosen: dict[str, Any] = dict(values)

    def value(name: str, kind: str | None, recorded: str | None) -> Any:
        if name not in chosen:
            if now is not None and name == "now":
                return _time(now, kind)
            if now is not None and kind is not None:
                chosen[name] = _generate(kind)
            elif recorded is None:
                raise SampleError(f"{where}: {{{{{name}}}}} has no recorded value")
            else:
                chosen[name] = recorded
        raw = chosen[name]
        # Each place types the one value: ``digits`` as text, others digits as a number.
        if kind == "digits":
            return str(raw)
        return int(raw) if isinstance(raw, str) and raw.isdigit() else raw

    return value


def sample(provider_type: str, event_type: str, now: float | None = None, **values: Any) -> Any:
    """The sample as a JSON value: as recorded, or fresh at ``now`` (see the module docstring)."""
    value = _values(f"{provider_type}/{event_type}", now, values)

    def fill(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: fill(v) for k, v in node.items()}
        if isinstance(node, list):
            return [fill(v) for v in node]
        if not isinstance(node, str) or "{{" not in node:
            return node
        whole = _PLACEHOLDER.fullmatch(node)
        if whole:
            return value(*whole.groups())
        return _PLACEHOLDER.sub(lambda m: str(value(*m.groups())), node)

    return fill(json.loads(_template(provider_type, event_type)))


def family_sample(
    provider_type: str, event_type: str, now: float, *, type_key: str = "type", **values: Any
) -> Any:
    """A fresh sample of ``event_type``, its ``type_key`` set to it. A type without a sample of
    its own takes its family's: ``_families.json`` maps a type prefix to the sample standing
    for the family (Stripe's ``payment_intent.created``: the succeeded intent's)."""
    base = event_type
    if base not in sample_types(provider_type):
        families: dict[str, str] = json.loads(_template(provider_type, "_families"))
        base = next((s for prefix, s in families.items() if event_type.startswith(prefix)), base)
    data = sample(provider_type, base, now, **values)
    data[type_key] = event_type
    return data


def sample_text(
    provider_type: str, event_type: str, now: float | None = None, *, suffix: str, **values: Any
) -> str:
    """A text sample (``<event type><suffix>``) with every placeholder spliced in as text; the
    caller escapes what its format needs (no generated value needs escaping)."""
    value = _values(f"{provider_type}/{event_type}{suffix}", now, values)
    text = _template(provider_type, event_type, suffix)
    return _PLACEHOLDER.sub(lambda m: str(value(*m.groups())), text)


def sample_bytes(
    provider_type: str, event_type: str, now: float | None = None, **values: Any
) -> bytes:
    """The sample as compact JSON bytes, as a provider sends it."""
    data = sample(provider_type, event_type, now, **values)
    return canonical_json(data)


def _time(now: float, kind: str | None) -> Any:
    moment = datetime.fromtimestamp(int(now), UTC)
    if kind == "iso":
        return moment.isoformat().replace("+00:00", "Z")
    if kind == "iso_ms":
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return int(now)


def _generate(kind: str) -> Any:
    if kind == "int":
        return 10**12 + secrets.randbelow(9 * 10**12)
    if kind == "digits":  # an id that is a string of digits (Lemon Squeezy's)
        return str(1_000_000 + secrets.randbelow(9_000_000))
    if kind == "upper":
        return "".join(secrets.choice(_ALNUM) for _ in range(16))
    if kind == "uuid":
        return str(uuid.uuid4())
    token = secrets.token_hex(12)
    return token if kind == "hex" else f"{kind}_{token}"
