"""The overview's hour of figures: per-minute samples from the runtime's metrics and figures,
and the charts drawn from them."""

from __future__ import annotations

from payhook.console.charts import line_chart, seconds_label
from payhook.console.history import FigureHistory, p99
from payhook.runtimes.metrics import Metrics
from payhook.service.health import Figures
from tests.conftest import FakeClock


def figures_at(clock: FakeClock, *, depth: int = 0, dead: int = 0) -> Figures:
    return Figures(
        now=clock(),
        storage_writable=True,
        storage_error=None,
        workers_expected=2,
        workers_alive=2,
        worker_restarts=0,
        queue_depth=depth,
        oldest_queued_age_seconds=1.5 if depth else 0.0,
        dead_letters=dead,
        outbox_failed=0,
        processed=0,
        processing_failures=0,
        max_backlog_age_seconds=300.0,
    )


def test_a_sample_a_minute_gives_the_rate_and_the_p99_of_that_minute() -> None:
    clock = FakeClock()
    metrics = Metrics()
    state = {"depth": 0}
    history = FigureHistory(lambda: figures_at(clock, depth=state["depth"]), metrics, clock)
    metrics.deliveries.labels("stripe", "200").inc(30)  # before the baseline: not counted
    assert history.observe() is None  # the baseline

    metrics.deliveries.labels("stripe", "200").inc(90)
    metrics.deliveries.labels("adyen", "401").inc(30)
    for _ in range(99):
        metrics.ack_seconds.observe(0.003)
    metrics.ack_seconds.observe(0.2)
    state["depth"] = 7
    clock.advance(30)
    assert history.observe() is None  # not a minute yet
    clock.advance(30)
    sample = history.observe()

    assert sample is not None
    assert sample.received_per_second == 2.0  # 120 in 60 s
    assert sample.ack_p99_seconds == 0.005  # 99 of 100 within the 5 ms bucket
    assert sample.lag_p99_seconds is None  # nothing processed in the minute
    assert sample.queue_depth == 7
    assert history.samples() == [sample]


def test_the_ring_keeps_the_last_hour() -> None:
    clock = FakeClock()
    history = FigureHistory(lambda: figures_at(clock), Metrics(), clock)
    history.observe()
    for _ in range(75):
        clock.advance(60)
        history.observe()
    samples = history.samples()
    assert len(samples) == 60
    assert samples[0].at == clock() - 59 * 60


def test_p99_beyond_the_last_bucket_is_its_largest_finite_bound() -> None:
    inf = float("inf")
    assert p99({}, {0.1: 0.0, 1.0: 0.0, inf: 5.0}) == 1.0
    assert p99({0.1: 3.0, inf: 3.0}, {0.1: 3.0, inf: 3.0}) is None


def test_a_chart_draws_its_samples_and_says_what_they_are() -> None:
    now = 10_000.0
    svg = line_chart(
        [(now - 120, 0.5), (now - 60, None), (now, 2.0)],
        title="Acknowledgment p99",
        now=now,
        label=seconds_label,
    )
    assert svg.startswith("<svg")
    assert 'role="img"' in svg
    assert "latest 2.0 s, lowest 500 ms, highest 2.0 s" in svg
    assert svg.count("<circle") == 2  # two lone points either side of a gap
    empty = line_chart([], title="Queue depth", now=now)
    assert "no samples yet" in empty
    assert "<polyline" not in empty
