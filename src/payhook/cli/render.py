"""Plain-text tables, fields and JSON for the commands (shapes from ``payhook.views``)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from payhook.core.queries import Page
from payhook.views import iso

T = TypeVar("T")


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


def page(
    items: Page[T],
    key: str,
    *,
    as_json: bool,
    view: Callable[[T], Any],
    headers: Sequence[str],
    row: Callable[[T], Sequence[Any]],
) -> None:
    """One page of a list command: JSON (``key``, ``total``, ``cursor``), or a table and the
    footer "N of M" with the option that fetches the next page."""
    if as_json:
        emit_json(
            {key: [view(i) for i in items.items], "total": items.total, "cursor": items.cursor}
        )
        return
    table(headers, [row(i) for i in items.items])
    footer = f"{len(items.items):,} of {items.total:,}"
    if items.cursor:
        footer += f"; next page: --cursor {items.cursor}"
    print(footer)


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
