"""``payhook send`` against a real HTTP server on 127.0.0.1 that runs the delivery flow
(``Ingest.receive`` into a real group-commit writer): it prints what happened, the status and
the answer, and the events with their payments only once they were acknowledged."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from payhook.backends.sqlite import GroupCommitWriter, SqliteStore, initialize
from payhook.cli.main import main
from payhook.config import parse_settings
from payhook.core.model import WebhookRequest
from payhook.providers import build_providers
from payhook.service.ingest import Ingest

SECRETS = {
    "stripe": "whsec_cli_send_stripe_secret",
    "gocardless": "gocardless_cli_send_secret_0123",
}
WAIT = 10.0  # upper bound for a thread handshake; never a measured threshold


@dataclass
class Server:
    url: str
    database: Path

    def stored(self) -> list[tuple[str, str, str]]:
        """(webhook id, event id, event type) of every stored webhook."""
        store = SqliteStore(self.database)
        try:
            return sorted((w.webhook_id, w.event_id, w.event_type) for w in store.list_webhooks())
        finally:
            store.close()


@contextlib.contextmanager
def serve(tmp_path: Path, secrets: dict[str, str]) -> Iterator[Server]:
    """A receiver that answers each POST /webhook/NAME as payhook's delivery flow does."""
    sections = {name: {"secrets": [secret]} for name, secret in secrets.items()}
    ingest = Ingest(build_providers(parse_settings({"providers": sections}).providers))
    database = tmp_path / "server.db"
    initialize(database)
    writer = GroupCommitWriter(database)
    writer.start()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            name = self.path.removeprefix("/webhook/")
            answer = ingest.receive(name, WebhookRequest(body=body, headers=headers), writer)
            self.send_response(answer.status)
            self.send_header("content-type", answer.media_type)
            self.send_header("content-length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Server(f"http://127.0.0.1:{server.server_address[1]}", database)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(WAIT)
        writer.stop()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with serve(tmp_path, SECRETS) as running:
        yield running


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for variable in [v for v in os.environ if v.startswith("PAYHOOK_")]:
        monkeypatch.delenv(variable)
    path = tmp_path / "payhook.toml"
    providers = "".join(
        f'[providers.{name}]\nsecrets = ["{secret}"]\n' for name, secret in SECRETS.items()
    )
    path.write_text(f'[storage]\npath = "{tmp_path / "cli.db"}"\n{providers}')
    return path


def send(config: Path, *args: str) -> int:
    return main(["send", *args, "--config", str(config)])


def test_reports_the_acknowledged_event_and_its_payment(
    config: Path, server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"{server.url}/webhook/stripe"
    assert send(config, "stripe", "payment_intent.succeeded", "--url", url) == 0

    status, answer, *events = capsys.readouterr().out.splitlines()
    [(webhook_id, event_id, event_type)] = server.stored()
    assert status == f"POST {url} -> 200"
    assert json.loads(answer)["webhookId"] == webhook_id
    assert json.loads(answer)["duplicate"] is False
    [event] = events
    assert event.startswith(f"event {event_id} ({event_type}) payment: pi_")
    assert event_type == "payment_intent.succeeded"


def test_reports_the_events_the_server_stores_for_another_provider(
    config: Path, server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"{server.url}/webhook/gocardless"
    assert send(config, "gocardless", "payments.confirmed", "--url", url) == 0
    _, _, *events = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in events] == [event_id for _, event_id, _ in server.stored()]
    assert all("payment: PM" in line for line in events)


def test_a_refused_delivery_prints_the_status_and_answer_and_no_event(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The server holds another secret: the signed sample fails its verification.
    with serve(tmp_path / "other", {"stripe": "whsec_the_servers_other_secret"}) as refusing:
        url = f"{refusing.url}/webhook/stripe"
        assert send(config, "stripe", "--url", url) == 1
        assert refusing.stored() == []
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"POST {url} -> 401"
    assert json.loads(out.splitlines()[1])["error"] == "verification_failed"
    assert "event " not in out
    assert "payment" not in out


def test_an_unknown_provider_on_the_server_is_its_404_and_no_event(
    config: Path, server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"{server.url}/webhook/nobody"
    assert send(config, "stripe", "--url", url) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"POST {url} -> 404"
    assert "event " not in out
    assert server.stored() == []


def test_an_unreachable_server_is_an_error_on_stderr_and_nothing_else(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert send(config, "stripe", "--url", f"http://127.0.0.1:{port}/webhook/stripe") == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"payhook: cannot reach http://127.0.0.1:{port}/")


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["nope"], 1, "no provider named 'nope'"),
        (["stripe", "no.such.event"], 2, "no stripe sample for 'no.such.event'; try: "),
        (["stripe", "--url", "ftp://127.0.0.1/x"], 2, "--url must be http or https"),
    ],
)
def test_bad_usage_sends_nothing_and_says_why(
    config: Path,
    server: Server,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    status: int,
    message: str,
) -> None:
    assert send(config, *args) == status
    captured = capsys.readouterr()
    assert captured.out == ""
    assert message in captured.err
    assert server.stored() == []
