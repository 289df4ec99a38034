"""Least-privilege grants on the tables: the item actions a function calls, and nothing else.

CDK's ``grant_read_write_data`` allows every data action (``DeleteItem``, ``Scan``,
``BatchWriteItem`` ...) on the table and all of its indexes. Here each function gets the
actions its code calls, on the table's ARN, and ``Query`` on the one index it reads.
Transactions need no action of their own: ``TransactWriteItems`` is authorized per item as
the ``PutItem`` or ``UpdateItem`` it contains.

The tables are encrypted with the payhook key, so a grant also allows what DynamoDB asks KMS
on the caller's behalf: the same key actions CDK's table grants give (reading: Decrypt and
DescribeKey; writing: also Encrypt, ReEncrypt and GenerateDataKey).
"""

from __future__ import annotations

from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam

READ_ACTIONS = frozenset({"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query"})
WRITE_ACTIONS = frozenset({"dynamodb:PutItem", "dynamodb:UpdateItem"})
KMS_READ = ("kms:Decrypt", "kms:DescribeKey")
KMS_WRITE = (*KMS_READ, "kms:Encrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*")


def grant_items(grantee: iam.IGrantable, table: dynamodb.Table, *actions: str) -> None:
    """Allow exactly ``actions`` (reads and writes of items) on ``table`` itself."""
    unknown = set(actions) - READ_ACTIONS - WRITE_ACTIONS
    if not actions or unknown:
        raise ValueError(
            f"got actions {sorted(unknown) or 'none'}, expected some of"
            f" {sorted(READ_ACTIONS | WRITE_ACTIONS)}"
        )
    iam.Grant.add_to_principal(
        grantee=grantee, actions=sorted(actions), resource_arns=[table.table_arn]
    )
    _grant_key(grantee, table, writes=bool(WRITE_ACTIONS & set(actions)))


def grant_index_query(grantee: iam.IGrantable, table: dynamodb.Table, index_name: str) -> None:
    """Allow ``Query`` on one secondary index of ``table``."""
    iam.Grant.add_to_principal(
        grantee=grantee,
        actions=["dynamodb:Query"],
        resource_arns=[f"{table.table_arn}/index/{index_name}"],
    )
    _grant_key(grantee, table, writes=False)


def _grant_key(grantee: iam.IGrantable, table: dynamodb.Table, *, writes: bool) -> None:
    if table.encryption_key is not None:
        table.encryption_key.grant(grantee, *(KMS_WRITE if writes else KMS_READ))
