"""Prometheus metrics of the embedded runtime, served on the admin listener at ``/metrics``.

Counters and histograms are observed where things happen (a delivery answered, a webhook
processed); the gauges that describe stored state (queue depth and age, dead letters, outbox
deliveries that gave up) are read from the database at each scrape, so they are never stale.
Label values are bounded: provider names come from the configuration, statuses from the
ingest flow's table, verification reasons from ``VerificationError.code``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from payhook.backends.sqlite.reader import Backlog

#: Acknowledgment times: a group commit is a few ms; a provider gives up after 5-30 s.
ACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
#: Processing lag, from acknowledgment to processed: ms when keeping up, minutes when not.
LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)


class StoredState(Collector):
    """Gauges read from the database at each scrape, through ``read``."""

    def __init__(self, read: Callable[[], Backlog], clock: Callable[[], float] = time.time) -> None:
        self.read = read
        self.clock = clock

    def collect(self) -> Iterable[Metric]:
        backlog = self.read()
        age = backlog.oldest_age(self.clock())
        for name, documentation, value in (
            ("payhook_queue_depth", "Webhooks queued for processing.", backlog.queue_depth),
            (
                "payhook_queue_oldest_age_seconds",
                "Age of the oldest queued webhook (0 when the queue is empty).",
                age,
            ),
            (
                "payhook_dead_letters",
                "Webhooks that exhausted their retries.",
                backlog.dead_letters,
            ),
            (
                "payhook_outbox_failed",
                "Forwarded canonical events whose delivery gave up.",
                backlog.outbox_failed,
            ),
        ):
            yield GaugeMetricFamily(name, documentation, value=value)


class Metrics:
    """The runtime's metrics, in a registry of their own (tests build as many as they like)."""

    def __init__(self, stored: Collector | None = None) -> None:
        self.registry = CollectorRegistry()
        self.deliveries = Counter(
            "payhook_deliveries",
            "Deliveries answered, by provider and HTTP status.",
            ["provider", "status"],
            registry=self.registry,
        )
        self.ack_seconds = Histogram(
            "payhook_ack_seconds",
            "Time from a delivery's last byte to its answer.",
            buckets=ACK_BUCKETS,
            registry=self.registry,
        )
        self.verification_failures = Counter(
            "payhook_verification_failures",
            "Deliveries refused by verification, by provider and reason.",
            ["provider", "reason"],
            registry=self.registry,
        )
        self.processing_lag = Histogram(
            "payhook_processing_lag_seconds",
            "Time from a webhook's acknowledgment to its processing.",
            buckets=LAG_BUCKETS,
            registry=self.registry,
        )
        self.processing_failures = Counter(
            "payhook_processing_failures",
            "Processing attempts that failed (each retried, then dead-lettered).",
            registry=self.registry,
        )
        self.missed_events = Counter(
            "payhook_missed_events",
            "Events found only through a provider's events API: webhooks never received.",
            ["provider"],
            registry=self.registry,
        )
        if stored is not None:
            self.registry.register(stored)
