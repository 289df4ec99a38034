"""Logs are JSON lines that keep the extra fields and nothing else."""

from __future__ import annotations

import json
import logging

from payhook.logs import JsonFormatter


def test_formats_message_and_extra_fields_as_one_json_object() -> None:
    record = logging.makeLogRecord(
        {
            "name": "payhook.ingest",
            "levelno": logging.INFO,
            "levelname": "INFO",
            "msg": "webhook accepted %s",
            "args": ("now",),
            "webhook_id": "wh_1",
            "duplicate": False,
        }
    )
    line = JsonFormatter().format(record)
    data = json.loads(line)
    assert data["message"] == "webhook accepted now"
    assert data["logger"] == "payhook.ingest"
    assert data["webhook_id"] == "wh_1"
    assert data["duplicate"] is False
    assert "\n" not in line
    assert "args" not in data
