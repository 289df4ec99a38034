"""The one database a command addresses: the one the configuration names.

Read commands open it read-only and refuse when it is missing (they never create one);
commands that write say which database they write. With ``[aws] enabled = true`` the
database is a deployed stack's tables and queues instead (``backends/aws/deployed.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from payhook.backends.sqlite.reader import SqliteReader
from payhook.config import Settings
from payhook.errors import NotFoundError, PayhookError

if TYPE_CHECKING:
    from payhook.backends.aws.deployed import DeployedStack
    from payhook.backends.aws.reader import DynamoReader


def uses_aws(settings: Settings) -> bool:
    return settings.aws.enabled


def where(settings: Settings) -> str:
    """What the command addresses, for messages."""
    if uses_aws(settings):
        aws = settings.aws
        return f"the AWS stack {aws.environment!r}" + (f" in {aws.region}" if aws.region else "")
    return str(settings.storage.path)


def deployed(settings: Settings) -> DeployedStack:
    """The AWS stack ``[aws]`` names (boto3 is imported only for AWS commands)."""
    from payhook.backends.aws.deployed import DeployedStack, StackNames

    aws = settings.aws
    names = StackNames(
        environment=aws.environment,
        webhooks_table=aws.webhooks_table,
        payments_table=aws.payments_table,
        audit_table=aws.audit_table,
        processing_queue=aws.processing_queue,
        dead_letter_queue=aws.dead_letter_queue,
        audit_key_id=aws.audit_key_id,
        audit_shards=aws.audit_shards,
    )
    return DeployedStack(names, region=aws.region, endpoint_url=aws.endpoint_url)


def reader(settings: Settings) -> SqliteReader | DynamoReader:
    if uses_aws(settings):
        from payhook.backends.aws.reader import DynamoReader

        stack = deployed(settings)
        return DynamoReader(
            stack.clients.dynamodb,
            webhooks_table=stack.webhooks_table,
            payments_table=stack.payments_table,
        )
    return SqliteReader(settings.storage.path)


def sqlite_only(settings: Settings, command: str) -> None:
    """Refuse a command the AWS backend has no equivalent for (exit 2)."""
    if uses_aws(settings):
        raise PayhookError(f"`payhook {command}` works on the embedded database only ([aws] on)")


def sqlite_reader(settings: Settings, command: str) -> SqliteReader:
    sqlite_only(settings, command)
    return SqliteReader(settings.storage.path)


def writing_stack(settings: Settings) -> DeployedStack:
    """The stack a command is about to write, announced on stderr."""
    stack = deployed(settings)
    sys.stderr.write(f"payhook: writing {where(settings)}\n")
    return stack


def for_writing(settings: Settings) -> Path:
    """The existing database a command is about to write, announced on stderr."""
    path = Path(settings.storage.path)
    if not path.is_file():
        raise NotFoundError(f"no database at {path}")
    sys.stderr.write(f"payhook: writing {path.resolve()}\n")
    return path
