"""Reliability on the local stack (DESIGN.md §5): duplicates, reordering, a crash at the worst moment, throttling,
an expired JRNI token, an unmapped adviser and a mailbox that can never be written — each ends with the calendars
right, nothing doubled, and anything given up on visible with its reason."""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import requests

from calsync.adapters.dynamo import DynamoLinkStore
from calsync.adapters.ews import EwsCalendar
from calsync.domain import Link, LinkState, RetryableError
from tests.e2e.conftest import (
    ALICE,
    BEN,
    CHLOE,
    E2E,
    MAILBOX,
    MAILBOXES,
    ROOM,
    SERVICE_ACCOUNT,
    WebhookRecorder,
    utc,
    wait_for,
    webhook_receiver_seed,
)

PRE, LENGTH, POST = (
    timedelta(minutes=15),
    timedelta(minutes=45),
    timedelta(minutes=10),
)  # the Mortgage appointment


def deliveries(e2e: E2E, booking_id: int) -> list[dict[str, Any]]:
    """JRNI's webhook deliveries of one booking, in the order they were sent."""
    return [d for d in e2e.jrni_stats()["webhooks"]["recent"] if d["booking_id"] == booking_id]


# --------------------------------------------------------------------------------------------------- duplicates


def test_a_webhook_jrni_delivers_twice_makes_one_item(e2e: E2E) -> None:
    e2e.jrni("POST", "faults", {"kind": "duplicate_webhooks", "count": 1})
    start = e2e.day().replace(hour=10)
    booking = e2e.book(start, person=ALICE)
    key = e2e.key(booking)

    wait_for(
        lambda: len([d for d in deliveries(e2e, booking["id"]) if d["result"] == 202]) == 2,
        "the create webhook delivered twice and accepted both times",
    )
    e2e.one_item(MAILBOX[ALICE], key)
    e2e.quiet()

    assert len(e2e.ours(MAILBOX[ALICE], key)) == 1
    assert len(e2e.captured("CreateItem")) == 1


def test_the_same_webhook_body_posted_three_times_and_its_message_replayed_make_one_unchanged_item(
    e2e: E2E,
) -> None:
    with WebhookRecorder() as recorder:
        e2e.jrni("POST", "webhooks", {"url": recorder.url, "format": webhook_receiver_seed()["format"]})
        booking = e2e.book(e2e.day().replace(hour=11), person=ALICE)
        key = e2e.key(booking)
        first = e2e.one_item(MAILBOX[ALICE], key)
        (body,) = wait_for(lambda: recorder.bodies, "the webhook captured")

    auth = webhook_receiver_seed()["auth"]["basic"]
    token = base64.b64encode(f"{auth['username']}:{auth['password']}".encode()).decode()
    url = f"{e2e.api}/webhooks/jrni/{e2e.integration_id}"
    for _ in range(3):
        answer = requests.post(
            url,
            data=body,
            timeout=10,
            headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
        )
        assert answer.status_code == 202, answer.text
    # SQS delivers at least once: the same message handled twice more must change nothing either.
    handled = e2e.handled()
    message = json.dumps(
        {
            "integration_id": e2e.integration_id,
            "company_id": str(booking["company_id"]),
            "booking_id": str(booking["id"]),
            "trigger": "create",
        },
        sort_keys=True,
    )
    for n in range(2):
        e2e.sqs.send_message(
            QueueUrl=e2e.queue_url,
            MessageBody=message,
            MessageGroupId=f"replay/{key}",
            MessageDeduplicationId=f"replay-{key}-{n}",
        )
    wait_for(lambda: e2e.handled() >= handled + 2, "both replayed messages handled")
    e2e.quiet()

    (item,) = e2e.ours(MAILBOX[ALICE], key)
    assert (item["id"], item["change_key"]) == (first["id"], first["change_key"])  # not even rewritten
    assert len(e2e.captured("CreateItem")) == 1
    assert e2e.captured("UpdateItem") == []


def test_a_modify_webhook_arriving_before_the_create_still_ends_with_the_moved_booking(e2e: E2E) -> None:
    e2e.jrni("POST", "faults", {"kind": "reorder_webhooks", "count": 1})
    day = e2e.day()
    booking = e2e.book(day.replace(hour=10), person=ALICE, resource=ROOM)
    later = day.replace(hour=13)
    e2e.jrni(
        "PUT", f"bookings/{booking['id']}", {"datetime": later.isoformat()}
    )  # within the 0.5 s it is held
    key = e2e.key(booking)

    wait_for(lambda: len(deliveries(e2e, booking["id"])) == 2, "both webhooks delivered")
    assert [d["trigger"] for d in deliveries(e2e, booking["id"])] == [
        "modify",
        "create",
    ]  # really out of order
    for m in (ALICE, ROOM):
        item = e2e.one_item(
            MAILBOX[m], key, lambda i: utc(i["start"]) == later - PRE, f"booking {key} at 13:00"
        )
        assert utc(item["end"]) == later + LENGTH + POST
    e2e.quiet()
    assert [len(e2e.ours(MAILBOX[m], key)) for m in (ALICE, ROOM)] == [1, 1]


# -------------------------------------------------------------------------------------------------------- crash


class SimulatedCrash(RuntimeError):
    """The function dying: nothing after this point of the invocation happens."""


@dataclass
class CrashOnce:
    """Fails the first "synced" link write, as if the function died right after Exchange created the item."""

    original: Any
    crashed: int = 0

    def __post_init__(self) -> None:
        self.lock = threading.Lock()

    def save(self, store: DynamoLinkStore, link: Link) -> Link:
        with self.lock:
            crash = link.state is LinkState.SYNCED and not self.crashed
            self.crashed += crash
        if crash:
            raise SimulatedCrash("between the Exchange create and the link write")
        result: Link = self.original(store, link)
        return result


def test_a_crash_between_the_exchange_create_and_the_link_write_leaves_one_item_after_the_retry(
    e2e: E2E, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    crash = CrashOnce(DynamoLinkStore.save)
    monkeypatch.setattr(DynamoLinkStore, "save", lambda store, link: crash.save(store, link))

    def crashing(record_handler: Any) -> Any:
        def crashing_handler(record: Any) -> None:
            try:
                record_handler(record)
            except SimulatedCrash:
                # Lambda would retry after the queue's visibility timeout (12 minutes); one second is enough here.
                e2e.sqs.change_message_visibility(
                    QueueUrl=e2e.queue_url, ReceiptHandle=record.receipt_handle, VisibilityTimeout=1
                )
                raise

        return crashing_handler

    # In every environment of the outbound function (each poller worker runs its own copy of the module).
    forget = e2e.stack.functions["OutboundFunction"].customise(
        lambda module: monkeypatch.setattr(module, "record_handler", crashing(module.record_handler))
    )
    request.addfinalizer(forget)
    start = e2e.day().replace(hour=9)
    booking = e2e.book(start, person=ALICE)
    key = e2e.key(booking)

    wait_for(lambda: crash.crashed, "the crash")
    e2e.one_item(MAILBOX[ALICE], key)  # Exchange has the item, the link says "pending"
    e2e.quiet()

    (item,) = e2e.ours(MAILBOX[ALICE], key)
    assert (utc(item["start"]), utc(item["end"])) == (start - PRE, start + LENGTH + POST)
    assert (
        len(e2e.captured("CreateItem")) == 1
    )  # the retry found our item by its stamp instead of creating another
    assert len(e2e.captured("FindItem")) == 1
    assert crash.crashed == 1
    assert e2e.mapping_row("person", ALICE)["status"]["state"] == "ok"


def test_a_create_exchange_holds_for_70_s_ends_as_one_item_also_after_the_booking_is_moved_and_cancelled(
    e2e: E2E,
) -> None:
    """Exchange holds the first CreateItem for 70 s, then carries it out: calsync gave up waiting after 30 s and was
    retried meanwhile. The retry must not take an empty search for "not written" while that write may still land."""
    e2e.ews_control(
        "POST", "faults", {"operation": "CreateItem", "kind": "delay", "count": 1, "delay_ms": 70_000}
    )
    mailbox = MAILBOX[ALICE]
    start = e2e.day().replace(hour=11)
    booking = e2e.book(start, person=ALICE)
    key = e2e.key(booking)

    # The held write lands at about 70 s; the retry, told to look again once it may have, finds it by its stamp.
    wait_for(lambda: e2e.ours(mailbox, key), "the held write landing", timeout=90)
    e2e.quiet(timeout=150)
    e2e.stays(lambda: len(e2e.ours(mailbox, key)) == 1, "exactly one item for the booking", seconds=3)
    assert len(e2e.captured("CreateItem")) == 1  # nothing was written a second time

    later = start + timedelta(hours=2)
    e2e.jrni("PUT", f"bookings/{booking['id']}", {"datetime": later.isoformat()})
    e2e.one_item(mailbox, key, lambda item: utc(item["start"]) == later - PRE, "the item moved")
    e2e.quiet()
    assert len(e2e.ours(mailbox, key)) == 1

    e2e.jrni("POST", f"bookings/{booking['id']}/cancel", {"cancel_reason": "customer cancelled"})
    e2e.gone(mailbox, key)
    e2e.quiet()
    e2e.stays(lambda: not e2e.ours(mailbox, key), "no item left for the cancelled booking")


# --------------------------------------------------------------------------------------------------- throttling


def test_exchange_server_busy_postpones_the_message_for_at_least_the_back_off_then_it_succeeds(
    e2e: E2E, monkeypatch: pytest.MonkeyPatch
) -> None:
    back_off = 1.5
    attempts: list[tuple[float, str]] = []
    original = EwsCalendar.create_event

    def create_event(calendar: EwsCalendar, mailbox: str, content: Any) -> Any:
        try:
            ref = original(calendar, mailbox, content)
        except RetryableError as exc:
            attempts.append((time.monotonic(), f"retryable after {exc.delay_seconds:g} s"))
            raise
        attempts.append((time.monotonic(), "created"))
        return ref

    monkeypatch.setattr(EwsCalendar, "create_event", create_event)
    e2e.ews_control(
        "POST",
        "faults",
        {"operation": "CreateItem", "kind": "server_busy", "count": 1, "back_off_ms": int(back_off * 1000)},
    )
    booking = e2e.book(e2e.day().replace(hour=10), person=ALICE)
    key = e2e.key(booking)

    e2e.one_item(MAILBOX[ALICE], key)
    e2e.quiet()

    assert [outcome for _, outcome in attempts] == [f"retryable after {back_off:g} s", "created"]
    assert attempts[1][0] - attempts[0][0] >= back_off  # not back sooner than Exchange asked
    assert len(e2e.ours(MAILBOX[ALICE], key)) == 1
    assert e2e.ews_control("GET", "stats")["faults_fired"]


# ------------------------------------------------------------------------------------------------- JRNI's token


def logins(e2e: E2E) -> int:
    return sum(n for endpoint, n in e2e.jrni_stats()["requests"].items() if "/login" in endpoint)


def test_an_expired_jrni_token_means_one_more_login_and_the_booking_still_syncs(e2e: E2E) -> None:
    # Log in first (any earlier sync did), so that what follows is a renewal.
    e2e.one_item(MAILBOX[ALICE], e2e.key(e2e.book(e2e.day().replace(hour=8), person=ALICE)))
    e2e.quiet()
    before = logins(e2e)
    e2e.jrni("POST", "faults", {"kind": "token_expiry"})

    booking = e2e.book(e2e.day().replace(hour=10), person=BEN)
    key = e2e.key(booking)

    item = e2e.one_item(MAILBOX[BEN], key)
    e2e.quiet()
    assert logins(e2e) == before + 1
    assert item["subject"] == "Mortgage appointment: Pat Jones"
    assert e2e.queue_counts(e2e.dead_letter_url) == (0, 0, 0)
    assert e2e.mapping_row("person", BEN)["status"]["state"] == "ok"


# ----------------------------------------------------------------------------------------------------- unmapped


def test_a_booking_for_an_unmapped_adviser_is_skipped_writes_nothing_and_is_shown_in_the_status(
    e2e: E2E,
) -> None:
    booking = e2e.book(e2e.day().replace(hour=10), person=CHLOE)
    key = e2e.key(booking)

    def skipped() -> dict[str, Any]:
        problems = e2e.admin("GET", f"integrations/{e2e.integration_id}/status")["problems"]
        return next(
            (
                p
                for p in problems
                if p["kind"] == "person"
                and p["jrni_id"] == CHLOE
                and p["state"] == "skipped"
                and key in p["detail"]
            ),
            {},
        )

    problem = wait_for(skipped, f"booking {key} shown as skipped in the integration's status")
    e2e.quiet()

    assert "no mailbox is mapped" in problem["detail"]
    row = e2e.mapping_row("person", CHLOE)
    assert row["mailbox"] is None
    assert row["status"]["state"] == "skipped" and key in row["status"]["detail"]
    assert all(e2e.ours(mailbox, key) == [] for mailbox in MAILBOXES)
    assert e2e.captured("CreateItem") == []
    assert e2e.queue_counts(e2e.dead_letter_url) == (0, 0, 0)  # skipped is not failed


# --------------------------------------------------------------------------------------- a mailbox that cannot be


def dead_letters(e2e: E2E, booking_id: int) -> list[dict[str, Any]]:
    """The dead-letter queue's messages for one booking (received and removed: the queue is ours alone here)."""
    return [
        m
        for m in e2e.drain(e2e.dead_letter_url)
        if json.loads(m["Body"]).get("booking_id") == str(booking_id)
    ]


def test_a_mailbox_that_refuses_us_sends_its_message_to_the_dead_letter_queue_and_others_still_sync(
    e2e: E2E,
) -> None:
    # Exchange's administrator took Ben's mailbox out of the service account's impersonation scope.
    allowed = [MAILBOX[m] for m in (ALICE, ROOM, CHLOE)]
    e2e.ews_control("POST", "impersonation", {"service_account": SERVICE_ACCOUNT, "mailboxes": allowed})
    start = e2e.day().replace(hour=10)
    for_ben = e2e.book(start, person=BEN, client="Kim Park")
    for_alice = e2e.book(start, person=ALICE, client="Lee Moss")  # the same time, another adviser

    (dead,) = wait_for(lambda: dead_letters(e2e, for_ben["id"]), "Ben's message in the dead-letter queue")
    alice = e2e.one_item(MAILBOX[ALICE], e2e.key(for_alice))
    e2e.quiet()

    reason = dead["MessageAttributes"]["reason"]["StringValue"]
    assert "may not impersonate ben@bank.example.test" in reason
    assert alice["subject"] == "Mortgage appointment: Lee Moss"
    assert e2e.items(MAILBOX[BEN]) == []
    status = e2e.mapping_row("person", BEN)["status"]
    assert status["state"] == "error"
    assert "may not impersonate ben@bank.example.test" in status["detail"]
    problems = e2e.admin("GET", f"integrations/{e2e.integration_id}/status")["problems"]
    assert any(p["jrni_id"] == BEN and p["state"] == "error" for p in problems)
    assert e2e.mapping_row("person", ALICE)["status"]["state"] == "ok"


def test_a_mailbox_that_refuses_us_does_not_keep_the_meeting_room_of_the_same_booking_empty(e2e: E2E) -> None:
    e2e.ews_control(
        "POST",
        "impersonation",
        {"service_account": SERVICE_ACCOUNT, "mailboxes": [MAILBOX[m] for m in (ALICE, ROOM, CHLOE)]},
    )
    start = e2e.day().replace(hour=10)
    booking = e2e.book(start, person=BEN, resource=ROOM)
    key = e2e.key(booking)

    (dead,) = wait_for(
        lambda: dead_letters(e2e, booking["id"]), "the booking's message in the dead-letter queue"
    )
    assert "may not impersonate ben@bank.example.test" in dead["MessageAttributes"]["reason"]["StringValue"]
    e2e.quiet()  # the message is done with: nothing more will be written for it
    # The room's calendar is not Ben's: it shows the booking all the same, and its status is not Ben's error.
    (room,) = e2e.ours(MAILBOX[ROOM], key)
    assert (utc(room["start"]), utc(room["end"])) == (start - PRE, start + LENGTH + POST)
    assert e2e.mapping_row("resource", ROOM)["status"]["state"] == "ok"
    assert e2e.mapping_row("person", BEN)["status"]["state"] == "error"
