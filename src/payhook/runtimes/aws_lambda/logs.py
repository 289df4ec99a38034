"""The Lambdas' logs: payhook's JSON lines (``payhook.logs``) on the runtime's handler, with
the service and environment on every line and the level from ``AWS_LAMBDA_LOG_LEVEL``."""

from __future__ import annotations

import logging
import os
import sys

from payhook.logs import JsonFormatter


def configure_logging(service: str, environment: str) -> None:
    """Put the JSON formatter on the root handlers (the Lambda runtime installs one)."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler(sys.stdout))
    formatter = JsonFormatter({"service": service, "environment": environment})
    for handler in root.handlers:
        handler.setFormatter(formatter)
    level = os.environ.get("AWS_LAMBDA_LOG_LEVEL", "INFO").upper()
    root.setLevel(level if isinstance(logging.getLevelName(level), int) else logging.INFO)
