"""The console's pages: each reads through ``SqliteReader`` (as the CLI does) and renders
one template. They run in a worker thread, one read-only connection each."""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from starlette.responses import Response

from payhook.backends.sqlite.reader import SqliteReader
from payhook.console import charts
from payhook.console.call import Call
from payhook.console.filters import (
    RANGES,
    DeliveryFilters,
    FilterError,
    failed_deliveries,
    letter_page,
)
from payhook.console.filters import (
    dead_letters as find_dead_letters,
)
from payhook.console.history import series
from payhook.core.ledger import PaymentRecord, PaymentStatus
from payhook.core.model import StoredWebhook, WebhookStatus
from payhook.core.queries import Page, PaymentQuery
from payhook.errors import NotFoundError, PayhookError
from payhook.service.health import check

if TYPE_CHECKING:
    from payhook.console.web import Console

#: What each ledger flag means, for the payment page (flags read ``name:subject``).
FLAG_MEANINGS = {
    "negative_amount": "an event stated a negative amount: kept, with no effect on any amount",
    "currency_mismatch": "an event stated another currency than the payment's: kept, with no"
    " effect on any amount",
    "refund_exceeds_captured": "a refund would take the refunded total above the captured"
    " amount: not counted (a refund seen before its capture counts once the capture arrives)",
    "refunded_total_exceeds_captured": "the provider stated a cumulative refunded total above"
    " the captured amount: not applied",
}
CHARTS = (
    ("Received", "received_per_second", charts.rate_label),
    ("Acknowledgment p99", "ack_p99_seconds", charts.seconds_label),
    ("Queue depth", "queue_depth", charts.count_label),
    ("Oldest queued message", "oldest_age_seconds", charts.seconds_label),
    ("Processing lag p99", "lag_p99_seconds", charts.seconds_label),
    ("Dead letters", "dead_letters", charts.count_label),
)


def overview(console: Console, call: Call) -> Response:
    console.history.observe()
    figures = console.host.figures()
    samples = console.history.samples()
    window = console.history.sample_seconds * console.history.keep
    drawn = [
        (
            title,
            charts.line_chart(
                series(samples, field),
                title=title,
                now=figures.now,
                window_seconds=window,
                label=fmt,
            ),
        )
        for title, field, fmt in CHARTS
    ]
    return console.render(
        call,
        "overview.html",
        health=check(figures),
        figures=figures,
        charts=drawn,
        window=charts.span(window),
        every=charts.span(console.history.sample_seconds),
        audit=console.audit_result,
        audit_configured=console.settings.audit.key is not None,
    )


def _deliveries_page(
    console: Console, reader: SqliteReader, filters: DeliveryFilters, cursor: str | None
) -> tuple[Page[StoredWebhook], dict[str, int]]:
    if filters.q and filters.q.startswith("wh_"):
        found = reader.webhook(filters.q)
        items = [found] if found is not None and filters.matches(found) else []
        counts = {str(s): sum(1 for w in items if w.status is s) for s in WebhookStatus}
        return Page(items, len(items), None), counts
    query = filters.query(console.clock(), cursor=cursor)

    def count(status: WebhookStatus | None) -> int:
        wanted = str(status) if status is not None else None
        return reader.webhooks(replace(query, status=wanted, limit=0, cursor=None)).total

    # Processed is nearly every row: counted as the rest (in the same snapshot), it costs an
    # index count instead of a lookup of every processed row for the other filters.
    counts = {str(s): count(s) for s in WebhookStatus if s is not WebhookStatus.PROCESSED}
    counts[str(WebhookStatus.PROCESSED)] = count(None) - sum(counts.values())
    counts = {str(s): counts[str(s)] for s in WebhookStatus}
    # The page's total is one of those counts: not counted a third time.
    total = counts[query.status] if query.status else sum(counts.values())
    return replace(reader.webhooks(replace(query, count=False)), total=total), counts


def deliveries(console: Console, call: Call) -> Response:
    filters = DeliveryFilters.read(call)
    problem = None
    with console.reader() as reader, reader.snapshot():
        try:
            page, counts = _deliveries_page(console, reader, filters, call.param("cursor"))
        except FilterError as exc:
            problem = str(exc)
            filters = DeliveryFilters()
            page, counts = _deliveries_page(console, reader, filters, None)
        position = reader.latest()
    live = call.param("live") == "1" and call.param("cursor") is None
    return console.render(
        call,
        "deliveries.html",
        page=page,
        counts=counts,
        filters=filters,
        problem=problem,
        providers=sorted(console.host.providers),
        statuses=[str(s) for s in WebhookStatus],
        ranges=RANGES,
        live=live,
        position=position,
    )


def live(console: Console, call: Call) -> Response:
    """New arrivals after ``after`` (newest first) for the live view, and its next poll."""
    filters = DeliveryFilters.read(call)
    after = call.param("after") or "0"
    position = int(after) if after.isdigit() else 0
    with console.reader() as reader:
        arrived = reader.arrived_after(position)
    if arrived:
        position = arrived[-1][0]
    try:
        rows = [w for _, w in reversed(arrived) if filters.matches(w)]
    except FilterError:  # the page said so already; follow unfiltered by time
        filters = DeliveryFilters(filters.provider, filters.status, filters.event_type)
        rows = [w for _, w in reversed(arrived) if filters.matches(w)]
    return console.render(
        call, "live.html", rows=rows, filters=filters, position=position, live=True
    )


def delivery(console: Console, call: Call) -> Response:
    webhook_id = call.request.path_params["webhook_id"]
    with console.reader() as reader:
        webhook = reader.webhook(webhook_id)
        if webhook is None:
            raise NotFoundError(f"no delivery {webhook_id}")
        letter = reader.dead_letter(webhook_id)
        touched, mapping_error = _payments_touched(console, reader, webhook)
    return console.render(
        call,
        "delivery.html",
        webhook=webhook,
        headers=masked_headers(webhook.headers),
        letter=letter,
        touched=touched,
        mapping_error=mapping_error,
    )


#: Header names whose values are signatures or credentials: shown masked, never in full.
_SECRET_HEADER = re.compile(r"sig|hmac|auth|token|secret|cookie|key", re.IGNORECASE)


def masked_headers(stored: str | None) -> list[tuple[str, str]] | None:
    """A delivery's stored headers, sorted by name, signature and credential values masked;
    None when none were stored."""
    if stored is None:
        return None
    headers: dict[str, str] = json.loads(stored)
    return [
        (name, f"masked ({len(value)} characters)" if _SECRET_HEADER.search(name) else value)
        for name, value in sorted(headers.items())
    ]


def _payments_touched(
    console: Console, reader: SqliteReader, webhook: StoredWebhook
) -> tuple[list[tuple[str, str, PaymentRecord | None]], str | None]:
    """The payments the webhook's canonical events name, mapped by its provider as processing
    maps them; or why that cannot be told."""
    if webhook.purged:
        return [], "the payload was removed by retention"
    provider = console.host.providers.get(webhook.provider)
    if provider is None:
        return [], f"provider {webhook.provider!r} is no longer configured"
    try:
        events = provider.payment_events(webhook)
    except PayhookError as exc:
        return [], f"its payload maps to no payment event: {exc}"
    keys = dict.fromkeys((e.provider, e.payment_id) for e in events)
    return [(p, i, reader.payment(p, i)) for p, i in keys], None


def payload(console: Console, call: Call) -> Response:
    """The raw payload, only on request (a fragment for htmx, a page otherwise)."""
    webhook_id = call.request.path_params["webhook_id"]
    with console.reader() as reader:
        webhook = reader.webhook(webhook_id)
    if webhook is None:
        raise NotFoundError(f"no delivery {webhook_id}")
    text = webhook.payload.decode("utf-8", "replace")
    with contextlib.suppress(ValueError):  # not JSON: shown as received
        text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    fragment = "hx-request" in call.request.headers
    return console.render(
        call, "payload.html", webhook=webhook, text=text, purged=webhook.purged, fragment=fragment
    )


def payments(console: Console, call: Call) -> Response:
    provider = call.param("provider")
    status = call.param("status")
    q = call.param("q")
    with console.reader() as reader:
        if q:
            names = [provider] if provider else sorted(console.host.providers)
            found = [r for r in (reader.payment(n, q) for n in names) if r is not None]
            found = [r for r in found if status is None or str(r.status) == status]
            page: Page[PaymentRecord] = Page(found, len(found), None)
        else:
            query = PaymentQuery(status=status, provider=provider, cursor=call.param("cursor"))
            page = reader.payments(query)
    return console.render(
        call,
        "payments.html",
        page=page,
        provider=provider,
        status_filter=status,
        q=q,
        providers=sorted(console.host.providers),
        statuses=[str(s) for s in PaymentStatus],
    )


def payment(console: Console, call: Call) -> Response:
    provider = call.request.path_params["provider"]
    payment_id = call.request.path_params["payment_id"]
    with console.reader() as reader:
        record = reader.payment(provider, payment_id)
    if record is None:
        raise NotFoundError(f"no payment {payment_id} of {provider}")
    # The ledger keeps them in its canonical order: provider time, then lifecycle precedence.
    events = list(record.events)
    return console.render(
        call, "payment.html", record=record, events=events, flags=explain(record.flags)
    )


def explain(flags: tuple[str, ...]) -> list[dict[str, Any]]:
    found = []
    for flag in flags:
        name, _, subject = flag.partition(":")
        found.append(
            {"name": name, "subject": subject, "meaning": FLAG_MEANINGS.get(name, "see the ledger")}
        )
    return found


def dead_letters(console: Console, call: Call) -> Response:
    provider = call.param("provider")
    reason = call.param("reason")
    error = call.param("error")
    with console.reader() as reader, reader.snapshot():
        letters = find_dead_letters(reader, provider, reason)
        failed = failed_deliveries(reader, console.settings.outbox.max_attempts, error)
    return console.render(
        call,
        "dead_letters.html",
        page=letter_page(letters, call.param("page")),
        failed=failed,
        provider=provider,
        reason=reason,
        error=error,
        providers=sorted(console.host.providers),
    )
