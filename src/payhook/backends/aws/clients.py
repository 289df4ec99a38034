"""boto3 clients, created once per cold start and injectable.

Low-level clients only: ``boto3.resource`` and the DynamoDB type serializers cost import
time a Lambda pays on every cold start. Nothing here calls the network when created.
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore.config import Config

# Fail fast: the provider retries a 503, a stuck call would hold the webhook until timeout.
DEFAULT_CONFIG = Config(
    connect_timeout=2,
    read_timeout=5,
    retries={"mode": "standard", "max_attempts": 3},
    tcp_keepalive=True,
)


class AwsClients:
    """Lazily created clients sharing one session. Pass ready clients to override any."""

    def __init__(
        self,
        session: boto3.session.Session | None = None,
        config: Config = DEFAULT_CONFIG,
        **clients: Any,
    ) -> None:
        self._session = session
        self._config = config
        self._clients: dict[str, Any] = dict(clients)
        self._lock = threading.Lock()

    def client(self, service: str) -> Any:
        with self._lock:
            if service not in self._clients:
                if self._session is None:
                    self._session = boto3.session.Session()
                self._clients[service] = self._session.client(service, config=self._config)
            return self._clients[service]

    @property
    def dynamodb(self) -> Any:
        return self.client("dynamodb")

    @property
    def sqs(self) -> Any:
        return self.client("sqs")

    @property
    def events(self) -> Any:
        return self.client("events")

    @property
    def secretsmanager(self) -> Any:
        return self.client("secretsmanager")

    @property
    def kms(self) -> Any:
        return self.client("kms")


_default: AwsClients | None = None
_default_lock = threading.Lock()


def default_clients() -> AwsClients:
    """The process-wide clients (one set per Lambda execution environment)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = AwsClients()
        return _default


def reset_default_clients() -> None:
    """Forget the process-wide clients (tests start each emulator afresh)."""
    global _default
    with _default_lock:
        _default = None
