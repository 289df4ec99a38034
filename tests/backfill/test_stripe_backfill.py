"""``payhook backfill stripe`` against a fake Stripe events API over real HTTP: only the events
never delivered are new, and once processed the ledger is the one full delivery gives."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from payhook.cli.main import main
from tests.backfill.fakes import Answer, FakeStripe, serving
from tests.backfill.stripe_world import (
    API_KEY,
    deliver,
    ledger,
    processed,
    runtime_sections,
    stripe_events,
    until,
    write_config,
)
from tests.conftest import count_rows, running_runtime


def backfill(config: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """Exit status, and stdout (JSON with --json) after stderr."""
    capsys.readouterr()
    code = main(["backfill", "stripe", *args, "--config", str(config)])
    captured = capsys.readouterr()
    return code, captured.err + captured.out


def report(out: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(out[out.index("\n{") + 1 :])
    return data


def test_backfill_stores_the_missed_events_and_the_ledger_equals_full_delivery(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = int(time.time())
    events = stripe_events(now)
    assert len(events) == 250
    delivered = [e for i, e in enumerate(events) if i % 5 in (0, 3)]
    missed = {e["id"] for e in events} - {e["id"] for e in delivered}
    assert (len(delivered), len(missed)) == (100, 150)
    api = FakeStripe(API_KEY, events)
    partial, full = tmp_path / "partial", tmp_path / "full"
    with serving(api) as base:
        config = write_config(partial, base)
        with running_runtime(partial, **runtime_sections(base)) as runtime:
            deliver(runtime, delivered)
            until(lambda: processed(partial / "payhook.db") == 100, "webhooks never processed")

        code, out = backfill(config, capsys, "--since", "24h", "--json")
        assert code == 0, out
        first = report(out)
        assert (first["fetched"], first["new"], first["duplicates"]) == (250, 150, 100)
        assert set(first["newEventIds"]) == missed
        pages = [s for s in api.seen if s.path == "/v1/events"]
        assert len(pages) == 3  # 100 + 100 + 50, following has_more and starting_after
        assert all(abs(int(p.query["created[gte]"]) - (now - 86_400)) < 120 for p in pages)
        assert [p.query.get("starting_after") for p in pages[1:]] == [
            pages_last_id(api, 0),
            pages_last_id(api, 1),
        ]

        with running_runtime(partial, **runtime_sections(base)):
            until(lambda: processed(partial / "payhook.db") == 250, "backfill never processed")
        assert count_rows(str(partial / "payhook.db"), "webhooks WHERE source = 'api'") == 150

        code, out = backfill(config, capsys, "--since", "24h", "--json")
        again = report(out)
        assert (code, again["fetched"], again["new"], again["newEventIds"]) == (0, 250, 0, [])

    with running_runtime(full, **runtime_sections("http://127.0.0.1:9")) as runtime:
        deliver(runtime, events)
        until(lambda: processed(full / "payhook.db") == 250, "full delivery never processed")
    expected = ledger(full / "payhook.db")
    assert len(expected) == 100
    assert ledger(partial / "payhook.db") == expected


def pages_last_id(api: FakeStripe, page: int) -> str:
    listed = sorted(api.events, key=lambda e: (e["created"], e["id"]), reverse=True)
    return str(listed[page * 100 + 99]["id"])


def test_a_webhook_arriving_after_the_backfill_is_a_duplicate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = stripe_events(int(time.time()), payments=2)
    with serving(FakeStripe(API_KEY, events)) as base:
        config = write_config(tmp_path, base)
        with running_runtime(tmp_path, **runtime_sections(base)):
            pass  # creates the database
        code, out = backfill(config, capsys, "--json")
        assert code == 0
        assert report(out)["new"] == len(events)
        with running_runtime(tmp_path, **runtime_sections(base)) as runtime:
            from tests.backfill.stripe_world import signed

            rows = runtime.ingest.verify("stripe", signed(events[0]))
            assert [str(r) for r in runtime.writer.store(rows)] == ["duplicate"]


def test_human_output_names_each_missed_event(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = stripe_events(int(time.time()), payments=1)
    with serving(FakeStripe(API_KEY, events)) as base:
        config = write_config(tmp_path, base)
        with running_runtime(tmp_path, **runtime_sections(base)):
            pass
        code, out = backfill(config, capsys, "--since", "2h")
    assert code == 0
    assert "fetched" in out
    assert "already stored" in out
    for event in events:
        assert f"missed: {event['id']}" in out


def test_wrong_api_key_is_a_clear_error_naming_the_provider(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with serving(FakeStripe("sk_test_the_right_key_000000")) as base:
        config = write_config(tmp_path, base)
        with running_runtime(tmp_path, **runtime_sections(base)):
            pass
        code, out = backfill(config, capsys)
    assert code == 2
    assert "stripe" in out
    assert "refused the credentials" in out
    assert "401" in out
    assert API_KEY not in out


def test_rate_limits_are_waited_out_as_retry_after_asks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The run goes through despite two 429s; the client's own test shows the waits.
    events = stripe_events(int(time.time()), payments=1)
    api = FakeStripe(API_KEY, events)
    api.failures = [Answer(429, {"error": {}}, {"retry-after": "0"}) for _ in range(2)]
    with serving(api) as base:
        config = write_config(tmp_path, base)
        with running_runtime(tmp_path, **runtime_sections(base)):
            pass
        code, out = backfill(config, capsys, "--json")
    assert code == 0, out
    assert report(out)["fetched"] == len(events)
    assert len(api.seen) == 3


@pytest.mark.parametrize("since", ["yesterday", "-5h", "3w", "2999-01-01T00:00:00"])
def test_a_bad_since_exits_2_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], since: str
) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9")
    with pytest.raises(SystemExit) as raised:
        main(["backfill", "stripe", f"--since={since}", "--config", str(config)])
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert "--since" in err
    assert repr(since) in err


@pytest.mark.parametrize("name", ["nosuch", "paddle"])
def test_an_unconfigured_provider_exits_2_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9")
    assert main(["backfill", name, "--config", str(config)]) == 2
    assert f"no provider named {name!r} is configured" in capsys.readouterr().err


def test_a_provider_without_api_credentials_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "payhook.toml"
    path.write_text(
        f'[storage]\npath = "{tmp_path / "db"}"\n'
        '[providers.stripe]\nsecrets = ["whsec_backfill_tests_signing_secret"]\n'
    )
    assert main(["backfill", "stripe", "--config", str(path)]) == 2
    assert "set api_key" in capsys.readouterr().err
