"""The README says what the code does: its status table is the ingest flow's."""

from __future__ import annotations

import re
from pathlib import Path

from payhook.service.ingest import STATUSES

README = Path(__file__).resolve().parents[1] / "README.md"


def _section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"## {title}")
    return text[start : text.index("\n## ", start + 1)]


def test_the_status_table_lists_every_answer_of_the_flow_and_the_http_front() -> None:
    statuses = {
        int(m) for m in re.findall(r"^\| (\d{3}) \|", _section("What a provider sees"), re.M)
    }
    # 431 is the HTTP front's (server/protocol.py), before any request reaches the flow.
    assert statuses == set(STATUSES) | {431}
