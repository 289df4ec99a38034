"""Health in the IETF health-check format (``application/health+json``).

``fail`` (503) when the runtime cannot do its job: storage not writable, a worker thread dead
(it is also restarted and logged). ``warn`` (200) when it works but an operator must look:
dead letters, a backlog older than ``alerts.max_backlog_age_seconds``, outbox deliveries that
gave up. ``pass`` otherwise. The public listener's ``/healthz`` says only the status.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from payhook.views import iso

MEDIA_TYPE = "application/health+json"
_RANK = {"pass": 0, "warn": 1, "fail": 2}


@dataclass(frozen=True, slots=True)
class Figures:
    """What health is judged on, as the runtime measured it just now."""

    now: float
    storage_writable: bool
    storage_error: str | None
    workers_expected: int
    workers_alive: int
    worker_restarts: int
    queue_depth: int
    oldest_queued_age_seconds: float
    dead_letters: int
    outbox_failed: int
    processed: int
    processing_failures: int
    max_backlog_age_seconds: float


def check(figures: Figures) -> dict[str, Any]:
    """The health document; its ``status`` is the worst of its checks'."""
    time = iso(figures.now)

    def entry(status: str, value: Any, unit: str | None = None, **extra: Any) -> dict[str, Any]:
        found: dict[str, Any] = {"status": status, "observedValue": value, "time": time}
        if unit:
            found["observedUnit"] = unit
        found.update({k: v for k, v in extra.items() if v is not None})
        return found

    backlog_old = figures.oldest_queued_age_seconds > figures.max_backlog_age_seconds
    checks = {
        "storage:writable": [
            entry(
                "pass" if figures.storage_writable else "fail",
                figures.storage_writable,
                componentType="datastore",
                output=figures.storage_error,
            )
        ],
        "workers:alive": [
            entry(
                "pass" if figures.workers_alive >= figures.workers_expected else "fail",
                figures.workers_alive,
                componentType="component",
                output=f"{figures.worker_restarts} restarted since start"
                if figures.worker_restarts
                else None,
            )
        ],
        "queue:oldestAge": [
            entry(
                "warn" if backlog_old else "pass",
                round(figures.oldest_queued_age_seconds, 3),
                "s",
                output=f"{figures.queue_depth} queued; over {figures.max_backlog_age_seconds:g} s"
                if backlog_old
                else None,
            )
        ],
        "queue:depth": [entry("pass", figures.queue_depth)],
        "deadLetters:count": [
            entry(
                "warn" if figures.dead_letters else "pass",
                figures.dead_letters,
                output="payhook dead-letters list" if figures.dead_letters else None,
            )
        ],
        "outbox:failed": [
            entry(
                "warn" if figures.outbox_failed else "pass",
                figures.outbox_failed,
                output="payhook outbox list --failed" if figures.outbox_failed else None,
            )
        ],
        "processing:processed": [entry("pass", figures.processed)],
        "processing:failures": [entry("pass", figures.processing_failures)],
    }
    worst = max((c[0]["status"] for c in checks.values()), key=_RANK.__getitem__)
    return {"status": worst, "checks": checks}


def http_status(document: dict[str, Any]) -> int:
    return 503 if document["status"] == "fail" else 200
