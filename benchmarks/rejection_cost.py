"""Rejection cost: what a forged delivery costs each provider before it is turned away.

A webhook endpoint is public: anyone can post to it, so the work done before the signature
is checked must be linear in the body with a small constant. Two measurements:

- in process: for every available provider, several worst-case shaped bodies of 1 KiB, 64 KiB
  and 1 MiB (JSON of tiny values or of nested empty lists, deep nesting, Adyen's array of tiny
  items, form bodies of escapes or of many fields), each sent unsigned or wrongly signed
  (well-formed headers with a fresh timestamp, signed over another body), through
  the ingest flow's ``prepare`` until it refuses (401, or 413 over a provider's own body
  limit); reported in microseconds per KiB,
  the worst shape per size, with the garbage collector tuned as ``payhook serve`` tunes it.
- against a real ``payhook serve`` on loopback: the acknowledgment latency of paced Stripe
  deliveries alone, then beside a paced stream of the costliest forged request found in
  process (20/s by default), each phase bounded in time.

    python benchmarks/rejection_cost.py [--rounds 5] [--ms 60] [--seconds 20] [--junk-rate 20]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.report import machine, percentile, update_section
from payhook.core.model import WebhookRequest
from payhook.providers import Provider
from payhook.server.run import tune_gc
from payhook.service.ingest import Ingest, PreparedDelivery
from tests.reliability import fleet, loadgen
from tests.reliability.server import ReliabilityServer

SIZES = (1024, 64 * 1024, 1024 * 1024)
Shape = Callable[[int], bytes]

# shapes ----------------------------------------------------------------------------------------


def _fill(prefix: bytes, unit: bytes, suffix: bytes, size: int) -> bytes:
    """``prefix`` + as many ``unit,`` as fit in ``size`` bytes + ``suffix`` (JSON arrays)."""
    count = max(1, (size - len(prefix) - len(suffix) + 1) // (len(unit) + 1))
    return prefix + b",".join([unit] * count) + suffix


def json_tiny_values(size: int) -> bytes:
    return _fill(b'{"events":[', b"0", b"]}", size)


def json_nested_lists(size: int) -> bytes:
    # The costliest JSON per byte for json.loads: a list object for every two bytes.
    return _fill(b'{"events":[', b"[[[[]]]]", b"]}", size)


def json_deep(size: int) -> bytes:
    return b"[" * size


#: An Adyen item shaped like Adyen's, with a signature that does not match it.
_ADYEN_ITEM = json.dumps(
    {
        "additionalData": {"hmacSignature": "coqCmt/IZ4E3CzPvMY8zTjQVL5hYJUiBRg8UU+iCWo0="},
        "amount": {"currency": "EUR", "value": 1130},
        "eventCode": "AUTHORISATION",
        "merchantAccountCode": "PayhookTest",
        "merchantReference": "order-6735",
        "pspReference": "7914073381342284",
        "success": "true",
    },
    separators=(",", ":"),
).encode()


def adyen_tiny_items(size: int) -> bytes:
    # The reported finding: {"notificationItems":[0,0,...]}.
    return _fill(b'{"notificationItems":[', b"0", b"]}", size)


def adyen_item_beside_nested_lists(size: int) -> bytes:
    # One plausible item (first, so its check is what fails), the rest the costliest JSON.
    prefix = b'{"notificationItems":[{"NotificationRequestItem":' + _ADYEN_ITEM + b'}],"x":['
    return _fill(prefix, b"[[[[]]]]", b"]}", size)


def adyen_item_with_many_fields(size: int) -> bytes:
    prefix = b'{"notificationItems":[{"NotificationRequestItem":' + _ADYEN_ITEM[:-1] + b',"x":{'
    count = max(1, (size - len(prefix)) // 12)
    fields = b",".join(b'"%06x":0' % i for i in range(count))
    return prefix + fields + b"}}}]}"


def _braintree(signature: bytes, payload: Callable[[int], bytes]) -> Shape:
    def shape(size: int) -> bytes:
        head = b"bt_signature=" + signature + b"&bt_payload="
        return head + payload(max(1, size - len(head)))

    return shape


#: A pair for the configured public key with a well-formed (wrong) hexsig: the payload path.
_BT_PAIR = f"{fleet.SECTIONS['braintree']['public_key']}%7C{'0' * 40}".encode()


def braintree_escaped_payload(size: int) -> bytes:
    return _braintree(_BT_PAIR, lambda n: b"%2B" * (n // 3))(size)


def braintree_percent_signs(size: int) -> bytes:
    return _braintree(_BT_PAIR, lambda n: b"%" * n)(size)


def braintree_escaped_letters(size: int) -> bytes:
    return _braintree(_BT_PAIR, lambda n: b"%41" * (n // 3))(size)


def braintree_long_signature(size: int) -> bytes:
    return b"bt_payload=AAAA&bt_signature=" + b"%26" * ((size - 29) // 3)


def braintree_many_fields(size: int) -> bytes:
    return b"bt_signature=" + _BT_PAIR + b"&bt_payload=AAAA" + b"&x=1" * ((size - 80) // 4)


def mollie_classic_fields(size: int) -> bytes:
    return b"id=tr_d0b0E3EA3v" + b"&x=1" * ((size - 16) // 4)


@dataclasses.dataclass(frozen=True)
class Case:
    """A provider as configured (``overrides`` on top of the fleet section) and how a forged
    delivery to it is shaped and signed."""

    label: str
    name: str
    shapes: dict[str, Shape]
    signed: bool = True  # headers of a real sample (signed over another body), else none
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)


_JSON: dict[str, Shape] = {"tiny values": json_tiny_values, "nested lists": json_nested_lists}
SPECIAL = {
    "adyen": Case(
        "adyen",
        "adyen",
        {
            "notificationItems [0,0,...]": adyen_tiny_items,
            "one item + nested lists": adyen_item_beside_nested_lists,
            "one item with many fields": adyen_item_with_many_fields,
            "deep nesting": json_deep,
        },
        signed=False,
    ),
    "braintree": Case(
        "braintree",
        "braintree",
        {
            "payload of %2B": braintree_escaped_payload,
            "payload of %": braintree_percent_signs,
            "payload of %41": braintree_escaped_letters,
            "signature of %26": braintree_long_signature,
            "many fields": braintree_many_fields,
        },
        signed=False,
    ),
}


def cases(names: list[str]) -> list[Case]:
    out = [SPECIAL.get(name, Case(name, name, _JSON)) for name in names]
    if "mollie" in names:
        out.append(
            Case(
                "mollie (allow_classic)",
                "mollie",
                {"unsigned form fields": mollie_classic_fields},
                signed=False,
                overrides={"allow_classic": True},
            )
        )
    return out


def build(case: Case, now: float) -> Provider:
    section = {**fleet.sections([case.name])[case.name], **case.overrides}
    return fleet.build({case.name: section}, lambda: now)[case.name]


def forged(case: Case, provider: Provider, body: bytes) -> WebhookRequest:
    headers = dict(provider.sample_request().headers) if case.signed else {}
    if case.name == "braintree":
        headers["content-type"] = "application/x-www-form-urlencoded"
    headers.setdefault("content-type", "application/json")
    return WebhookRequest(body, headers)


# in process ------------------------------------------------------------------------------------


def _seconds_per_call(call: Callable[[], None], target: float) -> float:
    calls, start = 0, time.perf_counter()
    while True:
        call()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= target and calls >= 3:
            return elapsed / calls


def rejection(provider: Provider, request: WebhookRequest) -> Callable[[], None]:
    """What the server does with a forged delivery once its body is read: the flow's prepare
    (a body over the provider's own limit is a 413 there, unparsed)."""
    ingest = Ingest({provider.name: provider}, provider.clock)
    refused = {provider.rejection_status, 413}

    def call() -> None:
        answer = ingest.prepare(provider.name, request)
        if isinstance(answer, PreparedDelivery) or answer.status not in refused:
            raise AssertionError(f"{provider.name}: a forged delivery was not refused")

    call()  # fails here, not mid-measurement, if a shape is not rejected as it should be
    return call


@dataclasses.dataclass
class Row:
    """One provider's worst shape at each size: its cost per KiB and per request."""

    case: Case
    us_per_kib: dict[int, float]
    ms_per_request: dict[int, float]
    worst_shape: dict[int, str]

    def costliest_size(self) -> int:
        return max(SIZES, key=lambda size: self.ms_per_request[size])


def measure(case: Case, rounds: int, target_ms: float) -> Row:
    now = time.time()
    provider = build(case, now)
    row = Row(case, {}, {}, {})
    for size in SIZES:
        for label, shape in case.shapes.items():
            request = forged(case, provider, shape(size))
            call = rejection(provider, request)
            per_call = statistics.median(
                _seconds_per_call(call, target_ms / 1000) for _ in range(rounds)
            )
            us_per_kib = per_call * 1e6 / (len(request.body) / 1024)
            if us_per_kib > row.us_per_kib.get(size, -1.0):
                row.us_per_kib[size], row.worst_shape[size] = us_per_kib, label
                row.ms_per_request[size] = per_call * 1000
    return row


def costliest(rows: list[Row]) -> Row:
    """The provider whose worst forged request (of any size) costs the most."""
    return max(rows, key=lambda r: r.ms_per_request[r.costliest_size()])


# against payhook serve -------------------------------------------------------------------------


@dataclasses.dataclass
class Phase:
    label: str
    stripe_latencies: list[float]
    stripe_statuses: Counter[int | None]
    junk_sent: int = 0
    junk_statuses: Counter[int | None] = dataclasses.field(default_factory=Counter)
    junk_latencies: list[float] = dataclasses.field(default_factory=list)


def _stripe_deliveries(server: ReliabilityServer, count: int) -> list[bytes]:
    stripe = server.providers()["stripe"]
    return [fleet.Delivery("stripe", stripe.sample_request(), ()).http() for _ in range(count)]


async def _phase(
    port: int, stripe: list[bytes], junk: list[bytes], args: argparse.Namespace
) -> list[list[loadgen.Answer]]:
    deadline = time.monotonic() + args.seconds
    stripe_load = loadgen.send(
        port,
        stripe,
        concurrency=8,
        request_timeout=60,
        deadline=deadline,
        rate=args.stripe_rate,
    )
    if not junk:
        return [await stripe_load, []]
    junk_load = loadgen.send(
        port,
        junk,
        concurrency=16,
        request_timeout=60,
        deadline=deadline,
        rate=args.junk_rate,
    )
    return list(await asyncio.gather(stripe_load, junk_load))


def against_server(worst: Row, args: argparse.Namespace) -> list[Phase]:
    case, size = worst.case, worst.costliest_size()
    names = ["stripe"] if case.name == "stripe" else ["stripe", case.name]
    workdir = Path(tempfile.mkdtemp(prefix="payhook-rejection-"))
    server = ReliabilityServer(workdir, names, overrides={case.name: case.overrides})
    provider = server.providers()[case.name]
    request = forged(case, provider, case.shapes[worst.worst_shape[size]](size))
    junk_one = fleet.Delivery(case.name, request, ()).http()
    count = int(args.junk_rate * args.seconds) + 1
    phases = []
    server.start()
    try:
        for label, junk in (
            ("Stripe alone", []),
            (f"beside {args.junk_rate:g}/s forged {case.label}", [junk_one] * count),
        ):
            stripe = _stripe_deliveries(server, int(args.stripe_rate * args.seconds) + 1)
            stripe_answers, junk_answers = asyncio.run(_phase(server.port, stripe, junk, args))
            phases.append(
                Phase(
                    label,
                    [a.latency for a in stripe_answers if a.status == 200],
                    Counter(a.status for a in stripe_answers),
                    len(junk_answers),
                    Counter(a.status for a in junk_answers),
                    [a.latency for a in junk_answers],
                )
            )
            last = phases[-1]
            print(
                f"{label}: Stripe p50 {_ms(percentile(last.stripe_latencies, 50))} ms,"
                f" p99 {_ms(percentile(last.stripe_latencies, 99))} ms,"
                f" {dict(last.stripe_statuses)}; forged {dict(last.junk_statuses)}",
                flush=True,
            )
    finally:
        server.stop()
    return phases


# report ----------------------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f}"


def _size(size: int) -> str:
    return f"{size // 1024} KiB" if size < 1024 * 1024 else f"{size // (1024 * 1024)} MiB"


def report(rows: list[Row], phases: list[Phase], args: argparse.Namespace) -> str:
    worst = costliest(rows)
    worst_size = worst.costliest_size()
    table = [
        f"| {r.case.label} | {r.us_per_kib[SIZES[0]]:.2f} | {r.us_per_kib[SIZES[1]]:.2f} |"
        f" {r.us_per_kib[SIZES[2]]:.2f} | {r.ms_per_request[r.costliest_size()]:.2f}"
        f" ({_size(r.costliest_size())}, {r.worst_shape[r.costliest_size()]}) |"
        for r in sorted(rows, key=lambda r: -r.ms_per_request[r.costliest_size()])
    ]
    latency = [
        f"| {p.label} | {len(p.stripe_latencies)} | {_ms(percentile(p.stripe_latencies, 50))} |"
        f" {_ms(percentile(p.stripe_latencies, 99))} | {_ms(max(p.stripe_latencies))} |"
        f" {dict(sorted(p.stripe_statuses.items(), key=str))} |"
        + (
            f" {p.junk_sent} ({p.junk_sent / args.seconds:.1f}/s),"
            f" {dict(sorted(p.junk_statuses.items(), key=str))},"
            f" p50 {_ms(percentile(p.junk_latencies, 50))} ms |"
            if p.junk_sent
            else " — |"
        )
        for p in phases
    ]
    lines = [
        "## Rejection cost before authentication (`benchmarks/rejection_cost.py`)",
        "",
        f"Machine: {machine()}.",
        "In process: the ingest flow's `prepare` on forged deliveries until it refuses them"
        " (401, or 413 over a provider's own body limit), with `payhook serve`'s"
        " garbage-collector tuning; worst of each"
        " provider's shapes (JSON of tiny values or of nested empty lists for the providers"
        " that sign the raw body, sent with well-formed headers signed over another body;"
        " Adyen's item array, one item beside nested empty lists, many fields, deep nesting;"
        " Braintree's escaped payloads, long signature field and many fields; Mollie's classic"
        f" form with many fields); median of {args.rounds} rounds of at least {args.ms:g} ms."
        " PayPal is left out (reworked separately; RSA with PayPal's certificate).",
        "",
        "| provider | µs/KiB at 1 KiB | at 64 KiB | at 1 MiB | costliest request ms (size,"
        " shape) |",
        "|---|---|---|---|---|",
        *table,
        "",
        f"Against `payhook serve` on loopback: Stripe deliveries at {args.stripe_rate:g}/s for"
        f" {args.seconds:g} s (8 keep-alive connections), alone, then beside forged deliveries"
        f" of the costliest request above ({worst.case.label}, {_size(worst_size)},"
        f" {worst.worst_shape[worst_size]}) at {args.junk_rate:g}/s (16 connections), both"
        " paced, at rates that drift through every phase of each other; client and server"
        " share the machine's cores. Latency of the 2xx answers.",
        "",
        "| phase | Stripe 2xx | p50 ms | p99 ms | max ms | Stripe statuses | forged sent,"
        " statuses, latency |",
        "|---|---|---|---|---|---|---|",
        *latency,
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ms", type=float, default=60, help="length of one measurement")
    parser.add_argument("--providers", nargs="*", help="default: every available provider")
    parser.add_argument("--seconds", type=float, default=20, help="length of a server phase")
    # 17/s beside 20/s: the two schedules drift through every phase of each other three times
    # a second (at equal rates each Stripe delivery would arrive with a forged one, always).
    parser.add_argument("--stripe-rate", type=float, default=17, help="Stripe deliveries/s")
    parser.add_argument("--junk-rate", type=float, default=20, help="forged deliveries/s")
    parser.add_argument("--no-server", action="store_true", help="in-process figures only")
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    args = parser.parse_args()
    tune_gc()  # as payhook serve runs: young collections every 10,000 allocations
    rows = []
    for case in cases(fleet.available(args.providers)):
        rows.append(measure(case, args.rounds, args.ms))
        print(
            json.dumps(
                {
                    "provider": case.label,
                    "us_per_kib": {str(k): round(v, 3) for k, v in rows[-1].us_per_kib.items()},
                    "worst": rows[-1].worst_shape,
                }
            ),
            flush=True,
        )
    phases = [] if args.no_server else against_server(costliest(rows), args)
    text = report(rows, phases, args)
    print(text)
    if not args.no_write and phases:
        update_section("rejection_cost", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
