"""The dashboard and alert rules under docs/monitoring/ query only metrics payhook exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client import generate_latest

from payhook.backends.sqlite.reader import Backlog
from payhook.runtimes.metrics import Metrics, StoredState

DOCS = Path(__file__).resolve().parents[1] / "docs" / "monitoring"


def _exported() -> set[str]:
    metrics = Metrics(StoredState(lambda: Backlog(0, None, 0, 0)))
    metrics.deliveries.labels("stripe", "200").inc()
    metrics.verification_failures.labels("stripe", "mismatch").inc()
    metrics.missed_events.labels("stripe").inc()
    text = generate_latest(metrics.registry).decode()
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}


def _queried(expr: str) -> set[str]:
    return set(re.findall(r"\bpayhook_[a-z_]+", expr))


def test_every_alert_rule_queries_exported_metrics() -> None:
    rules = yaml.safe_load((DOCS / "alerts.yml").read_text())["groups"][0]["rules"]
    exported = _exported()
    assert len(rules) >= 8
    for rule in rules:
        assert _queried(rule["expr"]) <= exported, rule["alert"]
        assert rule["annotations"]["runbook"], rule["alert"]
    names = {name for rule in rules for name in _queried(rule["expr"])}
    assert {"payhook_dead_letters", "payhook_queue_oldest_age_seconds"} <= names


def test_every_dashboard_panel_queries_exported_metrics() -> None:
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
    exported = _exported()
    queried = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            assert _queried(target["expr"]) <= exported, panel["title"]
            queried |= _queried(target["expr"])
    # Every metric payhook exports is on the dashboard (histograms through their buckets).
    shown = {n for n in exported if not n.endswith(("_created", "_count", "_sum"))}
    assert queried == shown
