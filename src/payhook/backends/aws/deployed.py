"""A deployed stack as the operator commands address it: its resources, found by name.

The stack names every resource ``payhook-<component>-<environment>`` (``infra/config.py``),
so an environment suffix is enough to find them; any name may be given explicitly instead.
Queue URLs are looked up from queue names (GetQueueUrl); the audit key is its alias.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import boto3

from payhook.backends.aws.clients import DEFAULT_CONFIG, AwsClients
from payhook.backends.aws.errors import aws_call


def resource_name(component: str, environment: str) -> str:
    """The physical name the stack gives a resource (``infra/config.py``: ``name``)."""
    return f"payhook-{component}-{environment}"


@dataclass(frozen=True, slots=True, kw_only=True)
class StackNames:
    """The names of a deployed stack's resources; blank ones are derived."""

    environment: str = "dev"
    webhooks_table: str | None = None
    payments_table: str | None = None
    audit_table: str | None = None
    processing_queue: str | None = None
    dead_letter_queue: str | None = None
    audit_key_id: str | None = None
    audit_shards: int = 16

    def table(self, component: str) -> str:
        given = getattr(self, f"{component}_table")
        return str(given) if given else resource_name(component, self.environment)

    def queue(self, component: str, given: str | None) -> str:
        return given or resource_name(component, self.environment)

    @property
    def key_id(self) -> str:
        return self.audit_key_id or f"alias/{resource_name('audit-key', self.environment)}"


class DeployedStack:
    """Clients and resource names of one deployed stack; nothing is called until used."""

    def __init__(
        self,
        names: StackNames,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        clients: AwsClients | None = None,
    ) -> None:
        self.names = names
        if clients is None:
            session = boto3.session.Session(region_name=region)
            config = DEFAULT_CONFIG
            premade = (
                {s: session.client(s, endpoint_url=endpoint_url, config=config) for s in _SERVICES}
                if endpoint_url
                else {}
            )
            clients = AwsClients(session, config, **premade)
        self.clients = clients

    @property
    def webhooks_table(self) -> str:
        return self.names.table("webhooks")

    @property
    def payments_table(self) -> str:
        return self.names.table("payments")

    @property
    def audit_table(self) -> str:
        return self.names.table("audit")

    @cached_property
    def queue_url(self) -> str:
        return self._queue_url(self.names.queue("processing", self.names.processing_queue))

    @cached_property
    def dead_letter_queue_url(self) -> str:
        return self._queue_url(self.names.queue("processing-dlq", self.names.dead_letter_queue))

    def _queue_url(self, name_or_url: str) -> str:
        if name_or_url.startswith(("https://", "http://")):
            return name_or_url
        with aws_call(f"finding the queue {name_or_url}"):
            return str(self.clients.sqs.get_queue_url(QueueName=name_or_url)["QueueUrl"])


_SERVICES = ("dynamodb", "sqs", "kms")
