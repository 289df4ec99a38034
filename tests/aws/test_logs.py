"""The Lambdas' log lines: payhook's JSON formatter on the runtime's root handler, with the
service and environment on every line, the request id, and the level from the environment."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from payhook.runtimes.aws_lambda.logs import configure_logging

pytestmark = pytest.mark.aws


@pytest.fixture
def lambda_root() -> Iterator[io.StringIO]:
    """The root logger as the Lambda runtime leaves it: one handler; restored afterwards."""
    root = logging.getLogger()
    saved = (root.handlers[:], [h.formatter for h in root.handlers], root.level)
    stream = io.StringIO()
    root.handlers[:] = [logging.StreamHandler(stream)]
    yield stream
    handlers, formatters, level = saved
    root.handlers[:] = handlers
    for handler, formatter in zip(handlers, formatters, strict=True):
        handler.setFormatter(formatter)
    root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_extra_fields_become_json_fields_beside_service_and_environment(
    lambda_root: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_LAMBDA_LOG_LEVEL", raising=False)
    configure_logging("payhook", "prod")
    logging.getLogger("payhook.processor").warning(
        "processing failed", extra={"webhook_id": "wh_1", "aws_request_id": "req-7"}
    )
    [entry] = lines(lambda_root)
    assert entry["message"] == "processing failed"
    assert entry["level"] == "WARNING"
    assert (entry["service"], entry["environment"]) == ("payhook", "prod")
    assert (entry["webhook_id"], entry["requestId"]) == ("wh_1", "req-7")


def test_the_level_comes_from_the_environment(
    lambda_root: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_LOG_LEVEL", "verbose")  # not a level: INFO
    configure_logging("payhook", "dev")
    logging.getLogger("payhook.audit").info("head", extra={"seq": 3})
    monkeypatch.setenv("AWS_LAMBDA_LOG_LEVEL", "error")
    configure_logging("payhook", "dev")
    logging.getLogger("payhook.audit").warning("dropped at ERROR")
    assert [(e["message"], e["seq"]) for e in lines(lambda_root)] == [("head", 3)]


def test_an_exception_is_logged_by_type_without_its_message(lambda_root: io.StringIO) -> None:
    configure_logging("payhook", "dev")
    try:
        raise ValueError("body: {'card': '4242424242424242'}")
    except ValueError:
        logging.getLogger("payhook.receiver").exception("failed")
    [entry] = lines(lambda_root)
    assert entry["exception"] == "ValueError"
    assert "4242" not in json.dumps(entry)
