"""Shared fixtures: an injectable clock and temporary databases."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from payhook.runtimes.embedded import EmbeddedRuntime

EVENTS_DIR = Path(__file__).parent / "events"
#: The audit key of every test configuration (``[audit] key``): published, so it proves nothing.
AUDIT_TEST_KEY = "payhook-test-audit-key-published-in-the-tests"


class FakeClock:
    """A clock the test moves by hand; ``clock()`` returns unix seconds."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "payhook.db")


def load_event(provider: str, name: str) -> bytes:
    """A stored test vector from tests/events/<provider>/<name> (byte-exact payloads)."""
    return (EVENTS_DIR / provider / name).read_bytes()


def load_sample(provider_type: str, event_type: str, **values: Any) -> bytes:
    """A provider's sample as recorded (``payhook/samples``, the files ``payhook send`` signs),
    as indented JSON bytes; ``values`` replace named placeholders."""
    from payhook.providers.samples import sample

    return (json.dumps(sample(provider_type, event_type, **values), indent=2) + "\n").encode()


@contextlib.contextmanager
def running_runtime(tmp_path: Path, **sections: dict[str, Any]) -> Iterator[EmbeddedRuntime]:
    """A started embedded runtime over a database in ``tmp_path``; stopped afterwards.
    Its audit key is ``AUDIT_TEST_KEY`` unless ``audit`` says otherwise."""
    from payhook.config import parse_settings
    from payhook.runtimes.embedded import EmbeddedRuntime

    storage = {"path": str(tmp_path / "payhook.db"), **sections.pop("storage", {})}
    sections.setdefault("audit", {"key": AUDIT_TEST_KEY})
    runtime = EmbeddedRuntime(parse_settings({"storage": storage, **sections}))
    runtime.start()
    try:
        yield runtime
    finally:
        runtime.stop()


def until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Wait until ``condition`` holds; fail with ``what`` after ``timeout`` seconds (a bound on
    waiting for something to happen, never a measure of speed)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def count_rows(db_path: str, table: str) -> int:
    conn = sqlite3.connect(db_path)
    try:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608
    finally:
        conn.close()
