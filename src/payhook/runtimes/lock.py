"""One ``payhook serve`` per database: an exclusive ``flock`` on ``<database>.lock``."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from payhook.errors import StorageUnavailableError


class ProcessLock:
    """Held for the life of the process that acquired it; the file holds its pid."""

    def __init__(self, handle: IO[str]) -> None:
        self._handle = handle

    @classmethod
    def acquire(cls, lock_path: Path, database: str) -> ProcessLock:
        """The lock, or StorageUnavailableError at once when another process holds it."""
        if not lock_path.parent.exists():
            lock_path.parent.mkdir(mode=0o700, parents=True)
        # Opened without truncating (a second serve must leave the first one's pid alone) and
        # private, like the database.
        handle = os.fdopen(os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600), "r+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise StorageUnavailableError(
                f"{database} is in use by another payhook process"
            ) from None
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        return cls(handle)

    def release(self) -> None:
        fcntl.flock(self._handle, fcntl.LOCK_UN)
        self._handle.close()
