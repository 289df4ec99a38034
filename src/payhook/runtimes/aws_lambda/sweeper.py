"""Sweeper Lambda: on a schedule, re-queue webhooks stranded in ``received``.

EventBridge Scheduler invokes it every few minutes (``infra/constructs/functions.py``); the
sweep itself is ``payhook.backends.aws.sweep``. A failed read or send raises, so the invocation
counts as an error (alarmed) and the next run tries again.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from typing import Any

from payhook.backends.aws.clients import AwsClients
from payhook.backends.aws.sweep import WebhookSweeper
from payhook.core.clock import Clock, system_clock
from payhook.runtimes.aws_lambda.coldstart import cold_start

REQUIRED = ("webhooks_table", "queue_url")


def sweeper_from_environment(
    environ: Mapping[str, str],
    clients: AwsClients | None = None,
    clock: Clock = system_clock,
) -> WebhookSweeper:
    """Cold start: validate settings and create clients (no network call)."""
    start = cold_start(environ, REQUIRED, clients)
    settings = start.settings
    return WebhookSweeper(
        start.clients.dynamodb,
        start.clients.sqs,
        table=settings.webhooks_table,
        queue_url=settings.queue_url,
        after_seconds=settings.sweep_after_seconds,
        limit=settings.sweep_limit,
        clock=clock,
    )


@functools.cache
def sweeper() -> WebhookSweeper:
    """The execution environment's sweeper, built on first use (then reused while warm)."""
    return sweeper_from_environment(os.environ)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    result = sweeper().sweep()
    return {"found": result.found, "requeued": len(result.requeued)}
