"""The JRNI webhook function as API Gateway invokes it, on moto: 202 and one message per booking, or a clear 4xx
and nothing queued."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from typing import Any

import pytest

from calsync.adapters.dynamo import DynamoIntegrationStore
from tests.apigw import LambdaContext, load_event
from tests.aws import REGION
from tests.calsync.builders import integration
from tests.functions.conftest import Aws, load_function

WEBHOOK_SECRET = {"username": "jrni-webhooks", "password": "webhook-pass-for-tests"}


@pytest.fixture
def handler(aws: Aws) -> Any:
    aws.put_secret("example-bank/webhook", WEBHOOK_SECRET)
    DynamoIntegrationStore(aws.tables["IntegrationsTable"], region=REGION).create(
        integration(id="example-bank", webhook_secret_name="example-bank/webhook")
    )
    return load_function("jrni_webhook").lambda_handler


def invoke(handler: Any, event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    answer = handler(event, LambdaContext())
    return answer["statusCode"], json.loads(answer["body"])


def queued(aws: Aws) -> list[dict[str, Any]]:
    return [json.loads(m["Body"]) | {"group": m["Attributes"]["MessageGroupId"]} for m in aws.drain()]


def test_data_webhook_queues_one_message_per_booking_grouped_by_booking(aws: Aws, handler: Any) -> None:
    status, body = invoke(handler, load_event("jrni_webhook_data.json"))
    assert (status, body) == (202, {"queued": 1})
    assert queued(aws) == [
        {
            "integration_id": "example-bank",
            "company_id": "37001",
            "booking_id": "100001",
            "trigger": "create",
            "group": "example-bank/37001/100001",
        }
    ]


def test_legacy_callback_is_accepted_too(aws: Aws, handler: Any) -> None:
    status, _ = invoke(handler, load_event("jrni_webhook_legacy.json"))
    assert status == 202
    assert [m["trigger"] for m in queued(aws)] == ["modify"]


def test_an_exact_redelivery_is_collapsed_but_a_new_change_is_not(aws: Aws, handler: Any) -> None:
    event = load_event("jrni_webhook_data.json")
    invoke(handler, event)
    invoke(handler, event)  # JRNI retried the same delivery
    changed = json.loads(event["body"]) | {"triggerName": "modify", "triggerTime": "2026-07-01T09:05:00Z"}
    invoke(handler, {**event, "body": json.dumps(changed)})
    assert [m["trigger"] for m in queued(aws)] == ["create", "modify"]


def _event(**changes: Any) -> dict[str, Any]:
    event = load_event("jrni_webhook_data.json")
    headers = changes.pop("headers", None)
    if headers is not None:  # one value each, as API Gateway gives them: both views agree
        event["headers"] = headers
        event["multiValueHeaders"] = {name: [value] for name, value in headers.items()}
    event.update(changes)
    return event


RIGHT = load_event("jrni_webhook_data.json")["headers"]["Authorization"]
WRONG = "Basic " + base64.b64encode(b"jrni-webhooks:guess").decode()


@pytest.mark.parametrize("values", [[RIGHT, WRONG], [WRONG, RIGHT], [RIGHT, RIGHT]])
def test_a_request_with_two_authorization_headers_is_refused_whichever_is_right(
    aws: Aws, handler: Any, values: list[str]
) -> None:
    # API Gateway (REST): ``headers`` keeps the last value of a repeated header, ``multiValueHeaders`` all of them.
    event = load_event("jrni_webhook_data.json")
    event["headers"]["Authorization"] = values[-1]
    event["multiValueHeaders"]["Authorization"] = values
    status, body = invoke(handler, event)
    assert status == 401, body
    assert queued(aws) == []


def test_authorization_sent_under_two_spellings_counts_as_two(aws: Aws, handler: Any) -> None:
    event = load_event("jrni_webhook_data.json")
    event["multiValueHeaders"]["authorization"] = [WRONG]
    assert invoke(handler, event)[0] == 401
    assert queued(aws) == []


@pytest.mark.parametrize(
    ("name", "event", "status"),
    [
        ("unknown integration", _event(pathParameters={"integration_id": "nope"}), 404),
        # Longer than any DynamoDB key: refused before the table is asked.
        ("an id no integration can have", _event(pathParameters={"integration_id": "x" * 3000}), 404),
        ("an id with a NUL", _event(pathParameters={"integration_id": "example-bank\x00"}), 404),
        ("no credentials", _event(headers={"Content-Type": "application/json"}), 401),
        (
            "wrong password",
            _event(headers={"Authorization": "Basic " + base64.b64encode(b"jrni-webhooks:guess").decode()}),
            401,
        ),
        ("not JSON", _event(body="<xml/>"), 400),
        ("unknown format", _event(body=json.dumps({"hello": "world"})), 400),
        (
            "booking id missing",
            _event(body=json.dumps({"appointment": {}, "company": {"jrniId": 1}, "triggerName": "create"})),
            400,
        ),
        (
            "over 256 KB",
            _event(
                body=json.dumps(
                    {
                        "appointment": {"bookingId": 1, "notes": "x" * 262_144},
                        "company": {"jrniId": 1},
                        "triggerName": "create",
                    }
                )
            ),
            413,
        ),
    ],
)
def test_bad_input_is_refused_and_nothing_is_queued(
    aws: Aws, handler: Any, name: str, event: dict[str, Any], status: int
) -> None:
    answer_status, body = invoke(handler, event)
    assert answer_status == status, body
    assert body["message"]
    assert queued(aws) == []


def test_base64_encoded_bodies_are_read(aws: Aws, handler: Any) -> None:
    event = load_event("jrni_webhook_data.json")
    event = {**event, "body": base64.b64encode(event["body"].encode()).decode(), "isBase64Encoded": True}
    assert invoke(handler, event)[0] == 202
    assert len(queued(aws)) == 1


def test_the_webhook_function_never_loads_exchangelib() -> None:
    probe = (
        "import importlib.util, sys; "
        "spec = importlib.util.spec_from_file_location('app', 'functions/jrni_webhook/app.py'); "
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module); "
        "print('exchangelib' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": ".:shared", "PATH": "/usr/bin:/bin"},
    )
    assert result.stdout.strip() == "False"
