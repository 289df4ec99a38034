"""``payhook send PROVIDER [EVENT_TYPE]``: sign a realistic sample and POST it, like
``stripe trigger``; print only what happened."""

from __future__ import annotations

import argparse
import urllib.error
import urllib.request
from typing import Any

from payhook.cli import render
from payhook.config import Settings
from payhook.errors import NotFoundError, PayhookError
from payhook.providers import build_providers
from payhook.service.ingest import Answer, Ingest


def register(
    sub: Any, reads: list[argparse.ArgumentParser], writes: list[argparse.ArgumentParser]
) -> None:
    send = sub.add_parser(
        "send", parents=writes, help="sign and POST a sample webhook", description=__doc__
    )
    send.add_argument("provider", help="a configured provider's name")
    send.add_argument("event_type", nargs="?", help="default: the provider's first sample")
    send.add_argument("--url", help="default: the configured server's /webhook/PROVIDER")
    send.set_defaults(run=send_sample)


def send_sample(settings: Settings, args: argparse.Namespace) -> int:
    ingest = Ingest(
        build_providers(settings.providers), body_limit_bytes=settings.server.body_limit_bytes
    )
    provider = ingest.route(args.provider)
    if isinstance(provider, Answer):
        raise NotFoundError(f"no provider named {args.provider!r} in {settings.source}")
    known = provider.sample_event_types
    if args.event_type and known and args.event_type not in known:
        raise PayhookError(
            f"no {provider.provider_type} sample for {args.event_type!r}; try: {', '.join(known)}"
        )
    url = args.url or (
        f"http://{settings.server.host}:{settings.server.port}/webhook/{args.provider}"
    )
    if not url.startswith(("http://", "https://")):
        raise PayhookError(f"--url must be http or https, got {url!r}")
    request = provider.sample_request(args.event_type)
    # Verified and split by the delivery flow the server runs: the events reported below are
    # the rows a server with this configuration stores.
    prepared = ingest.prepare(args.provider, request)
    if isinstance(prepared, Answer):
        raise PayhookError(
            f"the {args.provider} sample is refused by its own configuration"
            f" ({prepared.status}): {prepared.body.decode(errors='replace')}"
        )
    http_request = urllib.request.Request(  # noqa: S310 - scheme checked above
        url, data=request.body, headers=request.headers, method="POST"
    )
    try:
        with urllib.request.urlopen(http_request, timeout=30) as response:  # noqa: S310
            status, body = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        render.error(f"cannot reach {url}: {exc}")
        return 1
    print(f"POST {url} -> {status}")
    print(body.decode(errors="replace"))
    if not 200 <= status < 300:
        return 1  # nothing was acknowledged: there are no events to report
    for webhook in prepared.webhooks:
        payments = sorted({p.payment_id for p in prepared.provider.payment_events(webhook)})
        print(
            f"event {webhook.event_id} ({webhook.event_type}) payment: {', '.join(payments) or '-'}"
        )
    return 0
