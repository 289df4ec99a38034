"""Scheduled reconciliation for ``serve``: every ``[reconcile] interval_seconds`` each chosen
provider's events API is read from just before the newest event the previous run saw, and the
events never received are stored (through the runtime's writer) and reported as missed.

A failing provider (wrong key, API down, another run holding its lease) is logged and tried
again at the next interval; it never stops the others or the thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Protocol

from payhook.backends.sqlite.cursors import SqliteCursors
from payhook.backends.sqlite.schema import WriteExecutor
from payhook.backfill.clients import events_api, supported
from payhook.backfill.errors import BackfillError
from payhook.backfill.source import CursorStore, EventsApi
from payhook.config import Settings
from payhook.core.clock import Clock, system_clock
from payhook.core.ports import WebhookStore
from payhook.errors import ConfigError, PayhookError
from payhook.providers import Provider, ProviderConfig, build_providers
from payhook.service.backfill import Backfill, BackfillResult, OnMissed, reconcile_since

log = logging.getLogger("payhook.reconcile")

ApiFactory = Callable[[ProviderConfig], EventsApi]


class Writer(WebhookStore, WriteExecutor, Protocol):
    """The embedded runtime's single writer (``GroupCommitWriter``): stores webhooks, runs
    every other write."""


def reconciled_providers(settings: Settings) -> list[str]:
    """The providers ``[reconcile]`` covers; ConfigError names one that cannot be."""
    chosen = settings.reconcile.providers or [
        name for name, config in settings.providers.items() if supported(config)
    ]
    for name in chosen:
        config = settings.providers.get(name)
        if config is None:
            raise ConfigError(f"reconcile.providers: got {name!r}, not a configured provider")
        if not supported(config):
            raise ConfigError(
                f"reconcile.providers: {name!r} has no events API credentials"
                f" (providers.{name}.api_key, or client_id/client_secret for PayPal)"
            )
    return chosen


class Reconciler:
    """Runs in a thread of its own (``start`` then ``stop``) or in one the caller owns
    (``run(stop)``, as the embedded runtime runs its forwarder). ``writer`` is the runtime's
    ``GroupCommitWriter`` (the store of webhooks and of every write), started before."""

    def __init__(
        self,
        settings: Settings,
        writer: Writer,
        on_missed: OnMissed | None = None,
        *,
        clock: Clock = system_clock,
        providers: Mapping[str, Provider] | None = None,
        api_factory: ApiFactory | None = None,
    ) -> None:
        self.settings = settings
        self.writer = writer
        self.on_missed = on_missed
        self.clock = clock
        self.names = reconciled_providers(settings)
        self.providers = providers or build_providers(
            {name: settings.providers[name] for name in self.names}, clock
        )
        self.api_factory = api_factory
        self.runs = 0  # completed rounds (every provider tried once)
        self.results: dict[str, BackfillResult | str] = {}  # the last result or error, each
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread; nothing when ``[reconcile] enabled`` is false or no provider is
        covered."""
        if self._thread is not None or not self.names or not self.settings.reconcile.enabled:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self.run, args=(self._stop,), name="payhook-reconcile", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Stop at the next request or wait; joins for at most ``timeout`` seconds."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def run(self, stop: threading.Event) -> None:
        """A round at once, then one every ``interval_seconds``, until ``stop`` is set (a wait
        for a rate limit ends then too). Never raises: a round's failure is logged."""
        if not self.names or not self.settings.reconcile.enabled:
            return
        cursors = SqliteCursors(self.settings.storage.path, writer=self.writer)
        try:
            while not stop.is_set():
                try:
                    self.run_once(cursors, stop)
                except Exception:  # a bug must not end reconciliation for good
                    log.exception("reconciliation round failed")
                if stop.wait(self.settings.reconcile.interval_seconds):
                    break
        finally:
            cursors.close()

    def run_once(
        self, cursors: CursorStore, stop: threading.Event | None = None
    ) -> dict[str, BackfillResult | str]:
        """One round: each provider once, in turn."""
        stop = stop or threading.Event()
        reconcile = self.settings.reconcile
        backfill = Backfill(
            self.providers, self.writer, cursors, clock=self.clock, on_missed=self.on_missed
        )
        for name in self.names:
            if stop.is_set():
                break
            since = reconcile_since(
                cursors.load(name),
                self.clock(),
                reconcile.window_seconds,
                reconcile.overlap_seconds,
            )
            try:
                api = self._api(self.settings.providers[name], stop)
                try:
                    result = backfill.run(name, api, since)
                finally:
                    api.close()
            except PayhookError as exc:
                log.error("reconciliation failed", extra={"provider": name, "reason": str(exc)})
                self.results[name] = str(exc)
                continue
            self.results[name] = result
            log.info(
                "reconciled",
                extra={"provider": name, "fetched": result.fetched, "missed": result.new},
            )
        self.runs += 1
        return self.results

    def _api(self, config: ProviderConfig, stop: threading.Event) -> EventsApi:
        if self.api_factory is not None:
            return self.api_factory(config)

        def sleep(seconds: float) -> None:  # a Retry-After wait ends when serve stops
            if stop.wait(seconds):
                raise BackfillError(f"{config.name}: stopped while waiting out a rate limit")

        return events_api(config, sleep=sleep)
