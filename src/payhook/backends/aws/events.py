"""Canonical payment events to EventBridge.

Delivery is at least once: a stream retry after a partial failure may put an event again,
with the same stable ``id`` in its detail, which is what consumers deduplicate on.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from payhook.backends.aws.errors import aws_call
from payhook.errors import StorageUnavailableError

EVENT_SOURCE = "payhook"
PUT_EVENTS_LIMIT = 10


class EventPublisher:
    def __init__(self, client: Any, *, bus_name: str) -> None:
        self.client = client
        self.bus_name = bus_name

    def publish(self, events: Sequence[dict[str, Any]]) -> None:
        """Put every event or raise StorageUnavailableError."""
        for start in range(0, len(events), PUT_EVENTS_LIMIT):
            entries = [
                {
                    "Source": EVENT_SOURCE,
                    "DetailType": str(event["type"]),
                    "Detail": json.dumps(event, sort_keys=True, separators=(",", ":")),
                    "EventBusName": self.bus_name,
                }
                for event in events[start : start + PUT_EVENTS_LIMIT]
            ]
            with aws_call("publishing payment events"):
                response = self.client.put_events(Entries=entries)
            if response.get("FailedEntryCount"):
                codes = sorted(
                    {str(e.get("ErrorCode")) for e in response["Entries"] if e.get("ErrorCode")}
                )
                raise StorageUnavailableError(
                    f"publishing payment events failed: {response['FailedEntryCount']} rejected"
                    f" ({', '.join(codes)})"
                )
