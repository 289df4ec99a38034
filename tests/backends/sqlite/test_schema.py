"""The schema: numbered migrations, private files, and a WAL that shrinks after a burst."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from payhook.backends.sqlite import schema
from payhook.backends.sqlite.schema import connect, initialize, migrations
from payhook.errors import StorageUnavailableError


def _mode(path: Path | str) -> int:
    return os.stat(path).st_mode & 0o777


def test_a_database_of_the_schema_before_migrations_migrates_and_keeps_its_rows(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    [(_, initial)] = [m for m in migrations() if m[0] == 1]
    conn.executescript(initial)  # as a database made before numbered migrations: version 0
    conn.execute(
        "INSERT INTO webhooks (webhook_id, provider, provider_type, event_id, event_type,"
        " status, payload, received_at) VALUES ('wh_1', 'shop', 'shopify', 'X1', 'orders/paid',"
        " 'processed', x'7b7d', 1.0)"
    )
    conn.commit()
    conn.close()
    latest = migrations()[-1][0]
    assert initialize(path) == latest
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == latest
    row = conn.execute("SELECT webhook_id, status, id_signed, conflict FROM webhooks").fetchone()
    assert row == ("wh_1", "processed", 1, 0)
    conn.close()
    assert initialize(path) == latest  # again: nothing to do


def test_a_database_newer_than_this_payhook_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    initialize(path)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 999")
    conn.close()
    with pytest.raises(StorageUnavailableError, match="schema version 999 is newer"):
        initialize(path)


def test_the_database_its_wal_and_shm_are_private_and_a_new_folder_is_0700(
    tmp_path: Path,
) -> None:
    old = os.umask(0o022)  # the usual umask, which leaves new files readable by all
    try:
        path = tmp_path / "data" / "payhook.db"
        initialize(path)
        conn = connect(path, durable=True)
        conn.execute("INSERT INTO changes (entity, entity_key, action, data) VALUES (1,1,1,1)")
        assert _mode(path.parent) == 0o700
        for name in ("payhook.db", "payhook.db-wal", "payhook.db-shm"):
            assert _mode(path.parent / name) == 0o600, name
        assert schema.exposed(path) == []
        conn.close()
    finally:
        os.umask(old)


def test_exposed_names_database_files_others_can_read(tmp_path: Path) -> None:
    path = tmp_path / "payhook.db"
    initialize(path)
    path.chmod(0o644)
    assert schema.exposed(path) == [str(path)]


def test_the_wal_shrinks_back_after_a_burst(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(schema, "JOURNAL_SIZE_LIMIT_BYTES", 1024 * 1024)
    path = tmp_path / "payhook.db"
    initialize(path)
    writer = connect(path, durable=True)
    writer.execute("CREATE TABLE blobs (data BLOB)")
    for _ in range(50):  # a burst: ~5 MB through the WAL, no checkpoint meanwhile
        writer.execute("INSERT INTO blobs VALUES (?)", (os.urandom(100_000),))
    wal = Path(f"{path}-wal")
    assert wal.stat().st_size > 4 * 1024 * 1024
    schema.checkpoint(connect(path))
    assert wal.stat().st_size <= 1024 * 1024
    writer.execute("INSERT INTO blobs VALUES (x'00')")  # and it keeps working
    writer.close()
