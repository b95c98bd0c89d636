"""Reconciliation of what happened while calsync was not told: the streaming task is stopped (its ECS service scaled
to 0) and advisers change their calendars, or a JRNI user removes a block calsync made. One reconcile
(``POST /admin/integrations/{id}/reconcile``) makes JRNI agree with Outlook, puts calsync's own items back as JRNI has
them (appointment lock on) or moves the booking (lock off), and blocks a removed block's time again; a second
reconcile then writes nothing. The judges are JRNI's state and the mailboxes as Outlook shows them; a stopped
streaming task stays stopped until the test ends (and then runs again), so only the reconcile can have made the
change.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest

from local.streaming import StreamingSupervisor
from tests.e2e.conftest import (
    ALICE,
    BEN,
    E2E,
    MAILBOX,
    NAME,
    PRIVATE_TITLE,
    SAVINGS,
    jrni_writes,
    minus,
    utc,
    wait_for,
)
from tests.e2e.test_reconcile import reconcile, writes

ADVISERS = (ALICE, BEN)
RESTART_SECONDS = 10.0  # the supervisor starts a new task about a second after resume()


class Outage:
    """The streaming task stopped and none started in its place, for as long as a test needs; always ended by the
    fixture, failed test or not."""

    def __init__(self, e2e: E2E) -> None:
        self.e2e = e2e
        supervisor = e2e.stack.streaming
        assert supervisor is not None, "the stack runs no streaming task"
        self.supervisor: StreamingSupervisor = supervisor
        self.stopped_pid: int | None = None

    def begin(self) -> None:
        """Stop the task (SIGTERM, as ECS does), then let the inbound queue drain: a wake the task sent on its way out
        is handled before the test changes anything, and every mailbox's cursor is where the outage starts."""
        assert self.supervisor.returncode is None, "no streaming task running before the outage"
        self.stopped_pid = self.supervisor.pid
        self.supervisor.pause()
        assert self.supervisor.returncode is not None, "the streaming task still runs"
        self.e2e.sync_every_mailbox()

    def running(self) -> bool:
        """Whether a streaming task runs, or has run, since ``begin()``."""
        return self.supervisor.pid != self.stopped_pid or self.supervisor.returncode is None

    def end(self) -> None:
        if self.stopped_pid is None:
            return
        self.supervisor.resume()
        wait_for(
            lambda: self.supervisor.pid != self.stopped_pid and self.supervisor.returncode is None,
            "a streaming task running again",
            RESTART_SECONDS,
        )
        self.stopped_pid = None


@pytest.fixture
def outage(e2e: E2E) -> Iterator[Outage]:
    """``outage.begin()`` stops the streaming task; it runs again after the test, whatever happened."""
    stopped = Outage(e2e)
    try:
        yield stopped
    finally:
        stopped.end()


@pytest.fixture(autouse=True)
def no_reconcile_message_left_in_flight(e2e: E2E, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A reconcile message the function fails on stays invisible for the queue's visibility timeout (30 min) and
    holds its message group (the mailbox) up as long: every later run of that mailbox, in any later test, would wait
    for it. The messages this test's runs failed on are deleted after it (the reset only removes visible ones)."""
    poller = e2e.stack.reconcile_poller
    assert poller is not None
    handler = poller.handler
    failed: list[str] = []  # receipt handles

    def recording(event: dict[str, Any], context: Any) -> Any:
        handles = {r["messageId"]: r["receiptHandle"] for r in event["Records"]}
        try:
            response = handler(event, context)
        except Exception:
            failed.extend(handles.values())
            raise
        failed.extend(
            handles[f["itemIdentifier"]]
            for f in (response or {}).get("batchItemFailures", [])
            if f["itemIdentifier"] in handles
        )
        return response

    monkeypatch.setattr(poller, "handler", recording)
    yield
    for handle in failed:
        try:
            e2e.sqs.delete_message(QueueUrl=poller.queue_url, ReceiptHandle=handle)
        except Exception as exc:  # gone already (dead-lettered, or received again): nothing left to free
            print(f"reconcile message not deleted: {exc}")


def appointment_lock(e2e: E2E) -> bool:
    """The integration's appointment lock, as the admin API shows it."""
    integrations = e2e.admin("GET", "integrations")["integrations"]
    return bool(next(i for i in integrations if i["id"] == e2e.integration_id)["appointment_lock"])


@pytest.fixture
def seeded_lock(e2e: E2E) -> Iterator[bool]:
    """The appointment lock as seeded; put back after the test, whatever it switched."""
    seeded = appointment_lock(e2e)
    try:
        yield seeded
    finally:
        e2e.stack.set_integration(e2e.integration_id, appointment_lock=seeded)


# ---- 20 adviser changes in Outlook, made while no streaming task ran -----------------------------------------------


@dataclass
class Meeting:
    """An adviser's own meeting, as the test expects Outlook to show it."""

    who: str
    item_id: str
    subject: str
    start: datetime
    minutes: int
    status: str = "Busy"
    private: bool = False
    deleted: bool = False

    @property
    def blocks(self) -> bool:
        return not self.deleted and self.status != "Free"

    @property
    def block(self) -> tuple[datetime, datetime, str]:
        """The JRNI block a user should see for it: its time, and its subject unless it is private."""
        return (
            self.start,
            self.start + timedelta(minutes=self.minutes),
            PRIVATE_TITLE if self.private else self.subject,
        )


def expected_blocks(meetings: list[Meeting], who: str) -> list[tuple[datetime, datetime, str]]:
    return sorted(m.block for m in meetings if m.who == who and m.blocks)


def seen_blocks(e2e: E2E, who: str) -> list[tuple[datetime, datetime, str]]:
    return sorted((b.start, b.end, b.title) for b in e2e.blocks(who))


def outlook_changed_while_streaming_was_stopped(e2e: E2E, outage: Outage) -> list[Meeting]:
    """Four meetings per adviser blocked as usual; then, with the streaming task stopped, 20 changes in their
    calendars (6 meetings made, 5 moved, 3 deleted, 3 turned Free, 3 made private; in an order and on meetings picked
    with a fixed seed), checked not to have reached JRNI; the meetings as they are now."""
    rng = random.Random(20)
    day = e2e.day()
    # Start times on the quarter hour, 08:00 … 17:45, each used at most once per adviser.
    free_starts = {
        who: [day.replace(hour=8) + timedelta(minutes=15 * n) for n in range(40)] for who in ADVISERS
    }
    for starts in free_starts.values():
        rng.shuffle(starts)
    numbers = iter(range(1, 100))

    def made(who: str, **fields: Any) -> Meeting:
        start, minutes = free_starts[who].pop(), rng.choice((30, 45, 60))
        subject = f"{NAME[who].split()[0]}'s meeting {next(numbers)}"
        item = e2e.meeting(MAILBOX[who], start, minutes, subject=subject, **fields)
        return Meeting(who, str(item["id"]), subject, start, minutes)

    meetings = [made(who) for who in ADVISERS for _ in range(4)]
    for who in ADVISERS:
        e2e.wait_blocks(
            who, [(s, e) for s, e, _ in expected_blocks(meetings, who)], "the meetings made before"
        )

    outage.begin()
    before = jrni_writes(e2e.jrni_stats())
    blocks_before = {who: seen_blocks(e2e, who) for who in ADVISERS}

    changes = ["create"] * 6 + ["move"] * 5 + ["delete"] * 3 + ["free"] * 3 + ["private"] * 3
    rng.shuffle(changes)
    for change in changes:
        live = [m for m in meetings if not m.deleted]
        if change == "create":
            meetings.append(made(rng.choice(ADVISERS)))
        elif change == "move":
            meeting = rng.choice(live)
            free_starts[meeting.who].insert(0, meeting.start)
            meeting.start, meeting.minutes = free_starts[meeting.who].pop(), rng.choice((30, 45, 60, 90))
            e2e.move(MAILBOX[meeting.who], meeting.item_id, meeting.start, meeting.minutes)
        elif change == "delete":
            meeting = rng.choice(live)
            e2e.outlook("DELETE", MAILBOX[meeting.who], meeting.item_id)
            meeting.deleted = True
        elif change == "free":
            meeting = rng.choice([m for m in live if m.status != "Free"])
            e2e.outlook("PATCH", MAILBOX[meeting.who], meeting.item_id, {"legacy_free_busy_status": "Free"})
            meeting.status = "Free"
        else:
            meeting = rng.choice([m for m in live if not m.private])
            e2e.outlook("PATCH", MAILBOX[meeting.who], meeting.item_id, {"sensitivity": "Private"})
            meeting.private = True
    assert len(changes) == 20

    # Nothing reached JRNI: with a streaming task running, the first of these changes would show in well under a
    # second. Watched for a bounded while, then JRNI's own request counts say no block was written at all.
    e2e.stays(
        lambda: {who: seen_blocks(e2e, who) for who in ADVISERS} == blocks_before and not outage.running(),
        "JRNI's blocks as before the outage, and no streaming task",
    )
    assert minus(jrni_writes(e2e.jrni_stats()), before) == {}, "something reached JRNI before the reconcile"
    for who in ADVISERS:  # and the outage did change what JRNI should show
        assert expected_blocks(meetings, who) != blocks_before[who]
    return meetings


def jrni_matches_outlook(e2e: E2E, meetings: list[Meeting]) -> None:
    """Exactly one block per blocking meeting, at its time, with its title; none for Free or deleted ones; nothing
    else calsync made in JRNI."""
    for who in ADVISERS:
        want = expected_blocks(meetings, who)
        e2e.wait_blocks(who, [(s, e) for s, e, _ in want], f"{NAME[who]}'s blocks matching Outlook")
        assert seen_blocks(e2e, who) == want, f"{NAME[who]}'s blocks have the wrong titles"
    assert {b.who for b in e2e.blocks()} <= set(ADVISERS), "blocks for calendars nobody changed"


def test_twenty_outlook_changes_made_while_the_streaming_task_was_stopped_are_all_in_jrni_after_one_reconcile(
    e2e: E2E, outage: Outage
) -> None:
    meetings = outlook_changed_while_streaming_was_stopped(e2e, outage)
    assert len([m for m in meetings if m.blocks]) >= 8

    run = reconcile(e2e)

    assert run["state"] == "done" and run["mappings_done"] == run["mappings_total"]
    jrni_matches_outlook(e2e, meetings)
    assert not outage.running(), "a streaming task ran: the reconcile was not alone in doing this"


def test_a_second_reconcile_after_the_outlook_changes_writes_nothing(e2e: E2E, outage: Outage) -> None:
    meetings = outlook_changed_while_streaming_was_stopped(e2e, outage)
    first = reconcile(e2e)
    assert sum(first["repaired"].values()) > 0
    jrni_matches_outlook(e2e, meetings)
    before = writes(e2e)

    again = reconcile(e2e)

    assert again["state"] == "done"
    assert again["repaired"] == {k: 0 for k in again["repaired"]}
    assert writes(e2e) == before, "the second reconcile wrote to Exchange or JRNI"
    jrni_matches_outlook(e2e, meetings)
    assert not outage.running()


# ---- items calsync wrote for JRNI bookings, changed in Outlook while no streaming task ran -------------------------


def booked_items(e2e: E2E, starts: dict[str, list[datetime]]) -> list[tuple[dict[str, Any], str, str]]:
    """Savings reviews booked in JRNI for each adviser at each start, once calsync has put each in their calendar:
    (booking, adviser, Outlook item id)."""
    made = []
    for who, times in starts.items():
        for start in times:
            booking = e2e.book(start, person=who, service=SAVINGS)
            made.append((booking, who, str(e2e.one_item(MAILBOX[who], e2e.key(booking))["id"])))
    e2e.quiet()
    return made


def as_jrni_has_it(e2e: E2E, booking: dict[str, Any]) -> tuple[datetime, int, bool, bool]:
    now = e2e.booking_now(booking["id"])
    return utc(now["datetime"]), int(now["duration"]), bool(now["is_cancelled"]), bool(now["is_reservation"])


@pytest.mark.parametrize(
    "deep",
    [
        False,
        True,
    ],
    ids=["incremental", "deep"],
)
def test_booking_items_deleted_or_moved_in_outlook_while_streaming_was_stopped_are_put_back_or_followed(
    e2e: E2E, outage: Outage, seeded_lock: bool, deep: bool
) -> None:
    assert seeded_lock is True, "the seed switches the appointment lock on"
    # The integration's first run, before anything is booked (it is deep whatever is asked: it has never read JRNI);
    # from then on a run reads what JRNI changed since, as the schedule's runs do.
    reconcile(e2e)
    day = e2e.day()
    made = booked_items(
        e2e,
        {
            ALICE: [day.replace(hour=9), day.replace(hour=11), day.replace(hour=15)],
            BEN: [day.replace(hour=10), day.replace(hour=13)],
        },
    )
    (deleted_a, _, deleted_a_id), (moved_a, _, moved_a_id), (followed, _, followed_id) = made[:3]
    (deleted_b, _, deleted_b_id), (moved_b, _, moved_b_id) = made[3:]
    deleted = [(deleted_a, ALICE, deleted_a_id), (deleted_b, BEN, deleted_b_id)]
    moved = [(moved_a, ALICE, moved_a_id), (moved_b, BEN, moved_b_id)]

    outage.begin()
    jrni_before = {b["id"]: as_jrni_has_it(e2e, b) for b, _, _ in made}
    jrni_writes_before, ews_before = jrni_writes(e2e.jrni_stats()), e2e.ews_writes()
    for _, who, item_id in deleted:
        e2e.outlook("DELETE", MAILBOX[who], item_id)
    for booking, who, item_id in moved:
        e2e.move(MAILBOX[who], item_id, utc(booking["datetime"]) + timedelta(hours=2), minutes=30)
    e2e.stays(
        lambda: all(not e2e.ours(MAILBOX[who], e2e.key(b)) for b, who, _ in deleted) and not outage.running(),
        "the deleted items not put back while no streaming task runs",
        seconds=1.0,
    )

    run = reconcile(e2e, deep=deep, timeout=15)

    assert run["state"] == "done" and run["mappings_done"] == run["mappings_total"]
    for booking, who, _ in deleted + moved:
        e2e.one_item(
            MAILBOX[who],
            e2e.key(booking),
            lambda item, b=booking: utc(item["start"]) == utc(b["datetime"]),
            f"booking {e2e.key(booking)} shown once in {MAILBOX[who]}, at JRNI's time",
        )
    assert minus(e2e.ews_writes(), ews_before).get("CreateItem", 0) == len(deleted), (
        "each deleted item written again exactly once"
    )
    assert {b["id"]: as_jrni_has_it(e2e, b) for b, _, _ in made} == jrni_before, "JRNI's bookings changed"
    assert minus(jrni_writes(e2e.jrni_stats()), jrni_writes_before) == {}, "the reconcile wrote to JRNI"
    assert e2e.blocks() == [], "a booking's own item never becomes a block"

    # The lock off: a move made in Outlook while no task runs is followed in JRNI by the next reconcile.
    e2e.stack.set_integration(e2e.integration_id, appointment_lock=False)
    assert appointment_lock(e2e) is False
    later = utc(followed["datetime"]) + timedelta(hours=2)
    e2e.move(MAILBOX[ALICE], followed_id, later, minutes=30)

    run = reconcile(e2e, deep=deep, timeout=15)

    assert run["state"] == "done"
    wait_for(lambda: utc(e2e.booking_now(followed["id"])["datetime"]) == later, "the booking moved in JRNI")
    assert e2e.booking_now(followed["id"])["duration"] == 30
    assert not e2e.booking_now(followed["id"])["is_cancelled"]
    e2e.one_item(
        MAILBOX[ALICE],
        e2e.key(followed),
        lambda item: utc(item["start"]) == later,
        "the moved item left at the adviser's time, once",
    )
    assert not outage.running()


# ---- a block removed in JRNI by a JRNI user -------------------------------------------------------------------------


def test_a_block_removed_in_jrni_by_a_jrni_user_is_made_again_by_a_deep_reconcile(e2e: E2E) -> None:
    seeded_hook = f"{e2e.api}/webhooks/jrni/{e2e.integration_id}"
    assert [h.get("url") for h in e2e.jrni("GET", "webhooks")["webhooks"]] == [seeded_hook], "webhooks on"
    start = e2e.day().replace(hour=10)
    window = (start, start + timedelta(hours=1))
    e2e.meeting(MAILBOX[ALICE], start, subject="Quarterly review")
    [block] = e2e.wait_blocks(ALICE, [window])

    # A JRNI user removes the block in JRNI's screens (the webhook for it goes to calsync).
    e2e.jrni("POST", f"bookings/{block.id}/cancel", {"cancel_reason": "removed in JRNI"})
    e2e.wait_blocks(ALICE, [], "the block removed in JRNI")
    e2e.quiet()

    run = reconcile(e2e, deep=True)

    assert run["state"] == "done" and run["deep"] is True
    [again] = e2e.wait_blocks(ALICE, [window], "the meeting's time blocked again", timeout=5)
    assert again.title == "Quarterly review"
    e2e.stays(lambda: len(e2e.blocks(ALICE)) == 1, "one block for the meeting")


# ---- the mass-delete guard ------------------------------------------------------------------------------------------


def test_a_mailbox_emptied_while_streaming_was_stopped_frees_nothing_in_jrni_until_an_operator_forces_it(
    e2e: E2E, outage: Outage
) -> None:
    mailbox = MAILBOX[ALICE]
    day = e2e.day()
    meetings = [e2e.meeting(mailbox, day.replace(hour=8 + n), minutes=30) for n in range(6)]
    windows = [(day.replace(hour=8 + n), day.replace(hour=8 + n, minute=30)) for n in range(6)]
    e2e.wait_blocks(ALICE, windows)
    outage.begin()
    for (
        meeting
    ) in meetings:  # the mailbox emptied (a script gone wrong, a mailbox restored from the wrong backup)
        e2e.outlook("DELETE", mailbox, meeting["id"])

    run = reconcile(e2e)

    assert run["state"] == "done"
    assert sorted(b.window for b in e2e.blocks(ALICE)) == sorted(windows)  # nothing freed
    row = e2e.mapping_row("person", ALICE)
    held = [p for p in row["problems"] if p["state"] == "needs_attention"]
    assert held and "force: true" in held[0]["detail"] and "free 6 of the 6 JRNI blocks" in held[0]["detail"]

    forced = e2e.admin(
        "POST",
        f"integrations/{e2e.integration_id}/mappings/person/{ALICE}/resync",
        {"force": True},
        expect=202,
    )
    path = f"integrations/{e2e.integration_id}/reconcile/{forced['run_id']}"
    wait_for(lambda: e2e.admin("GET", path)["state"] == "done", "the forced resync")
    e2e.wait_blocks(ALICE, [], "Alice's blocks freed once the operator forced it")
