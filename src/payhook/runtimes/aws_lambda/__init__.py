"""The AWS Lambda runtime: four thin handlers over the ``aws`` backend.

| handler                                              | trigger                          |
|------------------------------------------------------|----------------------------------|
| ``payhook.runtimes.aws_lambda.receiver.handler``     | API Gateway REST proxy           |
| ``payhook.runtimes.aws_lambda.processor.handler``    | SQS, ReportBatchItemFailures     |
| ``payhook.runtimes.aws_lambda.audit.handler``        | DynamoDB streams (both tables)   |
| ``payhook.runtimes.aws_lambda.sweeper.handler``      | EventBridge Scheduler, 5 minutes |

Each handler module builds its runtime on first use (settings, clients, no network call) and
keeps it while the execution environment is warm. Nothing is imported here, so a handler
loads only what it needs.
"""
