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


def _fenced_after(section: str, marker: str) -> list[str]:
    """The lines of the first fenced block after ``marker`` in ``section``."""
    rest = section[section.index(marker) :]
    start = rest.index("```\n") + 4
    return rest[start : rest.index("```", start)].splitlines()


def test_the_quick_start_shows_what_make_run_prints(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    import httpx

    from tests.e2e.conftest import free_port

    shown = _fenced_after(_section("Quick start"), "It prints")
    repo = README.parent
    config = (repo / "payhook.toml").read_text()
    port, admin = free_port(), free_port()
    # The demo configuration, on free ports, from a copy of the repository's layout.
    (tmp_path / "payhook.toml").write_text(
        config.replace("port = 8080", f"port = {port}").replace("port = 8081", f"port = {admin}")
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "payhook", "serve", "--config", "payhook.toml"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=60)[0].decode()
    printed = output.replace(f":{port}/", ":8080/").replace(f":{admin} ", ":8081 ").splitlines()
    assert printed[: len(shown)] == shown


def test_the_command_table_names_every_command() -> None:
    from payhook.cli.main import parser

    table = _section("Command line")
    actions = parser()._subparsers._group_actions[0]  # type: ignore[union-attr]
    for name in actions.choices:  # type: ignore[attr-defined]
        assert f"`payhook {name}" in table, name
