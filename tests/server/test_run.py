"""``payhook serve`` tunes the garbage collector once everything is loaded."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from payhook.server.run import GC_YOUNG_THRESHOLD, tune_gc


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_gc")
def test_tune_gc_freezes_what_is_loaded_and_collects_young_objects_less_often() -> None:
    gc.unfreeze()
    _, middle, old = gc.get_threshold()
    tune_gc()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, middle, old)


@pytest.mark.usefixtures("restored_gc")
def test_cycles_are_still_collected_after_tuning() -> None:
    tune_gc()

    class Node:
        def __init__(self) -> None:
            self.other: Node | None = None

    collected: list[str] = []
    a, b = Node(), Node()
    a.other, b.other = b, a
    weakref.finalize(a, collected.append, "a")
    del a, b
    gc.collect(0)
    assert collected == ["a"]
