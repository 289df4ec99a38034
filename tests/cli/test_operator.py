"""The CLI an operator expects: one database, the one named; read commands read only; lists
that page and filter; amounts with their currency; times in ISO 8601; backups and retention."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from payhook.backends.sqlite import GroupCommitWriter, initialize
from payhook.cli.main import main
from payhook.config import load_settings
from payhook.core.model import Stored, WebhookRequest
from payhook.providers import build_providers
from payhook.providers.stripe import sample_event, stripe_signature
from payhook.service.ingest import Ingest
from tests.conftest import AUDIT_TEST_KEY

SECRET = "whsec_cli_operator_secret"


@dataclass
class Deployment:
    config: Path
    database: Path
    ingest: Ingest
    writer: GroupCommitWriter

    def deliver(self, count: int, *, at: float | None = None, amount: int = 2000) -> list[str]:
        now = int(at or time.time())
        ids = []
        for _ in range(count):
            body = json.dumps(sample_event("payment_intent.succeeded", now, amount=amount))
            signature = stripe_signature(SECRET, now, body.encode())
            request = WebhookRequest(body.encode(), {"stripe-signature": f"t={now},v1={signature}"})
            # Received at ``now`` as well: the ingest flow's clock stamps received_at.
            received = Ingest(self.ingest.providers, clock=lambda now=now: float(now))
            webhooks = received.verify("stripe", request)
            assert self.writer.store(webhooks) == [Stored.NEW]
            ids.append(webhooks[0].webhook_id)
        return ids


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    folder = tmp_path / "deploy"
    folder.mkdir()
    config = folder / "other.toml"
    config.write_text(
        '[storage]\npath = "data/payhook.db"\n'
        f'[audit]\nkey = "{AUDIT_TEST_KEY}"\n'
        f'[providers.stripe]\nsecrets = ["{SECRET}"]\ntolerance_seconds = 100000000\n'
    )
    settings = load_settings(config, environ={})
    database = Path(settings.storage.path)
    initialize(database)
    writer = GroupCommitWriter(database)
    writer.start()
    ingest = Ingest(build_providers(settings.providers))
    try:
        yield Deployment(config, database, ingest, writer)
    finally:
        writer.stop()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_config_before_or_after_the_command_reads_that_files_database_from_anywhere(
    deployment: Deployment,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    deployment.deliver(3)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "payhook.toml").write_text('[storage]\npath = "decoy.db"\n')
    monkeypatch.chdir(elsewhere)
    for argv in (
        ["--config", str(deployment.config), "webhooks", "list", "--json"],
        ["webhooks", "list", "--json", "--config", str(deployment.config)],
    ):
        code, out, _ = run(capsys, *argv)
        assert code == 0
        assert json.loads(out)["total"] == 3
    assert not (elsewhere / "decoy.db").exists()


def test_a_read_command_on_a_missing_database_exits_1_and_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "payhook.toml"
    config.write_text('[storage]\npath = "nothing/here.db"\n')
    for argv in (["webhooks", "list"], ["payments", "list"], ["dead-letters", "list"]):
        code, _, err = run(capsys, *argv, "--config", str(config))
        assert code == 1
        assert err == f"payhook: no database at {tmp_path / 'nothing/here.db'}\n"
    assert not (tmp_path / "nothing").exists()


def test_a_command_that_writes_says_which_database(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    [webhook_id] = deployment.deliver(1)
    code, out, err = run(capsys, "replay", webhook_id, "--config", str(deployment.config))
    assert code == 0
    assert err == f"payhook: writing {deployment.database.resolve()}\n"
    assert out == f"queued {webhook_id} for processing\n"


def test_webhooks_list_says_n_of_m_and_pages_with_a_cursor(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = deployment.deliver(7)
    config = str(deployment.config)
    seen: list[str] = []
    cursor: list[str] = []
    for _ in range(4):  # bounded: 7 rows at 3 a page is 3 pages
        code, out, _ = run(capsys, "webhooks", "list", "--limit", "3", *cursor, "--config", config)
        assert code == 0
        lines = out.splitlines()
        seen += [line.split()[0] for line in lines[1:-1]]
        footer = lines[-1]
        assert footer.startswith(f"{len(lines) - 2} of 7")
        if "--cursor" not in footer:
            break
        cursor = ["--cursor", footer.rsplit(" ", 1)[1]]
    assert seen == list(reversed(ids))  # newest first, each once


def test_webhooks_list_filters_by_time_type_and_event_id(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    old = deployment.deliver(2, at=time.time() - 3 * 86400)
    new = deployment.deliver(3)
    config = str(deployment.config)

    def listed(*filters: str) -> set[str]:
        code, out, _ = run(capsys, "webhooks", "list", "--json", *filters, "--config", config)
        assert code == 0
        return {w["webhookId"] for w in json.loads(out)["webhooks"]}

    assert listed("--since", "24h") == set(new)
    assert listed("--until", "2d") == set(old)
    assert listed("--type", "payment_intent.succeeded") == set(old + new)
    assert listed("--type", "charge.refunded") == set()
    _code, out, _ = run(capsys, "webhooks", "show", new[0], "--json", "--config", config)
    event_id = json.loads(out)["eventId"]
    assert listed("--event-id", event_id) == {new[0]}


@pytest.mark.parametrize(
    "argv",
    [
        ["webhooks", "list", "--status", "bogus"],
        ["payments", "list", "--status", "bogus"],
        ["webhooks", "list", "--since", "yesterday-ish"],
        ["webhooks", "list", "--limit", "0"],
        ["webhooks", "list", "--cursor", "nonsense"],
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    deployment: Deployment, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = main([*argv, "--config", str(deployment.config)])
    except SystemExit as exc:  # argparse's own usage errors
        code = int(exc.code or 0)
    _, err = capsys.readouterr()
    assert code == 2
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(("payhook", "usage"))


def test_tables_show_major_units_with_currency_and_iso_times_json_keeps_minor_units(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    from payhook.backends.sqlite import SqliteStore
    from payhook.service.process import Processor

    [webhook_id] = deployment.deliver(1, amount=2000)
    settings = load_settings(deployment.config, environ={})
    store = SqliteStore(deployment.database, writer=deployment.writer)
    Processor(build_providers(settings.providers), store).process(webhook_id)
    config = str(deployment.config)
    code, out, _ = run(capsys, "payments", "list", "--config", config)
    assert code == 0
    row = out.splitlines()[1].split()
    assert row[3:5] == ["20.00", "USD"]
    assert row[-1].endswith("Z")
    assert "T" in row[-1]
    _code, out, _ = run(capsys, "payments", "list", "--json", "--config", config)
    [payment] = json.loads(out)["payments"]
    assert (payment["amount"], payment["currency"]) == (2000, "USD")
    assert payment["updatedAt"].endswith("Z")
    assert all(key[0].islower() and "_" not in key for key in payment)


def test_show_prints_the_payload_only_when_asked(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    [webhook_id] = deployment.deliver(1)
    config = str(deployment.config)
    _, out, _ = run(capsys, "webhooks", "show", webhook_id, "--config", config)
    assert "payment_intent" not in out.split("eventType")[0]
    assert '"object"' not in out
    _, out, _ = run(capsys, "webhooks", "show", webhook_id, "--payload", "--config", config)
    assert '"object":"event"' in out.replace(" ", "")


def test_tail_follows_deliveries_as_they_arrive(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    deployment.deliver(2)  # before the tail: not shown
    delivered: list[str] = []

    def later() -> None:
        time.sleep(0.3)
        delivered.extend(deployment.deliver(3))

    thread = threading.Thread(target=later)
    thread.start()
    code, out, _ = run(
        capsys, "webhooks", "tail", "--count", "3", "--config", str(deployment.config)
    )
    thread.join(10)
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()[1:]] == delivered


def test_backup_while_writing_gives_a_copy_that_verifies(
    deployment: Deployment, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deployment.deliver(20)
    stop = threading.Event()

    def keep_writing() -> None:
        for _ in range(50):  # bounded
            if stop.is_set():
                return
            deployment.deliver(1)

    writer = threading.Thread(target=keep_writing)
    writer.start()
    target = tmp_path / "copy.db"
    code, out, _ = run(capsys, "backup", str(target), "--config", str(deployment.config))
    stop.set()
    writer.join(30)
    assert code == 0
    assert out.startswith(f"backed up to {target}")
    assert os.stat(target).st_mode & 0o777 == 0o600
    assert not Path(f"{target}-wal").exists()
    copy_config = tmp_path / "copy.toml"
    copy_config.write_text(f'[storage]\npath = "{target}"\n[audit]\nkey = "{AUDIT_TEST_KEY}"\n')
    copied = sqlite3.connect(target).execute("SELECT count(*) FROM webhooks").fetchone()[0]
    assert copied >= 20
    code, out, _ = run(capsys, "audit", "verify", "--config", str(copy_config))
    assert code == 0, out
    code, _, err = run(capsys, "backup", str(target), "--config", str(deployment.config))
    assert code == 2
    assert "exists" in err


def test_purge_removes_old_payloads_and_a_redelivery_is_still_a_duplicate(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    from payhook.backends.sqlite import SqliteStore
    from payhook.service.process import Processor

    settings = load_settings(deployment.config, environ={})
    old_at = time.time() - 40 * 86400
    now = int(old_at)
    body = json.dumps(sample_event("payment_intent.succeeded", now)).encode()
    signature = stripe_signature(SECRET, now, body)
    request = WebhookRequest(body, {"stripe-signature": f"t={now},v1={signature}"})
    [old] = deployment.ingest.verify("stripe", request)
    old = old.__class__(**{**{f: getattr(old, f) for f in old.__slots__}, "received_at": old_at})
    assert deployment.writer.store([old]) == [Stored.NEW]
    [recent] = deployment.deliver(1)
    store = SqliteStore(deployment.database, writer=deployment.writer)
    processor = Processor(build_providers(settings.providers), store)
    processor.process(old.webhook_id)
    processor.process(recent)
    config = str(deployment.config)
    code, out, _ = run(capsys, "purge", "--dry-run", "--config", config)
    assert code == 0
    assert out.startswith("would purge the payloads of 1 processed webhooks")
    code, out, _ = run(capsys, "purge", "--config", config)
    assert out.startswith("purged the payloads of 1 processed webhooks")
    rows = dict(
        sqlite3.connect(deployment.database).execute(
            "SELECT webhook_id, length(payload) FROM webhooks"
        )
    )
    assert rows[old.webhook_id] == 0
    assert rows[recent] > 0
    assert deployment.writer.store(deployment.ingest.verify("stripe", request)) == [
        Stored.DUPLICATE
    ]


def test_version_config_check_and_help_that_names_actions(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    import payhook

    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"payhook {payhook.__version__}"
    code, out, _ = run(capsys, "config", "check", "--config", str(deployment.config))
    assert code == 0
    assert SECRET not in out
    assert AUDIT_TEST_KEY not in out
    assert f"*** ({len(SECRET)} characters)" in out
    with pytest.raises(SystemExit):
        main(["webhooks", "--help"])
    help_text = capsys.readouterr().out
    assert all(action in help_text for action in ("list", "show", "tail"))
