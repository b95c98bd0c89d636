"""One local stack (moto, both emulators, the front, the SQS poller, the demo seed) for the whole e2e package.

It is started once for the package and brought back to a known state after every test: faults cleared, impersonation
and webhooks as the seed set them, the queue quiet, and every calendar empty. Each test books on a day of its own,
so bookings left in JRNI by earlier tests never clash with, nor show up beside, the ones a test looks at.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import pytest
import requests
from lxml import etree

from local.seed import DEMO_SEED
from local.stack import LocalStack, StackOptions

T = TypeVar("T")

# The demo seed's organisation (local/demo-seed.json).
BRANCH = 37001
ALICE, BEN, CHLOE, ROOM = "1", "2", "3", "11"
MORTGAGE, SAVINGS = 21, 22  # Mortgage: 45 min, 15 before, 10 after; Savings review: 30 min, no buffers
MAILBOX = {
    ALICE: "alice@bank.example.test",
    BEN: "ben@bank.example.test",
    CHLOE: "chloe@bank.example.test",
    ROOM: "room1@bank.example.test",
}
MAILBOXES = tuple(MAILBOX.values())
SERVICE_ACCOUNT = "calsync-svc@bank.example.test"
PROPERTY_SET_ID = "4f0c2b9e-6d1a-4c3e-9b57-2a8e61c0d7f3"  # calsync's own; constant for ever (see stamps.py)
KEY_PROPERTY, INTEGRATION_PROPERTY = "CalsyncJrniKey", "CalsyncIntegrationId"

NAME = {ALICE: "Alice Adams", BEN: "Ben Brown", CHLOE: "Chloe Clark", ROOM: "Meeting Room 1"}
MAPPED = (ALICE, BEN, ROOM)  # the seed maps these three to mailboxes; Chloe has none
MARKER_PREFIX = "calsync:"  # the last line of the private note of every JRNI block calsync makes
ALL_BLOCKING = ["Busy", "OOF", "Tentative", "WorkingElsewhere"]  # the integrations' default blocking statuses
PRIVATE_TITLE = "Private appointment"  # the neutral title of a private item's block

WAIT_SECONDS = 15.0  # the longest any step may take; a booking normally arrives in well under a second
POLL_SECONDS = 0.02
_days = itertools.count(20)  # each test's bookings on their own day, 20 days and more ahead


def wait_for(check: Callable[[], T], what: str, timeout: float = WAIT_SECONDS) -> T:
    """Poll ``check`` until it answers something truthy; fail saying ``what`` was awaited (and what it was last)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what} (last seen: {value!r})")
        time.sleep(POLL_SECONDS)


def utc(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def stamp_of(item: dict[str, Any], name: str) -> str | None:
    """The value of one of calsync's extended properties on an item (None when absent)."""
    return next(
        (
            str(p["value"])
            for p in item.get("extended_properties", [])
            if p.get("property_set_id", "").lower() == PROPERTY_SET_ID and p.get("property_name") == name
        ),
        None,
    )


@dataclass(frozen=True)
class Block:
    """A live JRNI block calsync made for an Outlook item, as JRNI's state shows it."""

    id: int
    who: str  # the JRNI person or resource id (the seed's ids never overlap)
    start: datetime
    end: datetime
    title: str  # the private note's lines before calsync's marker
    marker: str

    @property
    def window(self) -> tuple[datetime, datetime]:
        return self.start, self.end


def calsync_blocks(state: dict[str, Any], *, live: bool = True) -> list[Block]:
    """The blocks (status-3 bookings) in a JRNI state whose private note ends with calsync's marker; with ``live``
    False the cancelled (removed) ones too."""
    found = []
    for block in state.get("blocks", []):
        lines = str(block.get("private_note") or "").splitlines()
        if not lines or not lines[-1].startswith(MARKER_PREFIX) or (live and block.get("is_cancelled")):
            continue
        who = block.get("person_id") or block.get("resource_id")
        found.append(
            Block(
                int(block["id"]),
                str(who),
                utc(block["datetime"]),
                utc(block["end_datetime"]),
                "\n".join(lines[:-1]),
                lines[-1],
            )
        )
    return sorted(found, key=lambda b: (b.who, b.start, b.id))


def jrni_writes(stats: dict[str, Any]) -> dict[str, int]:
    """The admin-API writes in JRNI's request counts (logins left out): every block, slot and booking change."""
    return {
        endpoint: count
        for endpoint, count in stats.get("requests", {}).items()
        if "/api/" in endpoint and not endpoint.startswith("GET ") and "/login" not in endpoint
    }


def minus(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    """Counts that grew between two snapshots, by how much."""
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


@dataclass
class E2E:
    """The running stack and what a test does with it: JRNI changes as a JRNI user makes them, Outlook as seen."""

    stack: LocalStack
    http: requests.Session = field(default_factory=requests.Session)
    saved_blocking: list[str] | None = None  # the integration's blocking statuses before a test changed them

    # ---- addresses ----------------------------------------------------------------------------------------------

    @property
    def api(self) -> str:
        assert self.stack.urls is not None
        return self.stack.urls.api

    @property
    def ews(self) -> str:
        assert self.stack.urls is not None
        return self.stack.urls.ews

    @property
    def jrni_url(self) -> str:
        assert self.stack.urls is not None
        return self.stack.urls.jrni

    @property
    def integration_id(self) -> str:
        assert self.stack.seeded is not None
        return self.stack.seeded.integration_id

    @property
    def queue_url(self) -> str:
        assert self.stack.poller is not None
        return self.stack.poller.queue_url

    @property
    def dead_letter_url(self) -> str:
        assert self.stack.resources is not None
        arn = json.loads(
            self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["RedrivePolicy"])[
                "Attributes"
            ]["RedrivePolicy"]
        )["deadLetterTargetArn"]
        logical = next(name for name, value in self.stack.resources.queue_arns.items() if value == arn)
        return self.stack.resources.queue_urls[logical]

    @property
    def sqs(self) -> Any:
        return self.stack.client("sqs")

    # ---- JRNI, as a JRNI user changes it (the emulator's control plane, which fires the webhooks) ----------------

    def jrni(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self.http.request(method, f"{self.jrni_url}/_emulator/{path}", json=body, timeout=10)
        assert response.status_code < 400, (
            f"JRNI refused {method} {path}: {response.status_code} {response.text}"
        )
        return response.json() if response.content else None

    def book(
        self,
        start: datetime,
        *,
        person: str | None = ALICE,
        resource: str | None = None,
        service: int = MORTGAGE,
        reservation: bool = False,
        client: str = "Pat Jones",
        external: bool = False,
    ) -> dict[str, Any]:
        """A booking made in JRNI's screens at the branch; the booking JSON JRNI answers. ``external``: one JRNI
        shows as made outside it (it refuses to move it: 403)."""
        first, last = client.split(" ", 1)
        body: dict[str, Any] = {
            "company_id": BRANCH,
            "service_id": service,
            "datetime": start.isoformat(),
            "client": {
                "first_name": first,
                "last_name": last,
                "email": f"{first.lower()}@customer.example.test",
            },
        }
        if person is not None:
            body["person_id"] = int(person)
        if resource is not None:
            body["resource_id"] = int(resource)
        if reservation:
            body["reservation"] = True
        if external:
            body["external"] = True
        booking: dict[str, Any] = self.jrni("POST", "bookings", body)
        return booking

    def jrni_stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self.http.get(f"{self.jrni_url}/_emulator/stats", timeout=10).json()
        return stats

    # ---- Exchange, as Outlook shows it (the EWS emulator's control plane) ---------------------------------------

    def items(self, mailbox: str) -> list[dict[str, Any]]:
        response = self.http.get(f"{self.ews}/_emulator/mailboxes/{mailbox}/items", timeout=10)
        response.raise_for_status()
        return list(response.json())

    def ours(self, mailbox: str, key: str) -> list[dict[str, Any]]:
        """The items in ``mailbox`` stamped with JRNI key ``key`` ("company/booking")."""
        return [item for item in self.items(mailbox) if stamp_of(item, KEY_PROPERTY) == key]

    def one_item(
        self, mailbox: str, key: str, check: Callable[[dict[str, Any]], bool] = lambda _: True, what: str = ""
    ) -> dict[str, Any]:
        """Wait until ``mailbox`` shows exactly one item for ``key`` and ``check`` holds for it; that item."""

        def found() -> dict[str, Any]:
            items = self.ours(mailbox, key)
            return items[0] if len(items) == 1 and check(items[0]) else {}

        return wait_for(found, what or f"one item for booking {key} in {mailbox}")

    def gone(self, mailbox: str, key: str) -> None:
        wait_for(lambda: not self.ours(mailbox, key), f"no item for booking {key} in {mailbox}")

    def ews_control(self, method: str, path: str, body: Any = None) -> Any:
        response = self.http.request(method, f"{self.ews}/_emulator/{path}", json=body, timeout=10)
        assert response.status_code < 400, f"EWS emulator refused {method} {path}: {response.text}"
        return response.json() if response.content else None

    def captured(self, operation: str) -> list[Any]:
        """The EWS requests of ``operation`` the emulator received since the test began, as XML elements."""
        captured = list(self.stack.ews.settings.captured)
        return [
            etree.fromstring(payload)
            for direction, name, payload, _ in captured
            if direction == "request" and name == operation
        ]

    # ---- Outlook, as the mailbox owner changes it (the EWS emulator's control plane) --------------------------

    def outlook(
        self, method: str, mailbox: str, item_id: str | None = None, body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        path = f"{self.ews}/_emulator/mailboxes/{mailbox}/items"
        if item_id is not None:
            path += "/" + quote(item_id, safe="")
        response = self.http.request(method, path, json=body, timeout=10)
        assert response.status_code < 400, (
            f"Outlook refused {method} {path}: {response.status_code} {response.text}"
        )
        return dict(response.json()) if response.content else {}

    def meeting(
        self,
        mailbox: str,
        start: datetime,
        minutes: int = 60,
        status: str = "Busy",
        subject: str = "Team meeting",
        **fields: Any,
    ) -> dict[str, Any]:
        """A meeting the adviser puts in their own calendar; the item JSON."""
        return self.outlook(
            "POST",
            mailbox,
            body={
                "subject": subject,
                "start": start.isoformat(),
                "end": (start + timedelta(minutes=minutes)).isoformat(),
                "legacy_free_busy_status": status,
                **fields,
            },
        )

    def move(self, mailbox: str, item_id: str, start: datetime, minutes: int = 60) -> dict[str, Any]:
        return self.outlook(
            "PATCH",
            mailbox,
            item_id,
            {"start": start.isoformat(), "end": (start + timedelta(minutes=minutes)).isoformat()},
        )

    def view(self, mailbox: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """The calendar's expanded view of ``start`` … ``end`` (occurrences with their own ids)."""
        response = self.http.get(
            f"{self.ews}/_emulator/mailboxes/{mailbox}/items",
            timeout=10,
            params={"start": start.isoformat(), "end": end.isoformat()},
        )
        response.raise_for_status()
        return list(response.json())

    def ews_stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self.ews_control("GET", "stats")
        return stats

    def ews_writes(self) -> dict[str, int]:
        operations = self.ews_stats().get("operations", {})
        return {op: int(operations.get(op, 0)) for op in ("CreateItem", "UpdateItem", "DeleteItem")}

    # ---- JRNI's blocks ----------------------------------------------------------------------------------------

    def jrni_state(self) -> dict[str, Any]:
        state: dict[str, Any] = self.jrni("GET", "state")
        return state

    def blocks(self, who: str | None = None) -> list[Block]:
        """calsync's live JRNI blocks (of one person or resource)."""
        return [b for b in calsync_blocks(self.jrni_state()) if who is None or b.who == who]

    def booking_now(self, booking_id: int) -> dict[str, Any]:
        booking: dict[str, Any] = next(b for b in self.jrni_state()["bookings"] if b["id"] == booking_id)
        return booking

    def wait_blocks(
        self,
        who: str,
        windows: list[tuple[datetime, datetime]],
        what: str = "",
        timeout: float = WAIT_SECONDS,
    ) -> list[Block]:
        """Wait until ``who``'s calsync blocks are exactly ``windows`` (one block each); the blocks."""
        want = sorted(windows)

        def match() -> list[list[Block]]:  # the blocks, wrapped: no blocks at all is an answer too
            found = self.blocks(who)
            return [found] if sorted(b.window for b in found) == want else []

        try:
            return wait_for(match, what or f"{NAME[who]}'s blocks at exactly {want}", timeout)[0]
        except AssertionError as exc:
            have = [(f"{b.start:%d %b %H:%M}", f"{b.end:%H:%M}", b.title) for b in self.blocks(who)]
            raise AssertionError(f"{exc}; JRNI has {have}") from None

    def stays(self, check: Callable[[], bool], what: str, seconds: float = 1.5) -> None:
        """``check`` holds now and for ``seconds`` (what must *not* happen is watched for a bounded while)."""
        deadline = time.monotonic() + seconds
        while True:
            assert check(), f"no longer true: {what}"
            if time.monotonic() > deadline:
                return
            time.sleep(POLL_SECONDS * 5)

    def set_blocking(self, statuses: list[str]) -> None:
        """The integration's blocking Outlook statuses (its ``inbound_free_busy``), as an operator edits its item;
        put back after the test."""
        dynamodb = self.stack.client("dynamodb")
        key = {"integration_id": {"S": self.integration_id}}
        if self.saved_blocking is None:
            item = dynamodb.get_item(TableName=os.environ["INTEGRATIONS_TABLE"], Key=key)["Item"]
            self.saved_blocking = [v["S"] for v in item.get("inbound_free_busy", {}).get("L", [])]
        dynamodb.update_item(
            TableName=os.environ["INTEGRATIONS_TABLE"],
            Key=key,
            UpdateExpression="SET inbound_free_busy = :v",
            ExpressionAttributeValues={":v": {"L": [{"S": s} for s in statuses]}},
        )

    # ---- the inbound queue ----------------------------------------------------------------------------------

    @property
    def inbound_queue_url(self) -> str:
        assert self.stack.inbound_poller is not None
        return self.stack.inbound_poller.queue_url

    def sync_every_mailbox(self, timeout: float = WAIT_SECONDS) -> None:
        """Ask for a sync of every mapped mailbox (as the streaming task's timer would) and wait until the inbound
        queue is empty again: each mailbox has then been read at least once after this call."""
        assert self.stack.inbound_poller is not None
        poller = self.stack.inbound_poller
        before = poller.deleted
        entries = [
            {
                "Id": str(i),
                "MessageGroupId": f"{self.integration_id}/{MAILBOX[who]}",
                "MessageDeduplicationId": uuid.uuid4().hex,
                "MessageBody": json.dumps(
                    {"integration": self.integration_id, "mailbox": MAILBOX[who], "reason": "timer"}
                ),
            }
            for i, who in enumerate(MAPPED)
        ]
        self.sqs.send_message_batch(QueueUrl=self.inbound_queue_url, Entries=entries)
        wait_for(
            lambda: (
                poller.deleted >= before + len(entries)
                and self.queue_counts(self.inbound_queue_url) == (0, 0, 0)
            ),
            "every mailbox synced and the inbound queue empty",
            timeout,
        )

    # ---- the admin API -------------------------------------------------------------------------------------------

    def admin(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        response = self.http.request(method, f"{self.api}/admin/{path}", json=body, timeout=30)
        assert response.status_code == expect, (
            f"{method} /admin/{path}: {response.status_code} {response.text}"
        )
        return response.json() if response.content else None

    def mapping_row(self, kind: str, jrni_id: str, integration_id: str | None = None) -> dict[str, Any]:
        path = f"integrations/{integration_id or self.integration_id}/mappings?limit=500"
        rows = self.admin("GET", path)["mappings"]
        row: dict[str, Any] = next(r for r in rows if r["kind"] == kind and str(r["jrni_id"]) == jrni_id)
        return row

    # ---- the queue -----------------------------------------------------------------------------------------------

    def queue_counts(self, url: str | None = None) -> tuple[int, int, int]:
        """(visible, in flight, delayed) messages of the outbound queue (or of ``url``)."""
        names = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ]
        attributes = self.sqs.get_queue_attributes(QueueUrl=url or self.queue_url, AttributeNames=names)[
            "Attributes"
        ]
        visible, in_flight, delayed = (int(attributes.get(name, 0)) for name in names)
        return visible, in_flight, delayed

    def drain(self, url: str) -> list[dict[str, Any]]:
        """Receive and delete every message visible in queue ``url``; the messages, with their attributes."""
        drained: list[dict[str, Any]] = []
        while True:
            answer = self.sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=0,
                MessageAttributeNames=["All"],
                AttributeNames=["All"],
            )
            messages = answer.get("Messages", [])
            if not messages:
                return drained
            for message in messages:
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            drained.extend(messages)

    def handled(self) -> int:
        """How many outbound messages the poller has deleted (processed to the end) so far."""
        assert self.stack.poller is not None
        return self.stack.poller.deleted

    def quiet(self, timeout: float = WAIT_SECONDS) -> None:
        """Wait until JRNI has delivered every webhook and the outbound queue is empty."""

        seen: list[str] = []

        def settled() -> bool:
            hooks = self.jrni_stats()["webhooks"]
            counts = self.queue_counts()
            seen[:] = [
                f"webhooks {hooks['enqueued']} enqueued, {hooks['delivered']} delivered, {hooks['failed']} "
                f"failed; queue (visible, in flight, delayed) {counts}"
            ]
            return hooks["enqueued"] <= hooks["delivered"] + hooks["failed"] and counts == (0, 0, 0)

        try:
            wait_for(settled, "JRNI's webhooks delivered and the outbound queue empty", timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {seen[0]}") from None

    # ---- times ---------------------------------------------------------------------------------------------------

    @staticmethod
    def day() -> datetime:
        """Midnight UTC of a day no other test books on."""
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        return today + timedelta(days=next(_days))

    @staticmethod
    def key(booking: dict[str, Any]) -> str:
        return f"{booking['company_id']}/{booking['id']}"


def webhook_receiver_seed() -> dict[str, Any]:
    """The receiver the seed points JRNI's webhooks at (the demo integration's URL and credentials)."""
    webhook = json.loads(Path(DEMO_SEED).read_text(encoding="utf-8"))["integration"]["webhook"]
    return {
        "format": webhook["format"],
        "auth": {"basic": {"username": webhook["username"], "password": webhook["password"]}},
    }


class WebhookRecorder:
    """A webhook receiver on loopback that keeps every body it is sent (to replay a delivery byte for byte)."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.headers: list[dict[str, str]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                recorder.bodies.append(body)
                recorder.headers.append(dict(self.headers))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def __enter__(self) -> WebhookRecorder:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="package")  # torn down before tests/local starts stacks of its own
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    log_path = tmp_path_factory.mktemp("e2e") / "functions.log"
    with (
        log_path.open("w", encoding="utf-8") as log,
        LocalStack(
            StackOptions(
                api_port=0,
                ews_port=0,
                jrni_port=0,
                seed=DEMO_SEED,
                log_stream=log,
                log_level="WARNING",
            )
        ) as running,
    ):
        yield running
        # moto's server keeps its state in the process's global backends, which outlive the server: without this the
        # next LocalStack in this process (tests/local) finds the template's tables already there.
        requests.post(f"{os.environ['AWS_ENDPOINT_URL']}/moto-api/reset", timeout=10).raise_for_status()


@pytest.fixture
def e2e(stack: LocalStack) -> Iterator[E2E]:
    """The stack, in a known state before the test and brought back to it afterwards."""
    world = E2E(stack)
    world.ews_control("POST", "config", {"capture": True})
    stack.ews.settings.captured.clear()
    yield world
    # Back to the seed's set-up, whatever the test changed or broke.
    world.jrni("DELETE", "faults")
    world.ews_control("DELETE", "faults")
    world.ews_control("POST", "impersonation", {"service_account": SERVICE_ACCOUNT, "mailboxes": ["*"]})
    seeded = {"url": f"{world.api}/webhooks/jrni/{world.integration_id}", **webhook_receiver_seed()}
    if [r.get("url") for r in world.jrni("GET", "webhooks")["webhooks"]] != [seeded["url"]]:
        world.jrni("DELETE", "webhooks")
        world.jrni("POST", "webhooks", seeded)
    try:
        world.quiet()
    except AssertionError:
        # A message a failed test left in flight would hold its booking up for the visibility timeout.
        world.sqs.purge_queue(QueueUrl=world.queue_url)
        raise
    finally:
        if world.saved_blocking is not None:
            world.set_blocking(world.saved_blocking)
        # Mailboxes emptied, JRNI back to the seed, links, block links, cursors and statuses cleared, queues empty,
        # with the pollers paused: the inbound function must not take the emptying for advisers deleting items.
        stack.reset()
        stack.ews.settings.captured.clear()
