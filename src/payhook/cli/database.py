"""The one database a command addresses: the one the configuration names.

Read commands open it read-only and refuse when it is missing (they never create one);
commands that write say which database they write.
"""

from __future__ import annotations

import sys
from pathlib import Path

from payhook.backends.sqlite.reader import SqliteReader
from payhook.config import Settings
from payhook.errors import NotFoundError


def reader(settings: Settings) -> SqliteReader:
    return SqliteReader(settings.storage.path)


def for_writing(settings: Settings) -> Path:
    """The existing database a command is about to write, announced on stderr."""
    path = Path(settings.storage.path)
    if not path.is_file():
        raise NotFoundError(f"no database at {path}")
    sys.stderr.write(f"payhook: writing {path.resolve()}\n")
    return path
