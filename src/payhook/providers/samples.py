"""Realistic sample events, kept as data: ``payhook/samples/<provider type>/<event type>.json``.

``payhook send`` signs them with the same engine that verifies deliveries, and the tests load
the same files. A sample is a recorded delivery whose varying values are placeholders
holding the recorded value: ``"{{name:kind=recorded}}"`` (or ``"{{name=recorded}}"``), alone
in a JSON string (its value then replaces the whole string, and digits become a number) or
inside one (spliced in as text). Loaded as recorded (no ``now``), every placeholder gives its
recorded value: the tests' fixtures. Loaded fresh (``now`` given, as ``payhook send`` does),
every delivery differs: ``now`` is that time (``{{now:iso}}`` ISO 8601 with ``Z``,
``{{now:iso_ms}}`` with milliseconds), and a placeholder with a kind gets a new value of it:
``int`` a 13-digit number, ``upper`` 16 upper-case letters and digits, ``uuid`` a UUID,
``hex`` 24 hex digits, any other kind an id with that prefix (``{{payment:pi=...}}``: ``pi_``
and 24 hex digits); one without a kind (an amount) keeps its recorded value. A value the caller
passes by name wins either way. The same name is the same value throughout one sample.
"""

from __future__ import annotations

import json
import re
import secrets
import string
import uuid
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any

from payhook.errors import PayhookError

_PLACEHOLDER = re.compile(r"\{\{([a-z_][a-z0-9_]*)(?::([a-z_]+))?(?:=([^}]*))?\}\}")
_ALNUM = string.ascii_uppercase + string.digits


class SampleError(PayhookError):
    """No sample of that provider and event type, or one without a recorded value."""


@cache
def _template(provider_type: str, event_type: str) -> str:
    path = resources.files("payhook") / "samples" / provider_type / f"{event_type}.json"
    try:
        return path.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError):
        raise SampleError(f"no {provider_type} sample for {event_type!r}") from None


def sample_types(provider_type: str) -> list[str]:
    """The event types with a sample, sorted."""
    folder = resources.files("payhook") / "samples" / provider_type
    if not folder.is_dir():
        return []
    names = (entry.name for entry in folder.iterdir())
    return sorted(name.removesuffix(".json") for name in names if name.endswith(".json"))


def sample(provider_type: str, event_type: str, now: float | None = None, **values: Any) -> Any:
    """The sample as a JSON value: as recorded, or fresh at ``now`` (see the module docstring)."""
    chosen: dict[str, Any] = dict(values)

    def value(name: str, kind: str | None, recorded: str | None) -> Any:
        if name in chosen:
            return chosen[name]
        if now is not None and name == "now":
            return _time(now, kind)
        if now is not None and kind is not None:
            chosen[name] = _generate(kind)
        elif recorded is None:
            raise SampleError(f"{provider_type}/{event_type}: {{{{{name}}}}} has no recorded value")
        else:
            chosen[name] = int(recorded) if recorded.isdigit() else recorded
        return chosen[name]

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


def sample_bytes(
    provider_type: str, event_type: str, now: float | None = None, **values: Any
) -> bytes:
    """The sample as compact JSON bytes, as a provider sends it."""
    data = sample(provider_type, event_type, now, **values)
    return json.dumps(data, separators=(",", ":")).encode()


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
    if kind == "upper":
        return "".join(secrets.choice(_ALNUM) for _ in range(16))
    if kind == "uuid":
        return str(uuid.uuid4())
    token = secrets.token_hex(12)
    return token if kind == "hex" else f"{kind}_{token}"
