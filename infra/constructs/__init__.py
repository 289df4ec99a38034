"""One construct per logical unit of the payhook deployment; ``infra.service`` composes them."""

from infra.constructs.alarms import PayhookAlarms
from infra.constructs.api import WebhookApi
from infra.constructs.audit_key import AuditChainKey
from infra.constructs.dashboard import PayhookDashboard
from infra.constructs.encryption import PayhookKey
from infra.constructs.events import PaymentEventBus
from infra.constructs.functions import PayhookFunction, PayhookFunctions
from infra.constructs.layer import DependenciesLayer
from infra.constructs.queues import PayhookQueues
from infra.constructs.secrets import ProvidersSecret
from infra.constructs.storage import PayhookTables
from infra.constructs.waf import WebhookFirewall

__all__ = [
    "AuditChainKey",
    "DependenciesLayer",
    "PayhookAlarms",
    "PayhookDashboard",
    "PayhookFunction",
    "PayhookFunctions",
    "PayhookKey",
    "PayhookQueues",
    "PayhookTables",
    "PaymentEventBus",
    "ProvidersSecret",
    "WebhookApi",
    "WebhookFirewall",
]
