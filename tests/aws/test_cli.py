"""The operator commands against a deployed stack (``[aws] enabled``), on moto in-process.

Each test runs ``payhook`` as its entry point does (``main`` with argv), while the stack's
functions run as the event sources would invoke them (``tests/aws/flows.py``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from payhook.backends.aws.status_index import shard_of
from payhook.cli.main import main
from payhook.core.model import webhook_id_for
from payhook.runtimes.aws_lambda.audit import StreamAuditor
from tests.aws.emulator import REGION, AwsStack, stripe_body
from tests.aws.flows import (
    SECRET_CACHE_EXPIRY,
    STRIPE_ONLY,
    STRIPE_RENAMED,
    deliver,
    make_processor,
    process_until_dead_lettered,
    set_providers,
    webhook_status,
)
from tests.conftest import FakeClock

pytestmark = pytest.mark.aws


def write_config(tmp_path: Path, stack: AwsStack, *, shards: int = 1) -> Path:
    """A configuration naming the emulated stack's resources (they carry no suffix)."""
    config = tmp_path / "payhook.toml"
    config.write_text(
        "[aws]\n"
        "enabled = true\n"
        f'region = "{REGION}"\n'
        'environment = "test"\n'
        f'webhooks_table = "{stack.webhooks_table}"\n'
        f'payments_table = "{stack.payments_table}"\n'
        f'audit_table = "{stack.audit_table}"\n'
        'processing_queue = "payhook-processing"\n'
        'dead_letter_queue = "payhook-processing-dlq"\n'
        f'audit_key_id = "{stack.audit_key_id}"\n'
        f"audit_shards = {shards}\n"
    )
    return config


class Cli:
    def __init__(self, config: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.config, self.capsys = config, capsys

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main([*args, "--config", str(self.config)])
        out = self.capsys.readouterr()
        return code, out.out, out.err

    def json(self, *args: str) -> Any:
        code, out, err = self(*args, "--json")
        assert code == 0, err
        return json.loads(out)


@pytest.fixture
def cli(tmp_path: Path, stack: AwsStack, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(write_config(tmp_path, stack), capsys)


def audit(stack: AwsStack, clock: FakeClock) -> int:
    """The audit function over what both streams hold since the last call."""
    records = stack.stream_records(stack.webhooks_table)
    records += stack.stream_records(stack.payments_table)
    StreamAuditor.from_environment(stack.env, stack.clients, clock).handle({"Records": records})
    return len(records)


def test_poison_dead_letter_fix_cli_redrive_processes_once_and_the_audit_verifies(
    stack: AwsStack, clock: FakeClock, cli: Cli
) -> None:
    deliver(stack, clock, stripe_body("evt_cli_poison", "pi_cli_poison", amount=4200))
    webhook_id = webhook_id_for("stripe", "evt_cli_poison")
    set_providers(stack, STRIPE_RENAMED)  # the poison: no configured provider for it
    clock.advance(SECRET_CACHE_EXPIRY)
    process_until_dead_lettered(stack, make_processor(stack, clock))
    audit(stack, clock)
    assert webhook_status(stack, webhook_id) == "dead"
    assert stack.queue_depth(stack.dlq_url) == 1
    listed = cli.json("dead-letters", "list")
    assert [d["webhookId"] for d in listed] == [webhook_id]
    assert listed[0]["receiveCount"] == 3
    assert "no longer configured" in listed[0]["reason"]

    set_providers(stack, STRIPE_ONLY)  # the cause fixed
    clock.advance(SECRET_CACHE_EXPIRY)
    code, out, err = cli("dead-letters", "redrive")

    assert (code, out) == (0, "redriven: 1\n")
    assert "writing the AWS stack 'test' in eu-west-1" in err
    assert stack.queue_depth(stack.dlq_url) == 0
    polled = stack.poll_processor(make_processor(stack, clock).handle)
    assert polled == {"batchItemFailures": [], "received": 1}
    audit(stack, clock)
    assert cli("dead-letters", "redrive") == (
        0,
        "redriven: 0\n",
        "payhook: writing the AWS stack 'test' in eu-west-1\n",
    )
    assert stack.poll_processor(make_processor(stack, clock).handle)["received"] == 0

    assert cli.json("webhooks", "show", webhook_id)["status"] == "processed"
    payment = cli.json("payments", "show", "stripe", "pi_cli_poison")
    assert (payment["status"], payment["version"]) == ("succeeded", 1)
    assert [p["paymentId"] for p in cli.json("payments", "list")["payments"]] == ["pi_cli_poison"]
    assert (
        cli.json("payments", "list", "--provider", "stripe", "--status", "succeeded")["total"] == 1
    )
    assert cli.json("payments", "list", "--provider", "adyen")["total"] == 0
    assert cli.json("payments", "list", "--status", "refunded")["total"] == 0
    code, out, _ = cli("webhooks", "list")
    assert code == 0
    assert webhook_id in out
    assert out.endswith("1 of 1\n")
    code, out, _ = cli("audit", "verify")
    assert code == 0, out
    # The webhook received, dead, received, processed; the payment inserted.
    assert "audit chain main ok; 5 entries verified" in out
    assert "payments: 1 checked; webhooks: 1 checked; 0 with changes missing" in out


def test_webhooks_list_pages_with_dynamodb_cursors_and_filters(
    stack: AwsStack, clock: FakeClock, cli: Cli
) -> None:
    for i in range(5):
        deliver(stack, clock, stripe_body(f"evt_page_{i}", f"pi_page_{i}"))
        clock.advance(1)
    ids = {webhook_id_for("stripe", f"evt_page_{i}") for i in range(5)}

    first = cli.json("webhooks", "list", "--limit", "2")
    second = cli.json("webhooks", "list", "--limit", "2", "--cursor", first["cursor"])
    third = cli.json("webhooks", "list", "--limit", "2", "--cursor", second["cursor"])
    pages = [first, second, third]

    assert [len(p["webhooks"]) for p in pages] == [2, 2, 1]
    assert {p["total"] for p in pages} == {5}
    assert {w["webhookId"] for p in pages for w in p["webhooks"]} == ids
    by_status = cli.json("webhooks", "list", "--status", "received", "--limit", "3")
    times = [w["receivedAt"] for w in by_status["webhooks"]]
    assert (len(times), by_status["total"]) == (3, 5)
    assert times == sorted(times, reverse=True)  # the byStatus index: newest first
    assert cli.json("webhooks", "list", "--status", "processed")["total"] == 0
    only = cli.json("webhooks", "list", "--event-id", "evt_page_3")["webhooks"]
    assert [w["webhookId"] for w in only] == [webhook_id_for("stripe", "evt_page_3")]


def test_webhooks_list_by_status_pages_newest_first_across_the_index_shards(
    stack: AwsStack, clock: FakeClock, cli: Cli
) -> None:
    for i in range(7):
        deliver(stack, clock, stripe_body(f"evt_shard_{i}", f"pi_shard_{i}"))
        clock.advance(1)
    ids = [webhook_id_for("stripe", f"evt_shard_{i}") for i in range(7)]
    assert len({shard_of(i) for i in ids}) >= 3  # the pages must merge several shards

    pages = [cli.json("webhooks", "list", "--status", "received", "--limit", "3")]
    while pages[-1]["cursor"] is not None and len(pages) < 5:
        args = ("--status", "received", "--limit", "3", "--cursor", pages[-1]["cursor"])
        pages.append(cli.json("webhooks", "list", *args))

    assert [len(p["webhooks"]) for p in pages] == [3, 3, 1]
    assert {p["total"] for p in pages} == {7}
    listed = [w["webhookId"] for p in pages for w in p["webhooks"]]
    assert listed == ids[::-1]  # newest first across every page and shard, each once
    whole = cli.json("webhooks", "list", "--status", "received", "--limit", "7")
    assert (len(whole["webhooks"]), whole["cursor"]) == (7, None)  # every shard read
    assert cli("webhooks", "list", "--cursor", pages[0]["cursor"])[0] == 2  # not a Scan's


def test_replay_processes_a_processed_webhook_again_without_changing_the_ledger(
    stack: AwsStack, clock: FakeClock, cli: Cli
) -> None:
    deliver(stack, clock, stripe_body("evt_replay", "pi_replay", amount=700))
    stack.poll_processor(make_processor(stack, clock).handle)
    webhook_id = webhook_id_for("stripe", "evt_replay")
    before = stack.payment_items()

    code, out, _ = cli("replay", webhook_id)

    assert (code, out) == (0, f"queued {webhook_id} for processing\n")
    assert webhook_status(stack, webhook_id) == "received"
    assert stack.poll_processor(make_processor(stack, clock).handle)["received"] == 1
    assert webhook_status(stack, webhook_id) == "processed"
    assert stack.payment_items() == before
    assert cli("replay", "wh_nope")[0] == 1


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("webhooks", "show", "wh_missing"), 1, "no webhook 'wh_missing' in the AWS stack"),
        (("payments", "show", "stripe", "pi_missing"), 1, "no payment stripe/pi_missing"),
        (("webhooks", "list", "--cursor", "w12"), 2, "expected a cursor this command printed"),
        (("webhooks", "list", "--cursor", "dnotbase64!"), 2, "expected a cursor"),
        (("webhooks", "tail"), 2, "works on the embedded database only"),
        (("outbox", "list"), 2, "works on the embedded database only"),
        (("dead-letters", "redrive", "wh_alive"), 1, "wh_alive is not a dead letter (missing)"),
    ],
)
def test_bad_input_gets_a_clear_error_and_no_traceback(
    cli: Cli, args: tuple[str, ...], code: int, message: str
) -> None:
    got, out, err = cli(*args)
    assert got == code
    assert message in err
    assert "Traceback" not in out + err


def test_a_stack_that_is_not_there_is_a_clear_error(
    tmp_path: Path, stack: AwsStack, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "other.toml"
    config.write_text(f'[aws]\nenabled = true\nregion = "{REGION}"\nenvironment = "nowhere"\n')
    code, _out, err = Cli(config, capsys)("webhooks", "list")
    assert code == 2
    assert "ResourceNotFoundException" in err
    code, _, err = Cli(config, capsys)("dead-letters", "redrive")
    assert code == 2
    assert "finding the queue payhook-processing-nowhere failed" in err
