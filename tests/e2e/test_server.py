"""End to end: the real server on loopback, the real CLI, one SQLite database."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import httpx
import pytest

from payhook.providers.stripe import sample_event, stripe_signature
from tests.e2e.conftest import STRIPE_SECRET, PayhookServer

pytestmark = pytest.mark.e2e


def _signed(event: dict[str, object], secret: str = STRIPE_SECRET) -> tuple[bytes, dict[str, str]]:
    now = int(time.time())
    body = json.dumps(event).encode()
    return body, {
        "content-type": "application/json",
        "stripe-signature": f"t={now},v1={stripe_signature(secret, now, body)}",
    }


def _post(server: PayhookServer, body: bytes, headers: dict[str, str], provider: str = "stripe"):
    return httpx.post(f"{server.url}/webhook/{provider}", content=body, headers=headers, timeout=10)


def _webhooks(server: PayhookServer, *args: str) -> list[dict[str, object]]:
    page = server.cli_json("webhooks", "list", "--limit", "1000", *args)
    return page["webhooks"]  # type: ignore[index, no-any-return]


def test_a_signed_payment_ends_processed_in_the_ledger_with_a_valid_audit_trail(
    server: PayhookServer,
) -> None:
    event = sample_event("payment_intent.succeeded", int(time.time()), payment_id="pi_e2e_1")
    response = _post(server, *_signed(event))
    assert response.status_code == 200
    answer = response.json()
    assert answer["duplicate"] is False
    webhook_id = answer["webhookId"]

    server.wait_for(lambda: _webhooks(server, "--status", "processed") != [])
    shown = server.cli_json("webhooks", "show", webhook_id)
    assert shown["status"] == "processed"  # type: ignore[index]
    assert shown["eventId"] == event["id"]  # type: ignore[index]
    payment = server.cli_json("payments", "show", "stripe", "pi_e2e_1")
    assert payment["status"] == "succeeded"  # type: ignore[index]
    assert payment["amount"] == 2000  # type: ignore[index]
    assert payment["currency"] == "USD"  # type: ignore[index]
    assert payment["amountRefunded"] == 0  # type: ignore[index]

    def audited() -> bool:
        report = server.cli_json("audit", "verify")
        return bool(report["ok"]) and report["entries"] == 3  # type: ignore[index]

    server.wait_for(audited)
    status = httpx.get(f"{server.admin_url}/status", timeout=10).json()
    assert (status["processed"], status["processingFailures"]) == (1, 0)
    assert status["status"] == "pass"


def test_refund_after_payment_updates_the_ledger(server: PayhookServer) -> None:
    now = int(time.time())
    for event_type in ("payment_intent.succeeded", "refund.created"):
        event = sample_event(event_type, now, payment_id="pi_e2e_refund", amount=500)
        assert _post(server, *_signed(event)).status_code == 200
    server.wait_for(
        lambda: (
            server.cli_json("payments", "show", "stripe", "pi_e2e_refund")["status"]  # type: ignore[index]
            == "refunded"
            if server.cli("payments", "show", "stripe", "pi_e2e_refund").returncode == 0
            else False
        )
    )


def test_a_duplicate_delivery_is_acknowledged_and_changes_nothing(server: PayhookServer) -> None:
    body, headers = _signed(sample_event("payment_intent.succeeded", int(time.time())))
    first = _post(server, body, headers).json()
    server.wait_for(lambda: _webhooks(server, "--status", "processed") != [])
    server.wait_for(lambda: server.cli_json("audit", "verify")["entries"] == 3)  # type: ignore[index]
    second = _post(server, body, headers)
    assert second.status_code == 200
    assert second.json()["duplicate"] is True
    assert second.json()["webhookId"] == first["webhookId"]
    time.sleep(0.5)
    assert len(_webhooks(server)) == 1
    assert server.cli_json("audit", "verify")["entries"] == 3  # type: ignore[index]


def test_a_tampered_webhook_gets_401_and_nothing_is_stored(server: PayhookServer) -> None:
    body, headers = _signed(sample_event("payment_intent.succeeded", int(time.time())))
    tampered = body.replace(b'"amount": 2000', b'"amount": 9000')
    assert tampered != body
    response = _post(server, tampered, headers)
    assert response.status_code == 401
    assert response.json()["error"] == "verification_failed"
    wrong_secret = _post(server, *_signed(json.loads(body), secret="whsec_other"))
    assert wrong_secret.status_code == 401
    unsigned = _post(server, body, {"content-type": "application/json"})
    assert unsigned.status_code == 401
    assert _webhooks(server) == []


def test_http_errors_name_the_problem(tmp_path: Path) -> None:
    server = PayhookServer(tmp_path, body_limit=4096)
    server.start()
    try:
        assert _post(server, b"{}", {}, provider="nope").status_code == 404
        big = _post(server, b"x" * 5000, {"content-type": "application/json"})
        assert big.status_code == 413
        body, headers = _signed({"not": "an event"})  # authentic but unusable: no id/type
        assert _post(server, body, headers).status_code == 400
        not_json = b"\xff\xfe not json"
        now = int(time.time())
        sig = f"t={now},v1={stripe_signature(STRIPE_SECRET, now, not_json)}"
        assert _post(server, not_json, {"stripe-signature": sig}).status_code == 400
        assert httpx.get(f"{server.url}/webhook/stripe").status_code == 405
        assert _webhooks(server) == []
    finally:
        server.stop()


def test_acknowledged_webhooks_survive_kill_9_and_are_processed_after_restart(
    tmp_path: Path,
) -> None:
    server = PayhookServer(tmp_path, workers=0)  # receive-only: the queue fills up
    server.start()
    acked = []
    for i in range(20):
        event = sample_event("payment_intent.succeeded", int(time.time()), payment_id=f"pi_k{i}")
        response = _post(server, *_signed(event))
        assert response.status_code == 200
        acked.append(response.json()["webhookId"])
    assert server.stop(signal.SIGKILL) == -signal.SIGKILL

    server.write_config(workers=2)
    server.start()
    try:
        server.wait_for(lambda: len(_webhooks(server, "--status", "processed")) == 20)
        processed = {w["webhookId"] for w in _webhooks(server)}
        assert processed == set(acked)
        payments = server.cli_json("payments", "list", "--status", "succeeded")["payments"]  # type: ignore[index]
        assert len(payments) == 20  # type: ignore[arg-type]
        server.wait_for(lambda: server.cli_json("audit", "verify")["entries"] == 60)  # type: ignore[index]
        assert server.cli_json("audit", "verify")["ok"] is True  # type: ignore[index]
    finally:
        server.stop()


def test_sigterm_shuts_down_cleanly(server: PayhookServer) -> None:
    body, headers = _signed(sample_event("payment_intent.succeeded", int(time.time())))
    assert _post(server, body, headers).status_code == 200
    assert server.stop(signal.SIGTERM) == 0
    result = server.cli("webhooks", "list", "--json")
    assert len(json.loads(result.stdout)["webhooks"]) == 1


def test_cli_reports_missing_things_and_bad_usage(server: PayhookServer) -> None:
    missing = server.cli("webhooks", "show", "wh_missing")
    assert missing.returncode == 1
    assert "no webhook 'wh_missing'" in missing.stderr
    assert server.cli("payments", "show", "stripe", "pi_none").returncode == 1
    bad = server.cli("send", "nope")
    assert bad.returncode == 1
    assert "no provider named 'nope'" in bad.stderr


def test_payhook_send_drives_a_payment_to_succeeded(server: PayhookServer) -> None:
    result = server.cli("send", "stripe", "payment_intent.succeeded")
    assert result.returncode == 0, result.stderr
    assert "-> 200" in result.stdout
    payment_id = result.stdout.strip().split("payment: ")[-1]
    assert payment_id.startswith("pi_")
    server.wait_for(lambda: server.cli("payments", "show", "stripe", payment_id).returncode == 0)
    assert server.cli_json("payments", "show", "stripe", payment_id)["status"] == "succeeded"  # type: ignore[index]


def test_publishes_an_openapi_document_of_its_webhook_endpoint(server: PayhookServer) -> None:
    document = httpx.get(f"{server.url}/openapi.json", timeout=10).json()
    operation = document["paths"]["/webhook/{provider}"]["post"]
    assert operation["parameters"][0]["schema"]["enum"] == ["standard", "stripe"]
    assert {"200", "400", "401", "404", "413", "503"} <= set(operation["responses"])
