"""The console's actions over HTTP against the real payhook: a confirmation naming exactly
what will change, then the CLI's use case, then the result; and the live view's polls."""

from __future__ import annotations

import html
import re
import sqlite3
import time

import httpx
import pytest

from payhook.backends.sqlite.reader import SqliteReader
from payhook.console import filters
from tests.console.server import Payhook, csrf_of


def add_failed_delivery(payhook: Payhook, event_id: str, error: str) -> None:
    """An outbox row that used up its attempts (as the forwarder leaves one)."""
    conn = sqlite3.connect(payhook.settings.storage.path)
    with conn:
        conn.execute(
            "INSERT INTO outbox (event_id, body, created_at, attempts, next_attempt_at,"
            " last_error) VALUES (?, '{}', ?, ?, ?, ?)",
            (event_id, time.time(), payhook.settings.outbox.max_attempts, time.time(), error),
        )
    conn.close()


def attempts_of(payhook: Payhook, event_id: str) -> int:
    conn = sqlite3.connect(payhook.settings.storage.path)
    try:
        row = conn.execute("SELECT attempts FROM outbox WHERE event_id = ?", (event_id,))
        return int(row.fetchone()[0])
    finally:
        conn.close()


def test_retrying_failed_outbound_deliveries_matching_a_filter(
    payhook: Payhook, client: httpx.Client
) -> None:
    add_failed_delivery(payhook, "evt_console_out_1", "HTTP 502 from <script>x</script>")
    add_failed_delivery(payhook, "evt_console_out_2", "timed out after 10 s")
    page = client.get("/console/dead-letters")
    assert "HTTP 502 from &lt;script&gt;x&lt;/script&gt;" in page.text
    token = csrf_of(page.text)

    form = {"csrf": token, "scope": "matching", "error": "502"}
    confirm = client.post("/console/outbox/retry", data=form)
    assert confirm.status_code == 200
    assert "Retry 1 outbound delivery?" in confirm.text
    assert re.findall(r'name="ids" value="([^"]+)"', confirm.text) == ["evt_console_out_1"]
    assert attempts_of(payhook, "evt_console_out_1") == payhook.settings.outbox.max_attempts

    done = client.post(
        "/console/outbox/retry", data={"csrf": token, "confirm": "yes", "ids": "evt_console_out_1"}
    )
    assert done.status_code == 200
    assert "1 retrying" in done.text
    assert attempts_of(payhook, "evt_console_out_1") == 0
    assert attempts_of(payhook, "evt_console_out_2") == payhook.settings.outbox.max_attempts


def test_an_action_on_nothing_changes_nothing(client: httpx.Client) -> None:
    token = csrf_of(client.get("/console/dead-letters").text)
    empty = client.post("/console/dead-letters/redrive", data={"csrf": token, "scope": "selected"})
    assert empty.status_code == 200
    assert "nothing to do" in empty.text
    stale = client.post(
        "/console/dead-letters/redrive",
        data={"csrf": token, "confirm": "yes", "ids": "wh_not_a_dead_letter"},
    )
    assert "0 queued again; 1 not a dead letter" in stale.text


def test_the_live_view_sends_only_new_deliveries_matching_its_filters(
    payhook: Payhook, client: httpx.Client
) -> None:
    reader = SqliteReader(payhook.settings.storage.path)
    try:
        position = reader.latest()
    finally:
        reader.close()
    event_id = payhook.deliver_stripe("payment_intent.succeeded", "pi_console_live_filter")
    htmx = {"hx-request": "true"}

    stripe = client.get(f"/console/deliveries/live?after={position}&provider=stripe", headers=htmx)
    other = client.get(f"/console/deliveries/live?after={position}&provider=standard", headers=htmx)

    assert event_id in stripe.text
    assert event_id not in other.text
    following = re.search(r"after=(\d+)", other.text)
    assert following is not None
    assert int(following.group(1)) == position + 1  # the next poll starts after it either way
    again = client.get(f"/console/deliveries/live?after={position + 1}", headers=htmx)
    assert event_id not in again.text


def test_dead_letters_come_in_pages_and_redrive_all_counts_every_page(
    payhook: Payhook, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(filters, "DEAD_LETTERS_PER_PAGE", 1)
    reader = SqliteReader(payhook.settings.storage.path)
    try:
        letters = [d.webhook_id for d in reader.dead_letters()]
    finally:
        reader.close()
    assert len(letters) == 2
    shown = []
    url = "/console/dead-letters"
    for number in (1, 2):
        page = client.get(url)
        assert page.status_code == 200
        assert f"2 dead letters, {number} to {number} shown" in page.text
        assert f"Page {number} of 2" in page.text
        assert "Redrive all 2 matching" in page.text  # every page, not only this one
        shown += re.findall(r'name="ids" value="([^"]+)" id="dl-', page.text)
        later = re.search(r'rel="next" href="([^"]+)"', page.text)
        url = html.unescape(later.group(1)) if later else ""
    assert shown == letters  # each once, in order
    assert url == ""  # no page after the last
    assert client.get("/console/dead-letters?page=3").status_code == 404
    assert client.get("/console/dead-letters?page=0").status_code == 400
    assert client.get("/console/dead-letters?page=two").status_code == 400
