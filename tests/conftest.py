"""Shared fixtures: an injectable clock and temporary databases."""

from __future__ import annotations

from pathlib import Path

import pytest

EVENTS_DIR = Path(__file__).parent / "events"


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
    """A stored provider payload from tests/events/<provider>/<name>."""
    return (EVENTS_DIR / provider / name).read_bytes()
