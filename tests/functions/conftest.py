"""The Lambda entry points as AWS runs them: moto for DynamoDB, SQS and Secrets Manager (resources built from
template.yaml), the JRNI and EWS emulators over real HTTP, and events shaped as API Gateway and SQS send them."""

from __future__ import annotations

import copy
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
import requests
from moto import mock_aws

from calsync.adapters.dynamo import DynamoIntegrationStore, DynamoMappingStore
from calsync.bootstrap import functions as wiring
from calsync.domain import AccessType, ExchangeConnection, JrniConnection, Mapping, ResourceKind
from emulators.common.server import BackgroundServer
from emulators.ews.testing import EwsEmulator
from emulators.jrni.app import create_app
from emulators.jrni.settings import JrniSettings
from tests.apigw import LambdaContext, load_event
from tests.aws import REGION, create_in_moto, function_environment, load_template
from tests.calsync.builders import integration

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"
PREFIX = "test"

SEED = json.loads((Path(__file__).resolve().parents[2] / "emulators/jrni/example-seed.json").read_text())
NORTH, ALICE_ID, BOB_ID, ROOM_ID = 11, 101, 102, 151
ALICE, BOB, ROOM = "alice@example.com", "bob@example.com", "room-1@example.com"
SERVICE_ACCOUNT = "svc@example.com"
PASSWORD = "pass-for-tests"
INTEGRATION = "example-bank"


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
            answer = self.sqs.receive_message(
                QueueUrl=url or self.outbound_url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=wait,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            messages = answer.get("Messages", [])
            if not messages:
                return found
            for message in messages:
                self.sqs.delete_message(
                    QueueUrl=url or self.outbound_url, ReceiptHandle=message["ReceiptHandle"]
                )
            found.extend(messages)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }.items():
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


@pytest.fixture(scope="module")
def jrni_server() -> Iterator[BackgroundServer]:
    with BackgroundServer(lambda: create_app(JrniSettings(), None)) as server:
        yield server


@pytest.fixture(scope="module")
def ews_server() -> Iterator[EwsEmulator]:
    with EwsEmulator() as emulator:
        yield emulator


@pytest.fixture
def jrni(jrni_server: BackgroundServer) -> str:
    base = jrni_server.base_url
    requests.post(f"{base}/_emulator/reset", timeout=10).raise_for_status()
    requests.post(f"{base}/_emulator/seed", json=SEED, timeout=10).raise_for_status()
    return base


@pytest.fixture
def ews(ews_server: EwsEmulator) -> EwsEmulator:
    ews_server.reset()
    for address in (ALICE, BOB, ROOM, SERVICE_ACCOUNT):
        ews_server.add_account(address, PASSWORD)
    ews_server.control(
        "POST", "impersonation", {"service_account": SERVICE_ACCOUNT, "mailboxes": [ALICE, BOB, ROOM]}
    )
    return ews_server


def configure_integration(aws: Aws, jrni: str, ews: EwsEmulator, function: str, **options: Any) -> Any:
    """Store the secrets, the integration (with the given options) and its mappings; returns the function's handler."""
    admin = next(a for a in SEED["admins"] if a["company_id"] == 10)
    # Named as the admin API names an integration's own secrets: <prefix><integration id>/<part>.
    aws.put_secret(
        f"{INTEGRATION}/jrni",
        {
            "app_id": SEED["apps"][0]["app_id"],
            "app_key": SEED["apps"][0]["app_key"],
            "email": admin["email"],
            "password": admin["password"],
        },
    )
    aws.put_secret(f"{INTEGRATION}/exchange", {"username": SERVICE_ACCOUNT, "password": PASSWORD})
    DynamoIntegrationStore(aws.tables["IntegrationsTable"], region=REGION).create(
        integration(
            id=INTEGRATION,
            jrni=JrniConnection(jrni, "10", f"{PREFIX}/{INTEGRATION}/jrni"),
            exchange=ExchangeConnection(
                ews.ews_url, f"{PREFIX}/{INTEGRATION}/exchange", access_type=AccessType.IMPERSONATION
            ),
            test_endpoints=True,  # the emulators, on loopback http
            **options,
        )
    )
    mappings = DynamoMappingStore(aws.tables["MappingsTable"], region=REGION)
    for kind, jrni_id, mailbox in (
        (ResourceKind.PERSON, ALICE_ID, ALICE),
        (ResourceKind.PERSON, BOB_ID, BOB),
        (ResourceKind.RESOURCE, ROOM_ID, ROOM),
    ):
        mappings.put(Mapping(INTEGRATION, kind, str(jrni_id), mailbox))
    return load_function(function).lambda_handler


def sqs_event(aws: Aws, url: str, *, receive_all: bool = False) -> dict[str, Any]:
    """What is waiting on the queue at ``url``, received as Lambda's poller would: a real SQS event (one batch of up
    to ten, or every message there with ``receive_all``)."""
    template = load_event("outbound_sqs.json")["Records"][0]
    arn = aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    records = []
    while messages := aws.sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"], MessageAttributeNames=["All"]
    ).get("Messages", []):
        for message in messages:
            record = copy.deepcopy(template)
            record.update(
                {
                    "messageId": message["MessageId"],
                    "receiptHandle": message["ReceiptHandle"],
                    "body": message["Body"],
                    "attributes": message["Attributes"],
                    "messageAttributes": {
                        name: {"stringValue": value.get("StringValue"), "dataType": value["DataType"]}
                        for name, value in message.get("MessageAttributes", {}).items()
                    },
                    "eventSourceARN": arn,
                }
            )
            records.append(record)
        if not receive_all:
            break
    return {"Records": records}


def deliver_to(aws: Aws, url: str, handler: Any, event: dict[str, Any]) -> dict[str, Any]:
    """Invoke the handler as Lambda does, then delete what it did not report as failed."""
    answer: dict[str, Any] = handler(event, LambdaContext())
    failed = {f["itemIdentifier"] for f in answer["batchItemFailures"]}
    for record in event["Records"]:
        if record["messageId"] not in failed:
            aws.sqs.delete_message(QueueUrl=url, ReceiptHandle=record["receiptHandle"])
    return answer
