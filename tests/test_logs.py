"""Logs are JSON lines that keep the extra fields and nothing else: ids, types and reasons;
an exception by its type and frames, never its message. One formatter for both runtimes."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator

import pytest

from payhook.logs import MAX_FRAMES, JsonFormatter, configure

CARD = "4242424242424242"


def record(message: str = "webhook accepted", **extra: object) -> logging.LogRecord:
    return logging.getLogger("payhook.ingest").makeRecord(
        "payhook.ingest", logging.INFO, __file__, 1, message, (), None, extra=extra
    )


def raised(depth: int = 0) -> logging.LogRecord:
    """A record carrying an exception raised ``depth`` calls down."""

    def explode(remaining: int) -> None:
        if remaining:
            explode(remaining - 1)
        raise ValueError(f"body: {{'card': '{CARD}'}}")

    try:
        explode(depth)
    except ValueError:
        made = record("processing failed")
        made.exc_info = sys.exc_info()
    return made


def test_formats_message_and_extra_fields_as_one_json_object() -> None:
    made = record("webhook accepted %s", webhook_id="wh_1", duplicate=False)
    made.args = ("now",)
    line = JsonFormatter().format(made)
    data = json.loads(line)
    assert data["message"] == "webhook accepted now"
    assert (data["level"], data["logger"]) == ("INFO", "payhook.ingest")
    assert (data["webhook_id"], data["duplicate"]) == ("wh_1", False)
    assert "\n" not in line
    assert "args" not in data
    assert "msg" not in data


def test_the_timestamp_is_utc_with_milliseconds() -> None:
    made = record()
    made.created = 1_700_000_000.25
    assert json.loads(JsonFormatter().format(made))["timestamp"] == "2023-11-14T22:13:20.250+00:00"


def test_an_exception_is_its_type_and_frames_never_its_message() -> None:
    entry = json.loads(JsonFormatter().format(raised()))
    assert entry["exception"] == "ValueError"
    assert entry["stack"][-1].startswith(f"{__name__}:")  # module:line in function
    assert entry["stack"][-1].endswith(" in explode")
    assert entry["stack"][0].endswith(" in raised")
    assert CARD not in json.dumps(entry)


def test_a_deep_traceback_keeps_only_the_innermost_frames() -> None:
    stack = json.loads(JsonFormatter().format(raised(depth=3 * MAX_FRAMES)))["stack"]
    assert len(stack) == MAX_FRAMES
    assert all(frame.endswith(" in explode") for frame in stack)


def test_static_fields_and_the_request_id_are_on_every_line() -> None:
    made = record(aws_request_id="req-1", service="spoofed", webhook_id="wh_1")
    entry = json.loads(JsonFormatter({"service": "payhook", "environment": "prod"}).format(made))
    assert (entry["service"], entry["environment"]) == ("payhook", "prod")
    assert entry["requestId"] == "req-1"
    assert "aws_request_id" not in entry
    assert entry["webhook_id"] == "wh_1"


@pytest.fixture
def payhook_logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger("payhook")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield logger
    logger.handlers[:], logger.level, logger.propagate = saved


def test_configure_writes_payhook_logs_to_stderr_as_json_lines(
    payhook_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure(logging.INFO)
    logging.getLogger("payhook.server").debug("not at INFO")
    logging.getLogger("payhook.server").warning("limit reached", extra={"limit": "max_conns"})
    [line] = capsys.readouterr().err.splitlines()
    entry = json.loads(line)
    assert (entry["logger"], entry["message"], entry["limit"]) == (
        "payhook.server",
        "limit reached",
        "max_conns",
    )
    assert "service" not in entry
