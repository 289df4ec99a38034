"""cdk-nag AwsSolutions and PCI DSS 3.2.1: no open finding, every acknowledgment justified."""

from __future__ import annotations

import pytest

from tests.infra.cfn import Synthesized

pytestmark = pytest.mark.infra

PACKS = {"AwsSolutions", "PCI.DSS.321"}


def test_cdk_nag_reports_no_unacknowledged_finding(synthesized: Synthesized) -> None:
    report = synthesized.validation_report()
    conclusions = {p["pluginName"]: p["conclusion"] for p in report["pluginReports"]}
    open_findings = [
        (p["pluginName"], v["ruleName"], c["constructPath"])
        for p in report["pluginReports"]
        for v in p["violations"]
        for c in v["violatingConstructs"]
    ]

    assert synthesized.error is None, open_findings
    assert open_findings == []
    assert set(conclusions) >= PACKS
    assert all(conclusion == "success" for conclusion in conclusions.values())


def test_every_acknowledgment_silences_a_real_finding(synthesized: Synthesized) -> None:
    # A stale acknowledgment (its finding fixed or moved) would hide the next real one.
    acknowledged = set(synthesized.acknowledgments())
    used = {
        (v["acknowledgedAt"], v["acknowledgedId"])
        for p in synthesized.validation_report()["pluginReports"]
        for v in p.get("suppressedViolations", [])
    }

    assert acknowledged
    assert acknowledged == used


def test_every_acknowledgment_gives_a_specific_reason(synthesized: Synthesized) -> None:
    reasons = synthesized.acknowledgments()

    for (path, finding), reason in reasons.items():
        assert len(reason.split()) >= 15, (path, finding)
    by_reason: dict[str, set[str]] = {}
    for (_, finding), reason in reasons.items():
        by_reason.setdefault(reason, set()).add(finding.split("[")[0])
    # One reason may cover the same rule on several constructs, not unrelated rules.
    assert all(len(rules) <= 2 for rules in by_reason.values()), by_reason
