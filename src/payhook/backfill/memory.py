"""An in-memory ``CursorStore``: one process, no database (the reconcile Lambda, whose runs
never overlap and look back a fixed window; tests)."""

from __future__ import annotations

from payhook.backfill.source import Cursor


class MemoryCursors:
    """An in-memory ``CursorStore`` (one process: tests, a Lambda without a cursor table)."""

    def __init__(self) -> None:
        self.cursors: dict[str, Cursor] = {}
        self.leases: dict[str, tuple[str, float]] = {}

    def acquire(self, provider: str, owner: str, now: float, lease_seconds: float) -> bool:
        held = self.leases.get(provider)
        if held is not None and held[1] >= now:
            return False
        self.leases[provider] = (owner, now + lease_seconds)
        return True

    def release(self, provider: str, owner: str) -> None:
        if self.leases.get(provider, ("", 0.0))[0] == owner:
            del self.leases[provider]

    def load(self, provider: str) -> Cursor:
        return self.cursors.get(provider, Cursor(provider))

    def save(self, cursor: Cursor, now: float) -> None:
        self.cursors[cursor.provider] = cursor
