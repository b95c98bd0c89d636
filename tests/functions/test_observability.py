"""What an operator reads off the functions' logs, on moto with the real handlers: a webhook's request id in every log
line of the outbound function's work on that booking, and CloudWatch embedded metrics (EMF) for what was written,
how late, what was put back for a server's back-off and what was given up on."""

from __future__ import annotations

import copy
import io
import json
import sys
from typing import Any

import pytest
import requests

from calsync.ports import Metric
from emulators.ews.testing import EwsEmulator
from local.lambdas import environment_handler
from tests.apigw import LambdaContext, load_event
from tests.functions.conftest import (
    ALICE,
    ALICE_ID,
    NORTH,
    Aws,
    configure_integration,
    deliver_to,
    load_function,
    sqs_event,
)

WEBHOOK_SECRET = {"username": "jrni-webhooks", "password": "webhook-pass-for-tests"}
REQUEST_ID = "7f3c0a52-1b2d-4e8f-9a10-0c1d2e3f4a5b"


@pytest.fixture
def logs() -> io.StringIO:
    """The functions' log: their log lines and their metrics, in the order written."""
    return io.StringIO()


def logging_to(logs: io.StringIO, module_name: str) -> Any:
    """The handler of a loaded function whose log lines and EMF lines go to ``logs``."""
    module = sys.modules[module_name]
    handler = environment_handler(module)
    assert handler is not None
    handler.setStream(logs)  # type: ignore[attr-defined]
    module.metrics.stream = logs
    return module.lambda_handler


@pytest.fixture
def outbound(aws: Aws, jrni: str, ews: EwsEmulator, logs: io.StringIO) -> Any:
    aws.put_secret("example-bank/webhook", WEBHOOK_SECRET)
    configure_integration(aws, jrni, ews, "outbound", webhook_secret_name="example-bank/webhook")
    return logging_to(logs, "calsync_function_outbound")


@pytest.fixture
def webhook(outbound: Any, logs: io.StringIO) -> Any:
    load_function("jrni_webhook")
    return logging_to(logs, "calsync_function_jrni_webhook")


def read(logs: io.StringIO) -> str:
    """What was written since the last read."""
    text = logs.getvalue()
    logs.seek(0)
    logs.truncate()
    return text


def book(jrni: str) -> dict[str, Any]:
    answer = requests.post(
        f"{jrni}/_emulator/bookings",
        json={
            "company_id": NORTH,
            "service_id": 401,
            "person_id": ALICE_ID,
            "datetime": "2026-07-06T10:00:00+01:00",
            "client": {"first_name": "Sam", "last_name": "Sample", "email": "sam@example.com"},
        },
        timeout=10,
    )
    assert answer.status_code in (200, 201), answer.text
    return answer.json()  # type: ignore[no-any-return]


def webhook_for(booking: dict[str, Any]) -> dict[str, Any]:
    """JRNI's webhook about ``booking``, as API Gateway hands it over (with its request id)."""
    event = copy.deepcopy(load_event("jrni_webhook_data.json"))
    body = json.loads(event["body"])
    body["appointment"]["bookingId"] = booking["id"]
    body["company"]["jrniId"] = NORTH
    event["body"] = json.dumps(body)
    event["requestContext"]["requestId"] = REQUEST_ID
    return event


def lines(out: str) -> list[dict[str, Any]]:
    found = []
    for line in out.splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            continue
    return [entry for entry in found if isinstance(entry, dict)]


def emf(out: str) -> dict[str, float]:
    """Every EMF figure in the output, summed by metric name (checked to be in the template's namespace)."""
    figures: dict[str, float] = {}
    for entry in lines(out):
        for directive in entry.get("_aws", {}).get("CloudWatchMetrics", []):
            assert directive["Namespace"] == "Calsync"
            for metric in directive["Metrics"]:
                value = entry[metric["Name"]]
                figures[metric["Name"]] = figures.get(metric["Name"], 0) + sum(
                    value if isinstance(value, list) else [value]
                )
    return figures


def test_the_webhooks_request_id_is_in_every_log_line_of_the_outbound_work_on_its_booking(
    aws: Aws, outbound: Any, webhook: Any, jrni: str, ews: EwsEmulator, logs: io.StringIO
) -> None:
    booking = book(jrni)
    assert webhook(webhook_for(booking), LambdaContext())["statusCode"] == 202
    read(logs)

    answer = deliver_to(aws, aws.outbound_url, outbound, sqs_event(aws, aws.outbound_url))

    out = read(logs)
    assert answer == {"batchItemFailures": []}, out
    assert len(ews.items(ALICE)) == 1
    logged = [entry for entry in lines(out) if "level" in entry]
    handled = [entry for entry in logged if entry["message"] == "message handled"]
    assert handled and handled[0]["booking"].endswith(f"/{booking['id']}")
    assert {entry.get("correlation_id") for entry in logged} == {REQUEST_ID}


def test_the_outbound_function_logs_items_written_and_the_lag_behind_jrni_as_emf(
    aws: Aws, outbound: Any, webhook: Any, jrni: str, ews: EwsEmulator, logs: io.StringIO
) -> None:
    booking = book(jrni)
    webhook(webhook_for(booking), LambdaContext())
    read(logs)

    deliver_to(aws, aws.outbound_url, outbound, sqs_event(aws, aws.outbound_url))

    out = read(logs)
    figures = emf(out)
    assert figures[Metric.ITEMS_WRITTEN] == 1  # Alice's calendar
    assert figures[Metric.OUTBOUND_LAG] >= 0
    [written] = [e for e in lines(out) if Metric.ITEMS_WRITTEN in e]
    assert written["service"] == "outbound" and written["integrations"] == ["example-bank"]


def test_a_throttled_message_and_a_dead_lettered_one_are_counted(
    aws: Aws, outbound: Any, webhook: Any, jrni: str, ews: EwsEmulator, logs: io.StringIO
) -> None:
    booking = book(jrni)
    ews.control(
        "POST",
        "faults",
        {"operation": "CreateItem", "kind": "server_busy", "back_off_ms": 30_000, "count": 1},
    )
    webhook(webhook_for(booking), LambdaContext())
    read(logs)

    outbound(sqs_event(aws, aws.outbound_url), LambdaContext())
    throttled = emf(read(logs))
    unreadable = load_event("outbound_sqs.json")
    unreadable["Records"][0]["body"] = "not json"
    outbound(unreadable, LambdaContext())
    dead = emf(read(logs))

    assert throttled[Metric.THROTTLED] == 1 and throttled[Metric.POSTPONED] == 1
    assert Metric.ITEMS_WRITTEN not in throttled and Metric.DEAD_LETTERED not in throttled
    assert dead[Metric.DEAD_LETTERED] == 1
