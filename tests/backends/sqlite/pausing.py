"""Drive the group-commit writer deterministically: hold it between two groups."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from payhook.backends.sqlite import GroupCommitWriter
from payhook.backends.sqlite.writer import Group


@contextlib.contextmanager
def paused_after_first_group(writer: GroupCommitWriter) -> Iterator[list[Group]]:
    """Hold the writer just after its first group (a background write that changes nothing)
    until the block ends: whatever the block submits is all waiting when the writer takes
    its next group. Yields the groups as they commit (the first one included); a group is
    in the list before any of its waiters hears back."""
    carried: list[Group] = []
    paused, resume = threading.Event(), threading.Event()

    def on_group(group: Group) -> None:
        carried.append(group)
        if len(carried) == 1:
            paused.set()
            resume.wait(10)

    writer.on_group = on_group
    first = writer.submit_call(lambda conn: None)
    assert paused.wait(10), "the writer never committed its first group"
    try:
        yield carried
    finally:
        resume.set()
        first.result(timeout=10)
