"""The embedded runtime's audit worker: keyed from ``audit.key``, or nothing starts."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from payhook.backends.sqlite import SqliteAuditLog
from payhook.config import parse_settings
from payhook.core.chain_key import HmacChainKey
from payhook.core.model import Stored
from payhook.errors import ConfigError
from payhook.runtimes.embedded import EmbeddedRuntime
from payhook.service.audit import verify_log
from tests.conftest import AUDIT_TEST_KEY, count_rows, running_runtime


def test_a_runtime_without_an_audit_key_refuses_to_be_built(tmp_path: Path) -> None:
    settings = parse_settings({"storage": {"path": str(tmp_path / "payhook.db")}})
    with pytest.raises(ConfigError, match=r"^audit\.key is not set: payhook serve needs"):
        EmbeddedRuntime(settings)
    assert not (tmp_path / "payhook.db").exists()


def test_the_audit_worker_authenticates_what_it_chains(tmp_path: Path) -> None:
    with running_runtime(
        tmp_path,
        server={"workers": 1},
        processing={"poll_interval_seconds": 0.01},
        providers={"stripe": {"secrets": ["whsec_runtime_audit_tests"]}},
    ) as runtime:
        request = runtime.providers["stripe"].sample_request("payment_intent.succeeded")
        assert runtime.writer.store(runtime.ingest.verify("stripe", request)) == [Stored.NEW]
        deadline = time.monotonic() + 10
        # webhook stored, webhook processed, payment created: all chained
        while count_rows(runtime.path, "audit") < 3 or count_rows(runtime.path, "changes"):
            assert time.monotonic() < deadline, "the audit trail never caught up"
            time.sleep(0.02)

    log = SqliteAuditLog(runtime.path)
    with log.snapshot():
        report = verify_log(log, HmacChainKey(AUDIT_TEST_KEY), log)
    assert report.ok, report.to_dict()
    assert report.payments == 1
    assert report.chain.head_mac is not None
    assert not verify_log(log, HmacChainKey("x" * 32)).ok
    log.conn.close()
