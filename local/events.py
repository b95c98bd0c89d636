"""Lambda events as AWS sends them: API Gateway REST proxy events and SQS batches, plus a Lambda context."""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from local.aws import ACCOUNT_ID

STAGE = "v1"  # the template's API stage


def rest_event(
    method: str,
    path: str,
    resource: str,
    *,
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
    query: list[tuple[str, str]],
    path_parameters: dict[str, str] | None,
    body: bytes,
    source_ip: str = "127.0.0.1",
) -> dict[str, Any]:
    """A REST API (v1) proxy integration event, shaped like ``events/*.json``.

    ``headers`` as received, a repeated header once per value (pairs, in order): as API Gateway's REST API does,
    ``headers`` holds its last value and ``multiValueHeaders`` all of them (names are compared case-insensitively
    here, and spelled as first received)."""
    pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    single_headers: dict[str, str] = {}
    multi_headers: dict[str, list[str]] = {}
    spelling: dict[str, str] = {}
    for received, value in pairs:
        name = spelling.setdefault(received.lower(), received)
        single_headers[name] = value  # the last value of a repeated header
        multi_headers.setdefault(name, []).append(value)
    single_query = {name: value for name, value in query} or None
    multi_query: dict[str, list[str]] = {}
    for name, value in query:
        multi_query.setdefault(name, []).append(value)
    try:
        text: str | None = body.decode("utf-8") if body else None
        encoded = False
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(body).decode("ascii"), True
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": single_headers or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": single_query,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": path_parameters,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method,
            "path": f"/{STAGE}{path}",
            "stage": STAGE,
            "requestId": str(uuid.uuid4()),
            "accountId": ACCOUNT_ID,
            "apiId": "local",
            "protocol": "HTTP/1.1",
            "identity": {
                "sourceIp": source_ip,
                "userArn": f"arn:aws:iam::{ACCOUNT_ID}:user/local-operator",
                "caller": "LOCAL",
                "userAgent": single_headers.get("User-Agent", ""),
            },
            "requestTimeEpoch": int(time.time() * 1000),
        },
        "body": text,
        "isBase64Encoded": encoded,
    }


def sqs_record(message: Mapping[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """One record of an SQS event, from a ``ReceiveMessage`` answer (asked with every attribute)."""
    attributes = dict(message.get("Attributes", {}))
    message_attributes = {
        name: {
            "stringValue": value.get("StringValue"),
            "binaryValue": value.get("BinaryValue"),
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": value["DataType"],
        }
        for name, value in message.get("MessageAttributes", {}).items()
    }
    body = message["Body"]
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": body,
        "attributes": attributes,
        "messageAttributes": message_attributes,
        "md5OfBody": message.get("MD5OfBody") or hashlib.md5(body.encode()).hexdigest(),  # what SQS sends
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


@dataclass
class LambdaContext:
    """The fields of a Lambda context that Powertools and the handlers read; the deadline counts down."""

    function_name: str
    timeout_seconds: float = 30.0
    memory_limit_in_mb: int = 512
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    region: str = "eu-west-2"
    started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self.started)) * 1000))
