"""The embedded runtime's files: one process per database, all of them private."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from payhook.config import parse_settings
from payhook.errors import StorageUnavailableError
from payhook.runtimes.embedded import EmbeddedRuntime
from tests.conftest import running_runtime

AUDIT_KEY = "embedded-files-tests-audit-key-0123456789"


def test_a_second_runtime_on_a_live_database_refuses_and_leaves_the_first_untouched(
    tmp_path: Path,
) -> None:
    with running_runtime(tmp_path, server={"workers": 0}) as first:
        lock = Path(f"{first.path}.lock")
        before = lock.read_text()
        assert before == str(os.getpid())
        second = EmbeddedRuntime(first.settings)
        with pytest.raises(StorageUnavailableError, match="in use by another payhook process"):
            second.start()
        assert lock.read_text() == before  # not emptied
        assert os.stat(lock).st_mode & 0o777 == 0o600


def test_serve_warns_when_the_database_is_readable_by_others(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "payhook.db"
    with running_runtime(tmp_path, server={"workers": 0}):
        pass
    path.chmod(0o644)
    settings = parse_settings(
        {"storage": {"path": str(path)}, "server": {"workers": 0}, "audit": {"key": AUDIT_KEY}}
    )
    runtime = EmbeddedRuntime(settings)
    with caplog.at_level(logging.WARNING, logger="payhook.embedded"):
        runtime.start()
        runtime.stop()
    warned = [r.path for r in caplog.records if "readable by other users" in r.message]  # type: ignore[attr-defined]
    assert str(path) in warned
