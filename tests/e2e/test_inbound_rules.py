"""The inbound rules end to end: an adviser changes their own calendar in Outlook (the EWS emulator's control plane,
as the mailbox owner); the streaming task notices, the ``inbound`` function reads the change feed and changes JRNI.
The judge is JRNI's own state (``GET /_emulator/state``): which blocks calsync made, where, called what.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.e2e.conftest import (
    ALICE,
    ALL_BLOCKING,
    BEN,
    E2E,
    MAILBOX,
    PRIVATE_TITLE,
    ROOM,
    SAVINGS,
    calsync_blocks,
    minus,
    utc,
    wait_for,
)

HOUR = timedelta(hours=1)


def span(start: datetime, minutes: int = 60) -> tuple[datetime, datetime]:
    return start, start + timedelta(minutes=minutes)


def test_busy_oof_tentative_and_working_elsewhere_each_block_their_time_and_free_blocks_nothing(
    e2e: E2E,
) -> None:
    day = e2e.day()
    starts = {status: day.replace(hour=9 + n) for n, status in enumerate(ALL_BLOCKING)}
    for status, start in starts.items():
        e2e.meeting(MAILBOX[ALICE], start, status=status, subject=f"{status} meeting")
    e2e.meeting(MAILBOX[ALICE], day.replace(hour=15), status="Free", subject="Optional lunch and learn")

    blocks = e2e.wait_blocks(ALICE, [span(start) for start in starts.values()])

    assert {b.start: b.title for b in blocks} == {
        start: f"{status} meeting" for status, start in starts.items()
    }
    # The Free meeting never blocks, however long one waits; nobody else's calendar is touched.
    e2e.stays(lambda: len(e2e.blocks()) == 4, "only the four blocking meetings are blocked in JRNI")


def test_the_blocking_statuses_are_the_ones_the_integration_names(e2e: E2E) -> None:
    e2e.set_blocking(["Busy", "OOF"])
    day = e2e.day()
    starts = {status: day.replace(hour=9 + n) for n, status in enumerate(ALL_BLOCKING)}
    for status, start in starts.items():
        e2e.meeting(MAILBOX[BEN], start, status=status, subject=f"{status} meeting")

    e2e.wait_blocks(BEN, [span(starts["Busy"]), span(starts["OOF"])])
    e2e.stays(
        lambda: len(e2e.blocks(BEN)) == 2, "Tentative and WorkingElsewhere do not block for this integration"
    )


def test_a_meeting_moved_in_outlook_moves_its_block_and_deleting_it_removes_the_block(e2e: E2E) -> None:
    day = e2e.day()
    item = e2e.meeting(MAILBOX[ALICE], day.replace(hour=9), subject="Pipeline review")
    [made] = e2e.wait_blocks(ALICE, [span(day.replace(hour=9))])

    e2e.move(MAILBOX[ALICE], item["id"], day.replace(hour=13, minute=30), minutes=45)
    [moved] = e2e.wait_blocks(ALICE, [span(day.replace(hour=13, minute=30), 45)])
    assert moved.id == made.id and moved.title == "Pipeline review"  # the same block, moved: not a second one

    e2e.outlook("DELETE", MAILBOX[ALICE], item["id"])
    e2e.wait_blocks(ALICE, [])
    # Removed, not merely hidden: JRNI shows the block cancelled, and it was the only one calsync ever made.
    assert [b.id for b in calsync_blocks(e2e.jrni_state(), live=False)] == [made.id]


def test_a_meeting_cancelled_or_turned_free_releases_its_block(e2e: E2E) -> None:
    day = e2e.day()
    cancelled = e2e.meeting(MAILBOX[BEN], day.replace(hour=9), subject="Supplier call")
    freed = e2e.meeting(MAILBOX[BEN], day.replace(hour=11), subject="Focus time")
    e2e.wait_blocks(BEN, [span(day.replace(hour=9)), span(day.replace(hour=11))])

    e2e.outlook("PATCH", MAILBOX[BEN], freed["id"], {"legacy_free_busy_status": "Free"})
    e2e.wait_blocks(BEN, [span(day.replace(hour=9))])

    # The organiser cancels the meeting: Exchange keeps the item, marked cancelled. The control plane cannot do that
    # (Outlook's attendee cannot either), so it is done on the emulator's store, which raises the same notification.
    store = e2e.stack.ews.emulator.store
    e2e.stack.ews.call(lambda: store.update_item(store.find_item(cancelled["id"]), {"is_cancelled": True}))
    e2e.wait_blocks(BEN, [])
    assert e2e.items(MAILBOX[BEN]), "the cancelled meeting is still in Outlook"


def test_a_private_or_confidential_meeting_blocks_with_a_neutral_title_and_its_subject_never_reaches_jrni(
    e2e: E2E,
) -> None:
    day = e2e.day()
    e2e.meeting(MAILBOX[ALICE], day.replace(hour=9), subject="Doctor appointment", sensitivity="Private")
    e2e.meeting(MAILBOX[ROOM], day.replace(hour=10), subject="Redundancy talks", sensitivity="Confidential")

    [alice] = e2e.wait_blocks(ALICE, [span(day.replace(hour=9))])
    [room] = e2e.wait_blocks(ROOM, [span(day.replace(hour=10))])

    assert (alice.title, room.title) == (PRIVATE_TITLE, PRIVATE_TITLE)
    everything = json.dumps(e2e.jrni_state())
    for secret in ("Doctor", "Redundancy"):
        assert secret not in everything, f"{secret!r} reached JRNI"


def test_a_weekly_series_blocks_each_occurrence_in_the_window_with_its_exceptions(e2e: E2E) -> None:
    now = datetime.now(UTC)
    # The series at a time of day twelve hours from now: no occurrence sits near the window's edge (90 days ahead),
    # so which occurrences are inside cannot change while the test runs.
    first = e2e.day() + timedelta(hours=(now.hour + 12) % 24)
    horizon = now + timedelta(days=90)
    series = e2e.meeting(
        MAILBOX[BEN],
        first,
        minutes=30,
        subject="Branch huddle",
        time_zone="UTC",
        recurrence={
            "pattern": "weekly",
            "interval": 1,
            "days_of_week": [f"{first:%A}"],
            "range": {"type": "no_end", "start_date": f"{first:%Y-%m-%d}"},
        },
    )
    starts = [first + timedelta(weeks=n) for n in range(20) if first + timedelta(weeks=n) < horizon]
    assert len(starts) >= 4
    e2e.wait_blocks(BEN, [span(s, 30) for s in starts], "one block per occurrence inside the sync window")

    occurrences = {utc(o["start"]): o for o in e2e.view(MAILBOX[BEN], first - HOUR, starts[3] + HOUR)}
    moved_to = starts[1] + timedelta(days=1, hours=2)
    e2e.outlook(
        "PATCH",
        MAILBOX[BEN],
        occurrences[starts[1]]["id"],
        {"start": moved_to.isoformat(), "end": (moved_to + timedelta(minutes=30)).isoformat()},
    )
    e2e.outlook("DELETE", MAILBOX[BEN], occurrences[starts[2]]["id"])

    expected = [span(s, 30) for s in starts if s not in (starts[1], starts[2])] + [span(moved_to, 30)]
    blocks = e2e.wait_blocks(
        BEN, expected, "the modified occurrence at its new time, the deleted one released"
    )
    assert {b.title for b in blocks} == {"Branch huddle"}
    assert series["id"] and len(blocks) == len(starts) - 1


def test_an_all_day_meeting_blocks_the_whole_day_in_the_mailboxs_time_zone(e2e: E2E) -> None:
    from zoneinfo import ZoneInfo

    london = ZoneInfo("Europe/London")
    day = e2e.day().astimezone(london).date()
    start = datetime(day.year, day.month, day.day, tzinfo=london)
    e2e.meeting(MAILBOX[ALICE], start, minutes=24 * 60, subject="Training day", is_all_day=True, status="OOF")

    [block] = e2e.wait_blocks(ALICE, [(start.astimezone(UTC), (start + timedelta(days=1)).astimezone(UTC))])
    assert block.title == "Training day"


# ---- items calsync wrote for JRNI bookings, edited in Outlook --------------------------------------------------


def booked_item(
    e2e: E2E, start: datetime, *, reservation: bool = False, **extra: Any
) -> tuple[dict[str, Any], str]:
    """A Savings review booked in JRNI for Alice, and its item once calsync has put it in her calendar."""
    booking = e2e.book(start, person=ALICE, service=SAVINGS, reservation=reservation, **extra)
    item = e2e.one_item(MAILBOX[ALICE], e2e.key(booking))
    e2e.quiet()
    return booking, str(item["id"])


def test_with_the_appointment_lock_on_a_booking_moved_or_deleted_in_outlook_is_put_back(e2e: E2E) -> None:
    start = e2e.day().replace(hour=10)
    booking, item_id = booked_item(e2e, start)
    key = e2e.key(booking)

    e2e.move(MAILBOX[ALICE], item_id, start + 2 * HOUR, minutes=30)
    e2e.one_item(
        MAILBOX[ALICE], key, lambda item: utc(item["start"]) == start, "the item back at JRNI's time"
    )
    assert utc(e2e.booking_now(booking["id"])["datetime"]) == start

    e2e.outlook("DELETE", MAILBOX[ALICE], item_id)
    e2e.one_item(MAILBOX[ALICE], key, lambda item: utc(item["start"]) == start, "the deleted item back")
    assert not e2e.booking_now(booking["id"])["is_cancelled"]
    assert e2e.blocks() == [], "a booking's own item never becomes a block"


def test_a_move_made_the_moment_the_lock_goes_off_is_followed_not_put_back(e2e: E2E) -> None:
    """make demo's steps 17 and 18, as fast as a script makes them: moved with the lock on and put back; the lock is
    switched off the moment the item is back, and the adviser moves it again at once. JRNI follows the second move,
    nothing puts it back, and the first move cost exactly one write to Exchange."""
    start = e2e.day().replace(hour=14)
    booking, item_id = booked_item(e2e, start)
    key, later = e2e.key(booking), start + HOUR / 2
    before = e2e.ews_writes()

    e2e.move(MAILBOX[ALICE], item_id, later, minutes=30)
    e2e.one_item(
        MAILBOX[ALICE], key, lambda item: utc(item["start"]) == start, "the item back at JRNI's time"
    )
    e2e.stack.set_integration(e2e.integration_id, appointment_lock=False)
    e2e.move(MAILBOX[ALICE], item_id, later, minutes=30)

    wait_for(
        lambda: utc(e2e.booking_now(booking["id"])["datetime"]) == later, "JRNI following the second move"
    )
    e2e.quiet()
    e2e.stays(
        lambda: (
            utc(e2e.one_item(MAILBOX[ALICE], key)["start"]) == later
            and utc(e2e.booking_now(booking["id"])["datetime"]) == later
        ),
        "both sides at the adviser's time",
    )
    # One revert for the first move; the second is answered in JRNI only, and JRNI's webhook about it rewrites the
    # item once (its body names the new time).
    assert minus(e2e.ews_writes(), before) == {"UpdateItem": 2}


def test_with_the_appointment_lock_off_the_jrni_booking_follows_outlook(e2e: E2E) -> None:
    e2e.stack.set_integration(e2e.integration_id, appointment_lock=False)
    start = e2e.day().replace(hour=10)
    booking, item_id = booked_item(e2e, start)

    e2e.move(MAILBOX[ALICE], item_id, start + 3 * HOUR, minutes=30)
    wait_for(
        lambda: utc(e2e.booking_now(booking["id"])["datetime"]) == start + 3 * HOUR,
        "the booking moved in JRNI",
    )
    assert e2e.booking_now(booking["id"])["duration"] == 30
    e2e.quiet()  # JRNI's webhook for the move has been through outbound (the item already shows it)
    e2e.sync_every_mailbox()

    e2e.outlook("DELETE", MAILBOX[ALICE], e2e.one_item(MAILBOX[ALICE], e2e.key(booking))["id"])
    wait_for(lambda: e2e.booking_now(booking["id"])["is_cancelled"], "the booking cancelled in JRNI")
    e2e.gone(MAILBOX[ALICE], e2e.key(booking))
    assert e2e.blocks() == []


def test_with_the_appointment_lock_off_an_item_deleted_while_jrnis_move_is_on_its_way_cancels_the_booking(
    e2e: E2E,
) -> None:
    """The adviser moves the meeting and deletes it straight after, before JRNI's webhook for the move (calsync's
    own move) has come back through outbound. The pollers are paused to make that order certain."""
    e2e.stack.set_integration(e2e.integration_id, appointment_lock=False)
    start = e2e.day().replace(hour=10)
    booking, item_id = booked_item(e2e, start)
    outbound, inbound = e2e.stack.poller, e2e.stack.inbound_poller
    assert outbound is not None and inbound is not None

    outbound.pause()
    try:
        e2e.move(MAILBOX[ALICE], item_id, start + 3 * HOUR, minutes=30)
        wait_for(
            lambda: utc(e2e.booking_now(booking["id"])["datetime"]) == start + 3 * HOUR, "the booking moved"
        )
        inbound.pause()
        try:
            e2e.outlook("DELETE", MAILBOX[ALICE], item_id)
            outbound.resume()
            e2e.quiet()
        finally:
            inbound.resume()
    finally:
        outbound.resume()

    wait_for(
        lambda: e2e.booking_now(booking["id"])["is_cancelled"], "the booking cancelled in JRNI", timeout=5
    )
    e2e.gone(MAILBOX[ALICE], e2e.key(booking))


def test_a_booking_jrni_refuses_to_move_is_put_back_in_outlook_and_reported(e2e: E2E) -> None:
    e2e.stack.set_integration(e2e.integration_id, appointment_lock=False)
    start = e2e.day().replace(hour=11)
    booking, item_id = booked_item(e2e, start, external=True)  # made outside JRNI: JRNI answers 403 to a move

    e2e.move(MAILBOX[ALICE], item_id, start + HOUR, minutes=30)

    e2e.one_item(
        MAILBOX[ALICE], e2e.key(booking), lambda item: utc(item["start"]) == start, "the item put back"
    )

    def reported() -> list[dict[str, Any]]:
        status = e2e.admin("GET", f"integrations/{e2e.integration_id}/status")
        return [p for p in status["problems"] if p["kind"] == "person" and p["jrni_id"] == ALICE]

    [problem] = wait_for(reported, "the refusal in the integration's status")
    assert str(booking["id"]) in problem["detail"] and problem["state"] == "error"
    assert utc(e2e.booking_now(booking["id"])["datetime"]) == start
    e2e.quiet()
    assert reported(), "the refusal is still reported once everything has settled"


def confirmation_events(e2e: E2E, booking: dict[str, Any]) -> list[str]:
    """Wait until two calsync events about ``booking`` are on the bus; their detail-types."""
    seen: list[str] = []

    def two() -> bool:
        seen.extend(
            event["detail-type"]
            for event in e2e.stack.events()
            if str(event["detail"].get("booking_id")) == str(booking["id"])
        )
        return len(seen) >= 2

    wait_for(two, "two events on the bus")
    return sorted(seen)


def test_a_reservation_moved_in_outlook_is_confirmed_in_jrni_with_two_events(e2e: E2E) -> None:
    start = e2e.day().replace(hour=14)
    reservation, item_id = booked_item(e2e, start, reservation=True)
    e2e.stack.events()

    e2e.move(MAILBOX[ALICE], item_id, start + HOUR, minutes=30)

    wait_for(
        lambda: not e2e.booking_now(reservation["id"])["is_reservation"], "the reservation confirmed in JRNI"
    )
    assert confirmation_events(e2e, reservation) == ["booking.confirmed", "booking.updated"]


def test_a_reservation_given_an_attendee_in_outlook_is_confirmed_in_jrni_with_two_events(e2e: E2E) -> None:
    start = e2e.day().replace(hour=15)
    reservation, item_id = booked_item(e2e, start, reservation=True)
    e2e.stack.events()

    e2e.outlook("PATCH", MAILBOX[ALICE], item_id, {"required_attendees": ["colleague@bank.example.test"]})

    wait_for(
        lambda: not e2e.booking_now(reservation["id"])["is_reservation"], "the reservation confirmed in JRNI"
    )
    assert utc(e2e.booking_now(reservation["id"])["datetime"]) == start  # confirmed where it was
    assert confirmation_events(e2e, reservation) == ["booking.confirmed", "booking.updated"]
