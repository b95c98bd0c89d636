"""The local stack (``calsync local``): the ready line, a booking travelling JRNI → webhook → SQS → Outlook, and the
two pieces that stand in for AWS (the API Gateway front and the SQS event source) behaving as AWS does."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from moto import mock_aws

from emulators.common.server import BackgroundServer
from local.aws import Resources, create_resources, event_source_queue, function_environment, load_template
from local.events import LambdaContext
from local.front import build_front
from local.poller import SqsPoller
from local.stack import LocalStack, StackError, StackOptions

ROOT = Path(__file__).resolve().parents[2]
READY = re.compile(r"^calsync local ready (\{.*\})$")


def _wait(predicate: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


# ------------------------------------------------------------------------------------------ the whole stack


def test_calsync_local_prints_one_ready_line_then_stops_cleanly_on_sigterm() -> None:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'shared'}"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "local",
            "local",
            "--api-port",
            "0",
            "--ews-port",
            "0",
            "--jrni-port",
            "0",
            "--seed",
            "none",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline().rstrip("\n")
        match = READY.match(first)
        assert match, (
            f"not a ready line: {first!r}; stderr: {process.stderr.read() if process.stderr else ''}"
        )
        urls = json.loads(match.group(1))
        assert set(urls) == {"api", "ews", "jrni"}
        # Every URL answers: the front routes to the admin function, the emulators serve their control planes.
        assert requests.get(f"{urls['jrni']}/_emulator/state", timeout=5).status_code == 200
        assert requests.get(f"{urls['ews']}/_emulator/stats", timeout=5).status_code == 200
        assert requests.get(f"{urls['api']}/nowhere", timeout=5).status_code == 403  # as API Gateway answers
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0
    assert out == "", "the ready line is the only line on stdout"


@pytest.fixture
def stack() -> Iterator[LocalStack]:
    with (
        open(os.devnull, "w") as logs,
        LocalStack(StackOptions(api_port=0, ews_port=0, jrni_port=0, log_stream=logs)) as running,
    ):
        yield running


def _items(stack: LocalStack, mailbox: str) -> list[dict[str, Any]]:
    assert stack.urls is not None
    response = requests.get(f"{stack.urls.ews}/_emulator/mailboxes/{mailbox}/items", timeout=5)
    response.raise_for_status()
    return list(response.json())


def test_a_booking_made_in_jrni_appears_in_the_advisers_and_the_rooms_calendars_with_its_buffers(
    stack: LocalStack,
) -> None:
    assert stack.urls is not None and stack.seeded is not None
    start = datetime.now(UTC).replace(microsecond=0, second=0, minute=0) + timedelta(days=3)
    made = requests.post(
        f"{stack.urls.jrni}/_emulator/bookings",
        json={
            "company_id": 37001,
            "service_id": 21,
            "person_id": 1,
            "resource_id": 11,
            "datetime": start.isoformat(),
            "client": {"first_name": "Pat", "last_name": "Jones", "email": "pat@customer.example.test"},
        },
        timeout=5,
    )
    assert made.status_code == 201, made.text
    for mailbox in ("alice@bank.example.test", "room1@bank.example.test"):
        (item,) = _wait(lambda m=mailbox: _items(stack, m))
        # The Mortgage appointment service: 45 minutes, 15 before and 10 after.
        assert item["start"] == (start - timedelta(minutes=15)).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert item["end"] == (start + timedelta(minutes=55)).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert item["legacy_free_busy_status"] == "Busy"
        assert "Pat Jones" in item["subject"]
    assert _items(stack, "ben@bank.example.test") == []
    # The integration was made through the admin API, as an operator would: it is listed there.
    listed = requests.get(f"{stack.urls.api}/admin/integrations", timeout=5).json()
    assert [i["id"] for i in listed["integrations"]] == [stack.seeded.integration_id]


def test_the_functions_log_their_metrics_as_emf_and_the_webhooks_request_id_follows_the_booking(
    tmp_path: Path,
) -> None:
    log_path = tmp_path / "functions.log"
    with (
        open(log_path, "w", buffering=1) as logs,
        LocalStack(
            StackOptions(api_port=0, ews_port=0, jrni_port=0, log_stream=logs, streaming=False)
        ) as running,
    ):
        assert running.urls is not None
        start = datetime.now(UTC).replace(microsecond=0, second=0, minute=0) + timedelta(days=4)
        made = requests.post(
            f"{running.urls.jrni}/_emulator/bookings",
            json={
                "company_id": 37001,
                "service_id": 21,
                "person_id": 1,
                "datetime": start.isoformat(),
                "client": {"first_name": "Pat", "last_name": "Jones", "email": "pat@customer.example.test"},
            },
            timeout=5,
        )
        assert made.status_code == 201, made.text
        booking = f"37001/{made.json()['id']}"

        def written() -> list[dict[str, Any]]:
            entries = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
            return [e for e in entries if "ItemsWritten" in e] and entries

        entries = _wait(written, timeout=30)
    [emf] = [e for e in entries if "ItemsWritten" in e]
    [directive] = emf["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "Calsync" and directive["Dimensions"] == [["service"]]
    assert emf["service"] == "outbound" and emf["ItemsWritten"] == [1.0]
    assert {"Name": "ItemsWritten", "Unit": "Count"} in directive["Metrics"]
    queued = [e for e in entries if e.get("message") == "webhook queued" and booking in e.get("bookings", [])]
    handled = [e for e in entries if e.get("message") == "message handled" and e.get("booking") == booking]
    assert len(queued) == 1 and handled
    assert {e["correlation_id"] for e in handled} == {queued[0]["correlation_id"]}


# ----------------------------------------------------------------------------------- the API Gateway front


def _echo(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {
        "statusCode": 202,
        "headers": {"Content-Type": "application/json", "X-Function": context.function_name},
        "body": json.dumps(event),
    }


def _boom(event: dict[str, Any], context: Any) -> dict[str, Any]:
    raise RuntimeError("handler bug")


@pytest.fixture
def front() -> Iterator[str]:
    app = build_front(
        (_echo, lambda: LambdaContext("webhook-fn")), (_boom, lambda: LambdaContext("admin-fn"))
    )
    with BackgroundServer(lambda: app, "127.0.0.1", 0) as server:
        yield server.base_url


def test_the_front_hands_the_webhook_function_a_rest_proxy_event_and_answers_with_what_it_returns(
    front: str,
) -> None:
    response = requests.post(
        f"{front}/v1/webhooks/jrni/bank-1?x=1&x=2",
        data=b'{"a": 1}',
        headers={"Authorization": "Basic abc", "Content-Type": "application/json"},
        timeout=5,
    )
    assert response.status_code == 202
    assert response.headers["X-Function"] == "webhook-fn"
    event = response.json()
    assert event["resource"] == "/webhooks/jrni/{integration_id}"
    assert event["path"] == "/webhooks/jrni/bank-1"
    assert event["httpMethod"] == "POST"
    assert event["pathParameters"] == {"integration_id": "bank-1"}
    assert event["headers"]["Authorization"] == "Basic abc"
    assert event["multiValueQueryStringParameters"] == {"x": ["1", "2"]}
    assert event["body"] == '{"a": 1}' and event["isBase64Encoded"] is False
    assert event["requestContext"]["stage"] == "v1"


def test_the_front_hands_a_repeated_header_over_as_api_gateway_s_rest_api_does(front: str) -> None:
    import http.client
    from urllib.parse import urlsplit

    where = urlsplit(front)
    connection = http.client.HTTPConnection(where.hostname or "127.0.0.1", where.port, timeout=5)
    try:
        connection.putrequest("POST", "/v1/webhooks/jrni/bank-1")
        for value in ("Basic first", "Basic second"):
            connection.putheader("Authorization", value)
        connection.putheader("Content-Length", "2")
        connection.endheaders(b"{}")
        response = connection.getresponse()
        assert response.status == 202
        event = json.loads(response.read())
    finally:
        connection.close()
    assert event["headers"]["Authorization"] == "Basic second"  # the last value
    assert event["multiValueHeaders"]["Authorization"] == ["Basic first", "Basic second"]


def test_the_front_answers_like_api_gateway_for_unknown_routes_and_failing_functions(front: str) -> None:
    assert requests.get(f"{front}/webhooks/jrni/bank-1", timeout=5).status_code == 403  # only POST is routed
    assert requests.get(f"{front}/elsewhere", timeout=5).status_code == 403
    failed = requests.get(f"{front}/admin/integrations", timeout=5)
    assert failed.status_code == 502
    assert failed.json() == {"message": "Internal server error"}


# ------------------------------------------------------------------------------------ the SQS event source


@pytest.fixture
def aws() -> Iterator[tuple[Any, Resources]]:
    with mock_aws():
        session = boto3.Session(
            region_name="eu-west-2", aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        yield session, create_resources(session, load_template())


@pytest.fixture
def outbound_queue(aws: tuple[Any, Resources]) -> tuple[Any, str, str]:
    session, created = aws
    logical_id, _ = event_source_queue(load_template(), "OutboundFunction")
    return session.client("sqs"), created.queue_urls[logical_id], created.queue_arns[logical_id]


def test_the_functions_get_the_template_s_environment_pointing_at_what_was_created(
    aws: tuple[Any, Resources],
) -> None:
    session, created = aws
    env = function_environment(load_template(), created)
    sqs, dynamodb = session.client("sqs"), session.client("dynamodb")
    attributes = sqs.get_queue_attributes(QueueUrl=env["OUTBOUND_QUEUE_URL"], AttributeNames=["All"])[
        "Attributes"
    ]
    assert attributes["FifoQueue"] == "true"
    dead_letters = sqs.get_queue_attributes(QueueUrl=env["OUTBOUND_DLQ_URL"], AttributeNames=["QueueArn"])
    assert (
        json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"]
        == dead_letters["Attributes"]["QueueArn"]
    )
    for variable in ("INTEGRATIONS_TABLE", "MAPPINGS_TABLE", "LINKS_TABLE", "CURSORS_TABLE"):
        assert dynamodb.describe_table(TableName=env[variable])["Table"]["TableStatus"] == "ACTIVE"
    assert env["SECRETS_PREFIX"] == "calsync/"


def test_the_poller_sends_real_sqs_records_and_deletes_only_what_the_handler_did_not_report(
    outbound_queue: tuple[Any, str, str],
) -> None:
    sqs, url, arn = outbound_queue
    for n in range(3):
        sqs.send_message(
            QueueUrl=url,
            MessageBody=json.dumps({"n": n}),
            MessageGroupId=f"booking-{n}",
            MessageDeduplicationId=f"d{n}",
        )
    batches: list[list[dict[str, Any]]] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        batches.append(event["Records"])
        failed = [r["messageId"] for r in event["Records"] if json.loads(r["body"])["n"] == 1]
        return {"batchItemFailures": [{"itemIdentifier": m} for m in failed]}

    poller = SqsPoller(sqs, url, arn, handler, lambda: LambdaContext("outbound-fn"), workers=1)
    assert poller.poll_once() == 3
    (records,) = batches
    record = records[0]
    assert record["eventSource"] == "aws:sqs" and record["eventSourceARN"] == arn
    for attribute in (
        "MessageGroupId",
        "MessageDeduplicationId",
        "SequenceNumber",
        "ApproximateReceiveCount",
        "SentTimestamp",
    ):
        assert attribute in record["attributes"], attribute
    assert record["receiptHandle"] and record["messageId"]
    counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    # Two deleted; the reported one is still in flight and comes back after its visibility timeout.
    assert counts["ApproximateNumberOfMessages"] == "0"
    assert counts["ApproximateNumberOfMessagesNotVisible"] == "1"


def test_the_demo_fails_with_a_clear_message_when_a_step_does_not_arrive_in_time(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from local.demo import main

    # No time at all for a step: the first booking cannot be in Outlook before the demo first looks.
    assert main(["--step-timeout", "0"]) == 1
    out = capsys.readouterr().out
    assert "demo FAILED: step 'booking created': not in Outlook after 0 s" in out
    assert "alice@bank.example.test should show booking" in out


# ------------------------------------------------------------------------------ Outlook → JRNI on the stack


def _calsync_blocks(stack: LocalStack) -> list[dict[str, Any]]:
    assert stack.urls is not None
    state = requests.get(f"{stack.urls.jrni}/_emulator/state", timeout=5).json()
    return [b for b in state["blocks"] if not b.get("is_cancelled")]


def _meeting(
    stack: LocalStack, mailbox: str, start: datetime, subject: str = "Team meeting"
) -> dict[str, Any]:
    assert stack.urls is not None
    made = requests.post(
        f"{stack.urls.ews}/_emulator/mailboxes/{mailbox}/items",
        json={
            "subject": subject,
            "start": start.isoformat(),
            "end": (start + timedelta(hours=1)).isoformat(),
            "legacy_free_busy_status": "Busy",
        },
        timeout=5,
    )
    assert made.status_code == 201, made.text
    return dict(made.json())


def test_a_meeting_made_in_outlook_becomes_one_jrni_block_through_streaming_and_the_inbound_function(
    stack: LocalStack,
) -> None:
    start = datetime.now(UTC).replace(microsecond=0, second=0, minute=0) + timedelta(days=4)
    _meeting(stack, "alice@bank.example.test", start)
    (block,) = _wait(lambda: _calsync_blocks(stack))
    assert block["person_id"] == 1 and block["company_id"] == 37001
    assert datetime.fromisoformat(block["datetime"]) == start
    assert datetime.fromisoformat(block["end_datetime"]) == start + timedelta(hours=1)
    assert block["private_note"].splitlines()[0] == "Team meeting"
    time.sleep(0.5)  # a second notification or wake must not make a second block
    assert len(_calsync_blocks(stack)) == 1


def test_set_integration_changes_the_integration_through_the_admin_api_and_says_why_it_could_not(
    stack: LocalStack,
) -> None:
    assert stack.urls is not None and stack.seeded is not None
    url = f"{stack.urls.api}/admin/integrations/{stack.seeded.integration_id}"
    before = requests.get(url, timeout=5)

    stack.set_integration(stack.seeded.integration_id, appointment_lock=False, auto_confirm=False)

    after = requests.get(url, timeout=5)
    assert (after.json()["appointment_lock"], after.json()["auto_confirm"]) == (False, False)
    assert after.headers["ETag"] != before.headers["ETag"]  # a change the API made: its version moved
    with pytest.raises(StackError, match=r"GET .*/admin/integrations/nobody\): 404 .*integration id"):
        stack.set_integration("nobody", appointment_lock=True)
    with pytest.raises(StackError, match=r"PATCH .*: 422 "):
        stack.set_integration(stack.seeded.integration_id, no_such_switch=True)
    assert requests.get(url, timeout=5).json()["appointment_lock"] is False  # nothing refused was applied


def test_reset_brings_the_stack_back_to_the_seed_and_inbound_still_works_afterwards(
    stack: LocalStack,
) -> None:
    assert stack.urls is not None and stack.seeded is not None
    start = datetime.now(UTC).replace(microsecond=0, second=0, minute=0) + timedelta(days=5)
    _meeting(stack, "alice@bank.example.test", start)
    _wait(lambda: _calsync_blocks(stack))
    requests.post(
        f"{stack.urls.ews}/_emulator/faults", json={"operation": "*", "kind": "server_busy"}, timeout=5
    )
    stack.set_integration(stack.seeded.integration_id, appointment_lock=False)

    stack.reset()

    assert _calsync_blocks(stack) == []
    assert _items(stack, "alice@bank.example.test") == []
    listed = requests.get(f"{stack.urls.api}/admin/integrations", timeout=5).json()["integrations"]
    assert [(i["appointment_lock"], i["auto_confirm"]) for i in listed] == [
        (True, True)
    ]  # as the demo seed says
    dynamodb = stack.client("dynamodb")
    for variable in ("BLOCK_LINKS_TABLE", "CURSORS_TABLE", "LINKS_TABLE"):
        assert dynamodb.scan(TableName=os.environ[variable])["Items"] == [], variable
    # Faults cleared, streaming still subscribed: a new meeting still becomes a block.
    _meeting(stack, "ben@bank.example.test", start, "Branch huddle")
    (block,) = _wait(lambda: _calsync_blocks(stack))
    assert block["person_id"] == 2


def test_the_streaming_task_runs_as_a_process_subscribed_to_the_mapped_mailboxes_and_stops_cleanly() -> None:
    with open(os.devnull, "w") as logs:
        stack = LocalStack(
            StackOptions(api_port=0, ews_port=0, jrni_port=0, log_stream=logs, streaming_connection_limit=2)
        )
        stack.start()
        try:
            assert stack.streaming is not None and stack.urls is not None
            process = stack.streaming
            assert process.returncode is None
            env = stack.streaming_environment()
            assert env["STREAMING_CONNECTION_LIMIT"] == "2"
            assert (
                env["INBOUND_QUEUE_URL"] == os.environ["INBOUND_QUEUE_URL"]
            )  # the template's task environment
            stats_url = f"{stack.urls.ews}/_emulator/stats"

            def subscribed() -> set[str]:
                stats = requests.get(stats_url, timeout=5).json()
                return (
                    set(stats["subscriptions_by_mailbox"]) if stats["streaming_connections"] == 1 else set()
                )

            # The seed maps Alice, Ben and the room (not Chloe): one connection carries their subscriptions.
            assert _wait(subscribed) == {
                "alice@bank.example.test",
                "ben@bank.example.test",
                "room1@bank.example.test",
            }
        finally:
            stack.stop()
    assert process.returncode == 0  # SIGTERM: ended its subscriptions and connections, exited normally
    assert stack.streaming is None


# ------------------------------------------------------------------------------ templates changed on the stack


SUBJECT = "{{ service.name }} with {{ client.first_name }} {{ client.last_name }}"
BODY = (
    "<p>{{ company.address.address1 }}, {{ company.address.address4 }} {{ company.address.postcode }}</p>"
    "<p>Reason: {{ booking.reason_for_visit }}</p>"
)


def test_templates_patched_through_the_api_show_on_new_bookings_and_re_render_the_items_to_come() -> None:
    with (
        open(os.devnull, "w") as logs,
        LocalStack(
            StackOptions(api_port=0, ews_port=0, jrni_port=0, log_stream=logs, streaming=False)
        ) as stack,
    ):
        assert stack.urls is not None and stack.seeded is not None
        api, integration = stack.urls.api, stack.seeded.integration_id
        hour = datetime.now(UTC).replace(microsecond=0, second=0, minute=0)
        alice = "alice@bank.example.test"

        def book(start: datetime) -> None:
            made = requests.post(
                f"{stack.urls.jrni}/_emulator/bookings",  # type: ignore[union-attr]
                json={
                    "company_id": 37001,
                    "service_id": 21,
                    "person_id": 1,
                    "client_id": 1,  # Pat Jones, of the demo seed
                    "datetime": start.isoformat(),
                    "questions": {"501": "Remortgage"},
                },
                timeout=5,
            )
            assert made.status_code == 201, made.text

        # Given two bookings to come and one that has ended, in Alice's calendar
        for start in (hour - timedelta(days=1), hour + timedelta(days=2), hour + timedelta(days=3)):
            book(start)
        listed = _wait(lambda: len(_items(stack, alice)) == 3 and _items(stack, alice))
        before = {item["id"]: item for item in listed}
        past = {k for k, i in before.items() if i["end"] < hour.strftime("%Y-%m-%dT%H:%M:%SZ")}
        assert len(past) == 1
        # And a first run done, so that the next one reads only JRNI's changes (it is not deep of itself)
        assert _reconciled(api, integration)["deep"] is True
        url = f"{api}/admin/integrations/{integration}"
        stored = requests.get(url, timeout=5)

        # When the operator sends a template with an unknown name, or one that does not parse
        for bad, where in (
            ({"subject_template": "{{ service.name }} with {{ client.frist_name }}"}, "-> 1:28"),
            ({"body_template": "<p>ok</p>\n<p>{% if client.name %}open</p>"}, "-> 2:4"),
        ):
            refused = requests.patch(
                url,
                json=bad,
                headers={"If-Match": stored.headers["ETag"], "Content-Type": "application/merge-patch+json"},
                timeout=10,
            )
            # Then it is refused with where, and nothing changed
            assert refused.status_code == 422, refused.text
            assert where in refused.json()["detail"], refused.json()
        assert requests.get(url, timeout=5).json() == stored.json()

        # When the operator changes the subject and the body templates
        changed = requests.patch(
            url,
            json={"subject_template": SUBJECT, "body_template": BODY},
            headers={"If-Match": stored.headers["ETag"], "Content-Type": "application/merge-patch+json"},
            timeout=10,
        )
        assert changed.status_code == 200, changed.text
        assert changed.json()["templates_changed_at"] is not None
        subject = "Mortgage appointment with Pat Jones"
        body = "<p>12 Sample Street, Manchester ZZ4 4DD</p><p>Reason: Remortgage</p>"
        # Then a new booking shows them in Outlook at once
        book(hour + timedelta(days=4))
        newest = _wait(lambda: [i for i in _items(stack, alice) if i["id"] not in before])
        assert [(i["subject"], i["body"]) for i in newest] == [(subject, body)]
        # And the next reconcile re-renders the items to come, and says so
        run = _reconciled(api, integration)
        assert run["deep"] is True and run["repaired"]["rerendered"] == 2, run
        assert run["repaired"]["updated"] == run["repaired"]["created"] == 0
        after = {i["id"]: i for i in _items(stack, alice) if i["id"] in before}
        assert set(after) == set(before)  # the same items, none made anew
        for item_id, item in after.items():
            was = before[item_id]
            assert (item["start"], item["end"]) == (was["start"], was["end"])  # not moved
            if item_id in past:
                assert (item["subject"], item["body"]) == (was["subject"], was["body"])  # history stays
            else:
                assert (item["subject"], item["body"]) == (subject, body)
        rows = requests.get(f"{url}/mappings", timeout=10).json()["mappings"]
        [row] = [r for r in rows if r["mailbox"] == alice]
        assert row["repaired"]["rerendered"] == 2
        assert row["status"]["detail"] == "deep reconcile repaired: 2 rerendered"


def _reconciled(api: str, integration: str) -> dict[str, Any]:
    """A reconcile asked for through the admin API (not deep), once it is done."""
    asked = requests.post(
        f"{api}/admin/integrations/{integration}/reconcile", json={"deep": False}, timeout=10
    )
    assert asked.status_code == 202, asked.text
    path = f"{api}/admin/integrations/{integration}/reconcile/{asked.json()['run_id']}"
    run: dict[str, Any] = _wait(
        lambda: (r := requests.get(path, timeout=5).json())["state"] != "running" and r
    )
    assert run["state"] == "done", run
    return run
