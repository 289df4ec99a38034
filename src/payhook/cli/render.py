"""Plain-text tables, fields and JSON for the commands (shapes from ``payhook.views``)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from payhook.views import iso


def when(timestamp: float | None) -> str:
    """ISO 8601 in UTC, or ``-``."""
    return iso(timestamp) or "-"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    out = sys.stdout  # looked up per call: a default argument would keep the one at import
    cells = [[str("-" if c is None else c) for c in row] for row in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)
    ]
    out.write(
        "  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip() + "\n"
    )
    for row in cells:
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")
    if not cells:
        out.write("(none)\n")


def fields(pairs: Sequence[tuple[str, Any]]) -> None:
    width = max(len(k) for k, _ in pairs)
    for key, value in pairs:
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value) or "-"
        sys.stdout.write(f"{key.ljust(width)}  {'-' if value is None else value}\n")


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def error(message: str) -> None:
    """One line on stderr, as every failure is reported."""
    sys.stderr.write(f"payhook: {message}\n")
