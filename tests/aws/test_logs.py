"""The Lambdas' JSON log lines: ids, types and reasons as fields; exception types only."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from payhook.runtimes.aws_lambda.logs import JsonFormatter

pytestmark = pytest.mark.aws


def record(message: str, **extra: object) -> logging.LogRecord:
    made = logging.getLogger("payhook.test").makeRecord(
        "payhook.test", logging.WARNING, __file__, 1, message, (), None, extra=extra
    )
    return made


def test_extra_fields_become_json_fields_beside_service_and_environment() -> None:
    line = JsonFormatter("payhook", "prod").format(
        record("processing failed", webhook_id="wh_1", receive_count="2")
    )
    entry = json.loads(line)
    assert entry["message"] == "processing failed"
    assert entry["level"] == "WARNING"
    assert (entry["service"], entry["environment"]) == ("payhook", "prod")
    assert (entry["webhook_id"], entry["receive_count"]) == ("wh_1", "2")
    assert "args" not in entry
    assert "msg" not in entry


def test_exception_is_logged_by_type_without_its_message() -> None:
    try:
        raise ValueError("body: {'card': '4242424242424242'}")
    except ValueError:
        made = record("failed")
        made.exc_info = sys.exc_info()
    entry = json.loads(JsonFormatter("payhook", "dev").format(made))
    assert entry["exception"] == "ValueError"
    assert "4242" not in json.dumps(entry)
