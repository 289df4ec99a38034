"""Structured (JSON) logs for the Lambdas, one object per line, with the ``extra`` fields.

Powertools' Logger would do; this keeps the asset free of it. payhook logs ids, types and
reasons only, so the fields written here never hold a payload or a secret.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str, environment: str) -> None:
        super().__init__()
        self.static = {"service": service, "environment": environment}

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "level": record.levelname,
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "logger": record.name,
            "message": record.getMessage(),
            **self.static,
        }
        request_id = getattr(record, "aws_request_id", None)  # set by the Lambda runtime
        if request_id:
            entry["requestId"] = request_id
        for key, value in vars(record).items():
            if key not in _STANDARD and key != "aws_request_id":
                entry[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            # The type only: messages of foreign exceptions may quote input.
            entry["exception"] = record.exc_info[0].__name__
        return json.dumps(entry, default=str, separators=(",", ":"))


def configure_logging(service: str, environment: str) -> None:
    """Put the JSON formatter on the root handlers (the Lambda runtime installs one)."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler(sys.stdout))
    formatter = JsonFormatter(service, environment)
    for handler in root.handlers:
        handler.setFormatter(formatter)
    level = os.environ.get("AWS_LAMBDA_LOG_LEVEL", "INFO").upper()
    root.setLevel(level if isinstance(logging.getLevelName(level), int) else logging.INFO)
