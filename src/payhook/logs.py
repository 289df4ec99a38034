"""Structured logs: one JSON object per line, with the ``extra`` fields a call passes.

The one formatter of both runtimes: ``payhook serve`` writes it to stderr (``configure``),
each Lambda to the handler the Lambda runtime installs (``runtimes/aws_lambda/logs.py``, which
adds the service and environment). It is in the Lambda asset, so it uses the standard library
only (Powertools' Logger would do, at the price of shipping it).

Call sites pass ids, types and reasons only. An exception is written as its type and the
frames it went through, never its message: messages of foreign exceptions may quote their
input (a payload, a header, a setting's value), and no line may hold one.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from collections.abc import Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

# uvicorn adds color_message (the message with terminal colours) to its own records.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}
#: Set on every record by the Lambda runtime; written as ``requestId``.
_REQUEST_ID = "aws_request_id"
#: The innermost frames of a traceback that are written (a deep recursion has thousands).
MAX_FRAMES = 20


class JsonFormatter(logging.Formatter):
    """``timestamp`` (UTC, ms), ``level``, ``logger``, ``message``, the ``static`` fields,
    ``requestId`` on Lambda, every ``extra`` field, and ``exception`` + ``stack`` when the
    record carries one. A field of the line is never replaced by an extra of the same name."""

    def __init__(self, static: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self.static = dict(static or {})

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(self.fields(record), default=str, separators=(",", ":"))

    def fields(self, record: logging.LogRecord) -> dict[str, Any]:
        """The line's fields, in order."""
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **self.static,
        }
        request_id = getattr(record, _REQUEST_ID, None)
        if request_id:
            entry["requestId"] = request_id
        for key, value in vars(record).items():
            if key not in _STANDARD and key != _REQUEST_ID and not key.startswith("_"):
                entry.setdefault(key, value)
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = record.exc_info[0].__name__
            entry["stack"] = _frames(record.exc_info[2])
        return entry


def _frames(tb: TracebackType | None) -> list[str]:
    """``module:line in function`` of each frame, innermost last; no source, no values."""
    frames = list(traceback.walk_tb(tb))[-MAX_FRAMES:]
    return [
        f"{frame.f_globals.get('__name__', frame.f_code.co_filename)}:{line} in"
        f" {frame.f_code.co_name}"
        for frame, line in frames
    ]


class TextFormatter(JsonFormatter):
    """The same fields as ``JsonFormatter`` on one line for people: time, level, logger and
    message, then ``key=value`` for each further field (values JSON-encoded)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = self.fields(record)
        head = [entry.pop(key) for key in ("timestamp", "level", "logger", "message")]
        fields = " ".join(
            f"{key}={json.dumps(value, default=str, separators=(',', ':'))}"
            for key, value in entry.items()
        )
        return " ".join(str(part) for part in head) + (f" {fields}" if fields else "")


def configure(level: int | str = logging.INFO, format: str = "json") -> None:
    """Send payhook's logs to stderr, one line per record: JSON (``format="json"``) or text
    (``"text"``), with the same fields (the embedded runtime)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(TextFormatter() if format == "text" else JsonFormatter())
    for name in ("payhook", "uvicorn"):  # uvicorn's own lines too: one format per process
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level.upper() if isinstance(level, str) else level)
        logger.propagate = False
