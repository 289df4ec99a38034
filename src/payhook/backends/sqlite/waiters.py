"""Answering the group writer's waiters from its thread: a thread's future directly, an asyncio
future on its own event loop, with one call per loop for the whole group (each such call wakes
the loop once)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any, Protocol


class Waiter(Protocol):
    @property
    def future(self) -> Future[Any] | asyncio.Future[Any]: ...

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None: ...  # None: a thread waits


def answer(waiters: Sequence[Waiter], outcome: Sequence[object] | BaseException) -> None:
    """Give each waiter its result (``outcome[i]``), or every waiter the same exception."""
    per_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], object]]] = {}
    for index, waiter in enumerate(waiters):
        result = outcome if isinstance(outcome, BaseException) else outcome[index]
        if waiter.loop is None:
            assert isinstance(waiter.future, Future)
            if isinstance(result, BaseException):
                waiter.future.set_exception(result)
            else:
                waiter.future.set_result(result)
        else:
            assert isinstance(waiter.future, asyncio.Future)
            per_loop.setdefault(waiter.loop, []).append((waiter.future, result))
    for loop, items in per_loop.items():
        # A loop closed meanwhile raises RuntimeError: nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle, items)


def _settle(items: list[tuple[asyncio.Future[Any], object]]) -> None:
    for future, result in items:
        if future.done():  # the request was cancelled (client went away)
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)
