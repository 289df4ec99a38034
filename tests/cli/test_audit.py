"""``payhook audit head`` / ``audit verify`` and the audit key at start-up, as an operator runs
them: the real command in a subprocess, its output and its exit status."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from payhook.backends.sqlite import (
    GroupCommitWriter,
    SqliteAuditLog,
    SqliteStore,
    connect,
    initialize,
)
from payhook.core.chain_key import HmacChainKey
from payhook.service.process import Processor
from tests.backends.sqlite.helpers import stored, stripe_provider
from tests.conftest import AUDIT_TEST_KEY, FakeClock


def write_config(tmp_path: Path, *, key: str | None = AUDIT_TEST_KEY) -> Path:
    config = tmp_path / "payhook.toml"
    audit = f'[audit]\nkey = "{key}"\n' if key is not None else ""
    config.write_text(
        f'[server]\nport = 0\n[storage]\npath = "{tmp_path / "payhook.db"}"\n{audit}'
        '[providers.stripe]\nsecrets = ["whsec_cli_test_secret_value"]\n'
    )
    return config


def sql(db: Path, *statements: str) -> None:
    """Edit the database as someone with write access would, on a connection closed before the
    next command runs (an open one would also see each command through its own snapshot)."""
    conn = connect(db)
    try:
        for statement in statements:
            conn.execute(statement)
    finally:
        conn.close()


def drain(db: Path) -> int:
    log = SqliteAuditLog(db)
    try:
        return log.drain(HmacChainKey(AUDIT_TEST_KEY))
    finally:
        log.conn.close()


def payhook(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYHOOK_")}
    return subprocess.run(
        [sys.executable, "-m", "payhook", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A database with two processed Stripe payments, audited with the configured key."""
    clock = FakeClock()
    db = tmp_path / "payhook.db"
    initialize(db)
    writer = GroupCommitWriter(db)
    writer.start()
    webhooks = [stored(clock, payment_id=f"pi_{n}", amount=1000 * n) for n in (1, 2)]
    writer.store(webhooks)
    writer.stop()
    store = SqliteStore(db)
    processor = Processor({"stripe": stripe_provider(clock)}, store, clock)
    for webhook in webhooks:
        processor.process(webhook.webhook_id)
    store.close()
    assert drain(db) == 6
    return write_config(tmp_path)


def test_audit_head_prints_the_authenticated_head_to_anchor(config: Path) -> None:
    log = SqliteAuditLog(config.parent / "payhook.db")
    head = log.head()
    log.conn.close()
    assert head is not None
    assert head.mac is not None

    done = payhook(config, "audit", "head")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:3] == [f"seq   {head.seq}", f"hash  {head.hash}", f"mac   {head.mac}"]
    assert f"payhook audit verify --expect-head {head.seq}:{head.hash}" in done.stdout

    as_json = json.loads(payhook(config, "audit", "head", "--json").stdout)
    assert as_json == {
        "seq": head.seq,
        "hash": head.hash,
        "mac": head.mac,
        "anchor": f"{head.seq}:{head.hash}",
    }


def test_verify_passes_then_holds_the_chain_to_an_anchored_head(config: Path) -> None:
    db = config.parent / "payhook.db"
    earlier = json.loads(payhook(config, "audit", "head", "--json").stdout)["anchor"]
    done = payhook(config, "audit", "verify", "--expect-head", earlier)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("audit chain ok; 6 entries verified; head 6 authenticated")
    assert "payments: 2 checked, 0 do not match" in done.stdout

    sql(db, "UPDATE webhooks SET status = 'dead' WHERE rowid = 1")
    assert drain(db) == 1
    later = json.loads(payhook(config, "audit", "head", "--json").stdout)["anchor"]
    assert later.startswith("7:")

    # Someone with the database cuts the chain back to the earlier authenticated head:
    sql(
        db,
        "DELETE FROM audit WHERE seq = 7",
        "UPDATE audit_head SET seq = 6, hash = (SELECT hash FROM audit WHERE seq = 6)",
    )
    assert payhook(config, "audit", "verify").returncode == 0  # what the chain alone cannot see
    done = payhook(config, "audit", "verify", "--expect-head", later)
    assert done.returncode == 1
    assert "audit chain BROKEN at entry 7: chain ends before the anchored head" in done.stdout


def test_verify_fails_naming_a_payment_row_edited_behind_the_ledger(config: Path) -> None:
    sql(config.parent / "payhook.db", "UPDATE payments SET amount = 1 WHERE payment_id = 'pi_2'")

    done = payhook(config, "audit", "verify")
    assert done.returncode == 1
    assert "audit chain ok" in done.stdout
    assert "payment stripe/pi_2: row does not match the ledger" in done.stdout
    report = json.loads(payhook(config, "audit", "verify", "--json").stdout)
    assert (report["ok"], report["chainOk"]) == (False, True)
    assert [p["payment"] for p in report["paymentProblems"]] == ["stripe/pi_2"]


def test_verify_with_another_key_fails(config: Path, tmp_path: Path) -> None:
    other = write_config(tmp_path, key="x" * 40)
    done = payhook(other, "audit", "verify")
    assert done.returncode == 1
    assert "MAC does not match" in done.stdout
    assert payhook(other, "audit", "head").returncode == 1


@pytest.mark.parametrize("action", ["verify", "head"])
def test_audit_commands_without_a_key_exit_2_naming_the_setting(
    tmp_path: Path, action: str
) -> None:
    done = payhook(write_config(tmp_path, key=None), "audit", action)
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert line.startswith(f"payhook: audit.key is not set: payhook audit {action} needs")
    assert "PAYHOOK_AUDIT_KEY" in line
    assert not (tmp_path / "payhook.db").exists()  # refused before touching storage


@pytest.mark.parametrize("anchor", ["3", "x:" + "a" * 64, "0:" + "a" * 64, "3:" + "g" * 64])
def test_a_malformed_anchor_is_bad_usage(config: Path, anchor: str) -> None:
    done = payhook(config, "audit", "verify", "--expect-head", anchor)
    assert done.returncode == 2
    assert "expected" in done.stderr


def test_serve_without_a_key_refuses_to_start_with_one_line(tmp_path: Path) -> None:
    done = payhook(write_config(tmp_path, key=None), "serve")
    assert done.returncode == 2
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith("payhook: audit.key is not set: payhook serve needs the key")
    assert "openssl rand -hex 32" in line
    assert "PAYHOOK_AUDIT_KEY" in line


def test_serve_refuses_a_short_key_without_showing_it(tmp_path: Path) -> None:
    done = payhook(write_config(tmp_path, key="short-key"), "serve")
    assert done.returncode == 2
    assert done.stderr.strip() == ("payhook: audit.key: got str, expected str of length >= 32")
