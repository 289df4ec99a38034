"""The EventBridge bus that carries canonical payment events to their consumers."""

from __future__ import annotations

from aws_cdk import aws_events as events
from aws_cdk import aws_kms as kms
from constructs import Construct

from infra.config import PayhookSettings


class PaymentEventBus(Construct):
    """A custom bus encrypted with the payhook key.

    The L2 construct adds the key policy statement EventBridge needs (``events.amazonaws.com``,
    limited to this bus by source ARN and encryption context).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: PayhookSettings,
        key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        self.bus = events.EventBus(
            self,
            "Bus",
            event_bus_name=settings.name("events"),
            description=f"payhook {settings.environment_suffix}: canonical payment events",
            kms_key=key,
        )
        self.bus.apply_removal_policy(settings.removal_policy)
