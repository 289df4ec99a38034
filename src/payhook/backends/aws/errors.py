"""botocore errors mapped onto the payhook error tree.

Only the AWS error code travels into payhook messages: AWS messages can quote key or
attribute values, and nothing from a payload may reach a log line.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from payhook.errors import StorageUnavailableError

CONDITION_FAILED = "ConditionalCheckFailedException"
TRANSACTION_CANCELED = "TransactionCanceledException"


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))


def cancellation_codes(exc: ClientError) -> list[str]:
    """Per-item reason codes of a canceled transaction, in request order ("None": no fault)."""
    reasons: list[dict[str, Any]] = exc.response.get("CancellationReasons") or []
    return [str(reason.get("Code") or "None") for reason in reasons]


def unavailable(what: str, exc: Exception) -> StorageUnavailableError:
    reason = error_code(exc) if isinstance(exc, ClientError) else type(exc).__name__
    return StorageUnavailableError(f"{what} failed: {reason}")


@contextmanager
def aws_call(what: str) -> Iterator[None]:
    """Turn any AWS failure inside the block into StorageUnavailableError (retry later)."""
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise unavailable(what, exc) from exc
