"""A run of the backfill use case: one run per provider at a time, and a run that fails
part-way resumes from the cursor it kept in the database."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from payhook.backends.sqlite import GroupCommitWriter, initialize
from payhook.backends.sqlite.cursors import SqliteCursors
from payhook.backfill.clients import events_api
from payhook.backfill.errors import ProviderApiError, RunInProgressError
from payhook.backfill.http import RetryPolicy
from payhook.config import parse_settings
from payhook.providers import build_providers
from payhook.service.backfill import Backfill
from tests.backfill.fakes import Answer, FakeStripe, serving
from tests.backfill.stripe_world import API_KEY, stripe_events, stripe_section


@pytest.fixture
def db(tmp_path: Path) -> Iterator[tuple[GroupCommitWriter, SqliteCursors]]:
    initialize(tmp_path / "payhook.db")
    writer = GroupCommitWriter(tmp_path / "payhook.db")
    writer.start()
    cursors = SqliteCursors(tmp_path / "payhook.db", writer=writer)
    yield writer, cursors
    cursors.close()
    writer.stop()


def test_a_run_failing_part_way_resumes_from_its_cursor(
    db: tuple[GroupCommitWriter, SqliteCursors],
) -> None:
    writer, cursors = db
    events = stripe_events(int(time.time()), payments=100)  # 250: pages of 100, 100, 50
    api = FakeStripe(API_KEY, events)
    with serving(api) as base:
        config = parse_settings({"providers": {"stripe": stripe_section(base)}}).providers
        backfill = Backfill(build_providers(config), writer, cursors)
        since = time.time() - 7200
        client = events_api(config["stripe"], policy=RetryPolicy(attempts=1), sleep=lambda _: None)
        original = api.answer
        calls = {"n": 0}

        def third_page_fails(request):  # type: ignore[no-untyped-def]
            calls["n"] += 1
            return Answer(500, {}) if calls["n"] == 3 else original(request)

        api.answer = third_page_fails  # type: ignore[method-assign]
        with pytest.raises(ProviderApiError):
            backfill.run("stripe", client, since)
        saved = cursors.load("stripe")
        assert saved.page_cursor is not None
        assert saved.since == since
        api.answer = original  # type: ignore[method-assign]
        result = backfill.run("stripe", client, since + 60)  # a later since: resumed anyway
    assert result.resumed
    assert (result.fetched, result.new) == (50, 50)  # only the page left
    assert api.seen[-1].query["starting_after"] == saved.page_cursor
    assert cursors.load("stripe").page_cursor is None
    assert cursors.load("stripe").high_water == max(e["created"] for e in events)


def test_only_one_run_per_provider_at_a_time(db: tuple[GroupCommitWriter, SqliteCursors]) -> None:
    writer, cursors = db
    now = time.time()
    assert cursors.acquire("stripe", "another-run", now, 60)
    config = parse_settings({"providers": {"stripe": stripe_section("http://127.0.0.1:9")}})
    backfill = Backfill(build_providers(config.providers), writer, cursors)
    client = events_api(config.providers["stripe"])
    with pytest.raises(RunInProgressError, match="stripe: another backfill"):
        backfill.run("stripe", client, now - 60)
    assert not cursors.acquire("stripe", "a-third", now, 60)
    assert cursors.acquire("stripe", "a-third", now + 61, 60)  # a crashed run's lease ends
    assert cursors.acquire("paddle", "independent", now, 60)  # one lease per provider


def test_an_event_no_store_can_hold_is_skipped_not_fatal(
    db: tuple[GroupCommitWriter, SqliteCursors],
) -> None:
    writer, cursors = db
    events = stripe_events(int(time.time()), payments=1)[:2]
    events[0]["id"] = "evt_" + "x" * 600  # over the 512 characters an id may have
    with serving(FakeStripe(API_KEY, events)) as base:
        config = parse_settings({"providers": {"stripe": stripe_section(base)}}).providers
        backfill = Backfill(build_providers(config), writer, cursors)
        result = backfill.run("stripe", events_api(config["stripe"]), time.time() - 7200)
    assert (result.fetched, result.new, result.duplicates, result.skipped) == (2, 1, 0, 1)
    assert result.new_event_ids == [events[1]["id"]]
