"""The last hour of figures, one sample a minute, in memory: what the overview draws.

A sample is taken from the runtime's figures (gauges: queue depth, oldest age, dead letters)
and from its metrics (counters and histograms: the difference since the previous sample gives
received/s and the minute's p99s), the same numbers ``/metrics`` serves.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client.metrics import MetricWrapperBase

from payhook.runtimes.metrics import Metrics
from payhook.service.health import Figures

#: One sample a minute, sixty of them: the last hour.
SAMPLE_SECONDS = 60.0
KEEP_SAMPLES = 60


@dataclass(frozen=True, slots=True)
class Sample:
    at: float
    received_per_second: float
    ack_p99_seconds: float | None  # None: nothing acknowledged in the minute
    queue_depth: int
    oldest_age_seconds: float
    lag_p99_seconds: float | None
    dead_letters: int


@dataclass(frozen=True, slots=True)
class _Counts:
    at: float
    received: float
    ack: dict[float, float]  # cumulative count per bucket upper bound
    lag: dict[float, float]


def counter_total(metric: MetricWrapperBase) -> float:
    """A counter's value summed over its labels."""
    return sum(
        s.value for family in metric.collect() for s in family.samples if s.name.endswith("_total")
    )


def buckets(metric: MetricWrapperBase) -> dict[float, float]:
    """A histogram's cumulative bucket counts by upper bound (``inf`` last)."""
    return {
        float(s.labels["le"]): s.value
        for family in metric.collect()
        for s in family.samples
        if s.name.endswith("_bucket")
    }


def p99(before: dict[float, float], after: dict[float, float]) -> float | None:
    """The 99th percentile of what a histogram observed between two readings, as the upper
    bound of its bucket (the largest finite bound when it fell beyond); None if nothing."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    if not counts or counts[-1] <= 0:
        return None
    wanted = 0.99 * counts[-1]
    finite = [b for b in bounds if not math.isinf(b)]
    for bound, count in zip(bounds, counts, strict=True):
        if count >= wanted:
            return bound if not math.isinf(bound) else (finite[-1] if finite else None)
    return None


class FigureHistory:
    """A ring of per-minute samples. ``observe`` is cheap when a minute has not passed, so
    every page view may call it; a sampler thread calls it too, so the hour has no gaps
    while nobody looks."""

    def __init__(
        self,
        figures: Callable[[], Figures],
        metrics: Metrics,
        clock: Callable[[], float],
        *,
        sample_seconds: float = SAMPLE_SECONDS,
        keep: int = KEEP_SAMPLES,
    ) -> None:
        self._figures = figures
        self._metrics = metrics
        self._clock = clock
        self.sample_seconds = sample_seconds
        self.keep = keep
        self._samples: deque[Sample] = deque(maxlen=keep)
        self._last: _Counts | None = None
        self._lock = threading.Lock()

    def samples(self) -> list[Sample]:
        with self._lock:
            return list(self._samples)

    def observe(self) -> Sample | None:
        """Take a sample if ``sample_seconds`` have passed since the last; return it."""
        now = self._clock()
        with self._lock:
            last = self._last
            if last is not None and now - last.at < self.sample_seconds:
                return None
            counts = self._counts(now)
            self._last = counts
            if last is None:
                return None  # the first reading is the baseline of the first minute
            sample = self._sample(last, counts, self._figures())
            self._samples.append(sample)
            return sample

    def _counts(self, now: float) -> _Counts:
        m = self._metrics
        return _Counts(
            now, counter_total(m.deliveries), buckets(m.ack_seconds), buckets(m.processing_lag)
        )

    @staticmethod
    def _sample(before: _Counts, after: _Counts, figures: Figures) -> Sample:
        elapsed = max(after.at - before.at, 1e-9)
        return Sample(
            at=after.at,
            received_per_second=max(0.0, after.received - before.received) / elapsed,
            ack_p99_seconds=p99(before.ack, after.ack),
            queue_depth=figures.queue_depth,
            oldest_age_seconds=figures.oldest_queued_age_seconds,
            lag_p99_seconds=p99(before.lag, after.lag),
            dead_letters=figures.dead_letters,
        )


def series(samples: Iterable[Sample], field: str) -> list[tuple[float, float | None]]:
    """(time, value) of one field of each sample."""
    return [(s.at, getattr(s, field)) for s in samples]
