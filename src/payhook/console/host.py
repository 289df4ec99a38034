"""What the console needs from the process that serves it: the embedded runtime in
``payhook serve``, or a test's own assembly around a real database."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from payhook.backends.sqlite.schema import WriteExecutor
from payhook.config import Settings
from payhook.providers import Provider
from payhook.runtimes.metrics import Metrics
from payhook.service.health import Figures


class ConsoleHost(Protocol):
    """The console reads ``settings.storage.path`` (read-only connections of its own), writes
    through ``writer`` (the single writer; None: a transaction of its own), maps a webhook to
    the payment it touched with ``providers``, and draws ``figures()`` and ``metrics``."""

    @property
    def settings(self) -> Settings: ...

    @property
    def writer(self) -> WriteExecutor | None: ...

    @property
    def providers(self) -> Mapping[str, Provider]: ...

    @property
    def metrics(self) -> Metrics: ...

    def figures(self) -> Figures: ...
