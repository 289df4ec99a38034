"""Reconcile Lambda: on a schedule, read each provider's events API and store the events
never received as webhooks, through the same DynamoDB + SQS store as the receiver.

EventBridge Scheduler invokes it every ``interval`` (``infra/reconcile.py``) with reserved
concurrency 1, so runs never overlap. Each run looks back ``PAYHOOK_RECONCILE_WINDOW_SECONDS``
(the interval plus an overlap): dedup makes the overlap free. Every event found only through
an API is a missed webhook: a warning log and one ``MissedEvents`` metric point per provider
(CloudWatch Embedded Metric Format, namespace ``payhook``), which the stack alarms on. A
provider that fails is logged and reported; the run then raises, so the invocation counts as
an error (alarmed) and the next run tries again.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from payhook.backends.aws.clients import AwsClients
from payhook.backfill.clients import events_api, supported
from payhook.backfill.memory import MemoryCursors
from payhook.backfill.source import EventsApi
from payhook.core.clock import Clock, system_clock
from payhook.errors import ConfigError, PayhookError
from payhook.providers import ProviderConfig
from payhook.runtimes.aws_lambda.coldstart import cold_start
from payhook.service.backfill import Backfill

log = logging.getLogger("payhook.reconcile")

REQUIRED = ("webhooks_table", "queue_url", "providers_secret_arn")
METRIC_NAMESPACE = "payhook"
METRIC_NAME = "MissedEvents"
METRIC_SERVICE = "payhook"
DEFAULT_WINDOW_SECONDS = 1800  # a 15-minute schedule plus a 15-minute overlap


class Reconcile:
    """One scheduled run over every provider with events API credentials (or those named by
    ``PAYHOOK_RECONCILE_PROVIDERS``)."""

    def __init__(
        self,
        backfill_for: Callable[[Callable[[str, str], None]], Backfill],
        configs: Callable[[], Mapping[str, ProviderConfig]],
        *,
        only: tuple[str, ...] = (),
        window_seconds: int = DEFAULT_WINDOW_SECONDS,
        clock: Clock = system_clock,
        api_factory: Callable[[ProviderConfig], EventsApi] = events_api,
        metrics_out: TextIO | None = None,
    ) -> None:
        self.backfill_for = backfill_for
        self.configs = configs
        self.only = only
        self.window_seconds = window_seconds
        self.clock = clock
        self.api_factory = api_factory
        self.metrics_out = metrics_out

    def run(self) -> dict[str, Any]:
        configs = self.configs()
        names = list(self.only) or [n for n, c in configs.items() if supported(c)]
        missed: Counter[str] = Counter()
        backfill = self.backfill_for(lambda provider, _: missed.update([provider]))
        since = self.clock() - self.window_seconds
        report: dict[str, Any] = {}
        failed = []
        for name in names:
            try:
                if name not in configs:
                    raise ConfigError(f"{name}: not a configured provider")
                api = self.api_factory(configs[name])
                try:
                    report[name] = backfill.run(name, api, since).to_json()
                finally:
                    api.close()
            except PayhookError as exc:
                log.error("reconciliation failed", extra={"provider": name, "reason": str(exc)})
                report[name] = {"error": str(exc)}
                failed.append(name)
        for name in names:
            self._emit(name, missed[name])
        if failed:
            raise PayhookError(f"reconciliation failed for: {', '.join(failed)}")
        return report

    def _emit(self, provider: str, count: int) -> None:
        """One EMF line: CloudWatch turns it into the ``MissedEvents`` metric (0 included, so
        the alarm has data)."""
        line = {
            "_aws": {
                "Timestamp": int(time.time() * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": METRIC_NAMESPACE,
                        # Per provider, and across providers (what the alarm watches).
                        "Dimensions": [["provider"], ["service"]],
                        "Metrics": [{"Name": METRIC_NAME, "Unit": "Count"}],
                    }
                ],
            },
            "provider": provider,
            "service": METRIC_SERVICE,
            METRIC_NAME: count,
        }
        out = self.metrics_out or sys.stdout
        out.write(json.dumps(line) + "\n")
        out.flush()


def reconcile_from_environment(
    environ: Mapping[str, str],
    clients: AwsClients | None = None,
    clock: Clock = system_clock,
    **options: Any,
) -> Reconcile:
    """Cold start: validate settings and create clients (no network call)."""
    start = cold_start(environ, REQUIRED, clients)
    secret = start.provider_secret(clock)
    store = start.webhook_store(clock)
    only = tuple(
        p.strip() for p in environ.get("PAYHOOK_RECONCILE_PROVIDERS", "").split(",") if p.strip()
    )
    window = environ.get("PAYHOOK_RECONCILE_WINDOW_SECONDS", "").strip()
    if window and (not window.isdigit() or not 60 <= int(window) <= 30 * 86_400):
        raise ConfigError(
            f"PAYHOOK_RECONCILE_WINDOW_SECONDS: got {window!r}, expected 60 to 2592000 seconds"
        )

    def backfill_for(on_missed: Callable[[str, str], None]) -> Backfill:
        return Backfill(
            secret.providers(), store, MemoryCursors(), clock=clock, on_missed=on_missed
        )

    return Reconcile(
        backfill_for,
        lambda: {name: p.config for name, p in secret.providers().items()},
        only=only,
        window_seconds=int(window) if window else DEFAULT_WINDOW_SECONDS,
        clock=clock,
        **options,
    )


@functools.cache
def reconciler() -> Reconcile:
    """The execution environment's reconciler, built on first use (then reused while warm)."""
    return reconcile_from_environment(os.environ)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return reconciler().run()
