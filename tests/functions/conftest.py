"""The Lambda entry points as AWS runs them: moto for DynamoDB, SQS and Secrets Manager (resources built from
template.yaml), the JRNI and EWS emulators over real HTTP, and events shaped as API Gateway and SQS send them."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws

from calsync import wiring
from tests.aws import REGION, create_in_moto, function_environment, load_template

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"
PREFIX = "test"


def load_function(name: str) -> ModuleType:
    """Import functions/<name>/app.py fresh, as Lambda imports it (a top-level module of its code folder)."""
    module_name = f"calsync_function_{name}"
    spec = importlib.util.spec_from_file_location(module_name, FUNCTIONS / name / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


@dataclass
class Aws:
    """The moto account a test runs in: clients, resource names, and helpers to read what was queued."""

    sqs: Any
    secrets: Any
    dynamodb: Any
    tables: dict[str, str]
    queues: dict[str, str]

    @property
    def outbound_url(self) -> str:
        return self.queues["OutboundQueue"]

    @property
    def dead_letter_url(self) -> str:
        return self.queues["OutboundDeadLetterQueue"]

    def put_secret(self, name: str, value: dict[str, str]) -> None:
        self.secrets.create_secret(Name=f"{PREFIX}/{name}", SecretString=json.dumps(value))

    def drain(self, url: str | None = None, wait: int = 0) -> list[dict[str, Any]]:
        """Receive (and delete) everything on a queue, with attributes."""
        found: list[dict[str, Any]] = []
        while True:
            answer = self.sqs.receive_message(QueueUrl=url or self.outbound_url, MaxNumberOfMessages=10,
                                              WaitTimeSeconds=wait, AttributeNames=["All"],
                                              MessageAttributeNames=["All"])  # fmt: skip
            messages = answer.get("Messages", [])
            if not messages:
                return found
            for message in messages:
                self.sqs.delete_message(QueueUrl=url or self.outbound_url, ReceiptHandle=message["ReceiptHandle"])
            found.extend(messages)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        resources = create_in_moto(PREFIX)
        # Exactly the variables the template gives the functions, resolved against what was created.
        for name, value in function_environment(load_template(), resources).items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "calsync-test")
        monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        tables, queues = resources.tables, resources.queue_urls
        wiring.reset()
        yield Aws(sqs, boto3.client("secretsmanager", region_name=REGION), dynamodb, tables, queues)
        wiring.reset()
