"""The AWS fixtures (moto in-process) for the reconcile Lambda's tests."""

from tests.aws.conftest import aws_credentials, stack

__all__ = ["aws_credentials", "stack"]
