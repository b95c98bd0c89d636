"""The outbound plan as a table: for each case, the booking, what is linked, and the actions expected.

Pure: no network, no clock, no environment. Followed by properties that apply plans to in-memory fakes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calsync.domain import (
    Booking,
    BookingKind,
    BookingStatus,
    EventContent,
    FreeBusy,
    Link,
    LinkState,
    ResourceKind,
    RetryableError,
    SyncOptions,
    UnknownOutcomeError,
)
from calsync.engine import (
    CreateEvent,
    DeleteEvent,
    RecoverEvent,
    SkipUnmapped,
    UpdateEvent,
    desired_content,
    plan_outbound,
)
from calsync.engine.outbound import WRITE_MAY_LAND
from calsync.ports import RemoteRef
from calsync.usecases.booking_executor import Executor
from tests.calsync.builders import ALICE, BOB, DEFAULT_OPTIONS, INTEGRATION, MAPPINGS, ROOM, at, booking
from tests.calsync.fakes import FakeCalendar, FakeLinkStore


def content_of(b: Booking, options: SyncOptions = DEFAULT_OPTIONS):  # type: ignore[no-untyped-def]
    return desired_content(b, INTEGRATION, f"Appointment {b.key.booking_id}", "<p>details</p>", options)


def link(
    b: Booking, mailbox: str, *, state: LinkState = LinkState.SYNCED, fingerprint: str | None = None
) -> Link:
    return Link(
        INTEGRATION,
        b.key,
        mailbox,
        state,
        fingerprint or content_of(b).fingerprint,
        "ews",
        remote_id=None if state is LinkState.PENDING else "item-1",
        version="v1",
    )


def plan(
    b: Booking | None, links: list[Link], options: SyncOptions = DEFAULT_OPTIONS, mirrored: bool = False
) -> list:  # type: ignore[type-arg]
    content = content_of(b, options) if b is not None else None
    return plan_outbound(content, b, MAPPINGS, links, options, mirrored_from_exchange=mirrored)


def summary(actions: list) -> list[tuple[str, str]]:  # type: ignore[type-arg]
    return [(type(a).__name__, getattr(a, "mailbox", None) or f"{a.kind.value}:{a.jrni_id}") for a in actions]


@dataclass(frozen=True)
class Case:
    name: str
    booking: Booking | None
    links: list[Link] = field(default_factory=list)
    expected: list[tuple[str, str]] = field(default_factory=list)
    options: SyncOptions = DEFAULT_OPTIONS
    mirrored: bool = False


MOVED = replace(booking(), window=booking().window.widened(timedelta(hours=-1), timedelta(hours=1)))
CASES = [
    # A new booking appears in its adviser's calendar.
    Case("new booking", booking(), [], [("CreateEvent", ALICE)]),
    # A booking for an adviser in a meeting room shows in both calendars.
    Case("adviser and room", booking(resource="21"), [], [("CreateEvent", ALICE), ("CreateEvent", ROOM)]),
    # An unmapped adviser: nothing written, and the operator is told.
    Case("unmapped adviser", booking(person="99"), [], [("SkipUnmapped", "person:99")]),
    Case(
        "unmapped adviser, mapped room",
        booking(person="99", resource="21"),
        [],
        [("SkipUnmapped", "person:99"), ("CreateEvent", ROOM)],
    ),
    # The same webhook again, or our own write coming back: the item already shows exactly this.
    Case("replay", booking(), [link(booking(), ALICE)], []),
    # Moved in JRNI: the item follows.
    Case("moved", MOVED, [link(booking(), ALICE)], [("UpdateEvent", ALICE)]),
    # Reassigned from Alice to Bob: deleted in the old calendar, created in the new one.
    Case(
        "reassigned",
        booking(person="12"),
        [link(booking(), ALICE)],
        [("CreateEvent", BOB), ("DeleteEvent", ALICE)],
    ),
    # Cancelled, or gone from JRNI altogether: every item goes.
    Case(
        "cancelled",
        booking(status=BookingStatus.CANCELLED),
        [link(booking(), ALICE)],
        [("DeleteEvent", ALICE)],
    ),
    Case("deleted in JRNI", None, [link(booking(), ALICE)], [("DeleteEvent", ALICE)]),
    Case("cancelled, never synced", booking(status=BookingStatus.CANCELLED), [], []),
    # A crash left a pending link: find our stamped item before creating anything.
    Case("pending", booking(), [link(booking(), ALICE, state=LinkState.PENDING)], [("RecoverEvent", ALICE)]),
    # A reservation confirmed: only the free/busy status differs, and that is a change.
    Case(
        "confirmed reservation",
        booking(),
        [
            link(
                booking(),
                ALICE,
                fingerprint=content_of(booking(status=BookingStatus.RESERVATION)).fingerprint,
            )
        ],
        [("UpdateEvent", ALICE)],
    ),
    # JRNI blocks not made by us are pushed as busy items; ours (mirrors of Outlook items) never go back.
    Case("JRNI block", booking(kind=BookingKind.BLOCK), [], [("CreateEvent", ALICE)]),
    Case("block mirrored from Outlook", booking(kind=BookingKind.BLOCK), [], [], mirrored=True),
    Case(
        "blocks not synced",
        booking(kind=BookingKind.BLOCK),
        [],
        [],
        options=SyncOptions(sync_jrni_blocks=False),
    ),
    # The mapping was removed: the item in that mailbox goes.
    Case(
        "mailbox no longer mapped",
        booking(person="99"),
        [link(booking(), ALICE)],
        [("SkipUnmapped", "person:99"), ("DeleteEvent", ALICE)],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_outbound_plan(case: Case) -> None:
    assert summary(plan(case.booking, case.links, case.options, case.mirrored)) == case.expected


def test_reservation_is_tentative_and_confirmed_is_busy() -> None:
    assert content_of(booking(status=BookingStatus.RESERVATION)).free_busy is FreeBusy.TENTATIVE
    assert content_of(booking()).free_busy is FreeBusy.BUSY


def test_buffers_widen_the_item_only_when_the_integration_says_so() -> None:
    buffered = booking(pre=15, post=10)
    assert content_of(buffered).window.start == at(7, 8, 45)
    assert content_of(buffered).window.end == at(7, 10, 10)
    plain = content_of(buffered, SyncOptions(include_buffers=False))
    assert (plain.window.start, plain.window.end) == (at(7, 9), at(7, 10))


def test_blocks_show_as_busy() -> None:
    # Their subject and body come from the templates like any booking's (the defaults' wording for a block is in
    # tests/calsync/test_rendering.py).
    content = content_of(booking(kind=BookingKind.BLOCK, status=BookingStatus.CONFIRMED))
    assert content.free_busy is FreeBusy.BUSY


# ---- properties on fakes -------------------------------------------------------------------------------------------

people = st.sampled_from(["11", "12", "99", None])
rooms = st.sampled_from(["21", None])
statuses = st.sampled_from(list(BookingStatus))
bookings_st = st.builds(
    lambda person, room, status, hour, minutes, pre, post, kind: booking(
        person=person,
        resource=room,
        status=status,
        start=at(7, hour),
        minutes=minutes,
        pre=pre,
        post=post,
        kind=kind,
    ),
    people,
    rooms,
    statuses,
    st.integers(8, 17),
    st.sampled_from([15, 30, 60]),
    st.sampled_from([0, 10]),
    st.sampled_from([0, 5]),
    st.sampled_from(list(BookingKind)),
)


def sync(
    b: Booking | None, calendar: FakeCalendar, store: FakeLinkStore, now: datetime | None = None
) -> None:
    """What the outbound handler does for one message: read links, plan, apply."""
    key = (b or booking()).key
    actions = plan(b, store.links_for(INTEGRATION, key))
    Executor(INTEGRATION, calendar, store, lambda: now or at(1, 0)).apply(actions)


def expected_calendar(b: Booking | None) -> dict[str, list]:  # type: ignore[type-arg]
    """What the calendars must show for the booking's final state, straight from the rules."""
    if b is None or not b.is_active:
        return {}
    by_calendar = {(m.kind, m.jrni_id): m.mailbox for m in MAPPINGS}
    mailboxes = {by_calendar[c] for c in b.calendar_ids() if c in by_calendar}
    return {m: [content_of(b)] for m in sorted(mailboxes)}


@settings(max_examples=150, deadline=None)
@given(first=bookings_st, second=bookings_st)
def test_after_applying_a_plan_planning_again_yields_nothing(first: Booking, second: Booking) -> None:
    calendar, store = FakeCalendar(), FakeLinkStore()
    sync(first, calendar, store)
    sync(second, calendar, store)
    again = [
        a for a in plan(second, store.links_for(INTEGRATION, second.key)) if not isinstance(a, SkipUnmapped)
    ]
    assert again == []
    assert calendar.contents() == expected_calendar(second)


@settings(max_examples=150, deadline=None)
@given(
    states=st.lists(bookings_st, min_size=1, max_size=6),
    seed=st.integers(0, 10_000),
    crashes=st.lists(st.sampled_from(["create_event", "update_event", "delete_event", None]), max_size=6),
)
def test_any_order_of_messages_with_crashes_converges_to_the_final_booking(
    states: list[Booking], seed: int, crashes: list[str | None]
) -> None:
    """JRNI changes a booking several times; messages arrive late, twice, out of order, and some runs crash midway.

    Each message reads the booking as JRNI has it at that moment. Once the queue is drained, the calendars show the
    final booking exactly once in each mailbox it belongs in.
    """
    rng = random.Random(seed)
    calendar, store = FakeCalendar(), FakeLinkStore()
    pending = 0  # messages waiting in the queue (they carry no state: the handler reads JRNI fresh)
    current: Booking | None = None
    crash_plan = list(crashes)
    now = at(1, 0)
    for state in states:
        current = state
        pending += rng.choice([1, 1, 2])  # a webhook, sometimes duplicated
        while pending and rng.random() < 0.5:
            calendar.crash_after = crash_plan.pop() if crash_plan else None
            now += timedelta(seconds=rng.choice([1, 30, 300]))
            try:
                sync(current, calendar, store, now)
                pending -= 1
            except RetryableError:
                pass  # the message stays in the queue and is retried (later, when it asked to be)
    calendar.crash_after = None
    # The queue drains (and reconciliation would run) once things are quiet.
    sync(current, calendar, store, now + WRITE_MAY_LAND)

    assert calendar.contents() == expected_calendar(current)


def test_a_crash_between_the_create_and_the_link_write_does_not_duplicate() -> None:
    calendar, store = FakeCalendar(), FakeLinkStore()
    calendar.crash_after = "create_event"
    with pytest.raises(UnknownOutcomeError):
        sync(booking(), calendar, store)
    assert [lk.state for lk in store.links_for(INTEGRATION, booking().key)] == [LinkState.PENDING]

    sync(booking(), calendar, store)  # the retry finds our stamped item

    assert calendar.contents() == expected_calendar(booking())
    [final] = store.links_for(INTEGRATION, booking().key)
    assert final.state is LinkState.SYNCED and final.remote_id is not None


def test_the_normal_path_costs_one_remote_request_per_created_item() -> None:
    calendar, store = FakeCalendar(), FakeLinkStore()
    sync(booking(resource="21"), calendar, store)
    assert calendar.requests == 2
    sync(booking(resource="21"), calendar, store)  # a replay costs nothing remote
    assert calendar.requests == 2


def test_an_item_deleted_in_outlook_is_written_again_on_the_next_change() -> None:
    calendar, store = FakeCalendar(), FakeLinkStore()
    sync(booking(), calendar, store)
    calendar.mailboxes[ALICE].clear()
    sync(MOVED, calendar, store)
    assert calendar.contents() == expected_calendar(MOVED)


def test_kinds_cover_every_action() -> None:
    kinds = {type(a) for c in CASES for a in plan(c.booking, c.links, c.options, c.mirrored)}
    assert kinds == {CreateEvent, UpdateEvent, DeleteEvent, RecoverEvent, SkipUnmapped}
    assert ResourceKind.PERSON.value == "person"


# ---- at most one item per booking and mailbox, whatever the timing ----------------------------------------------


class HeldCreate(FakeCalendar):
    """Exchange holding the first create: the client hears nothing (UnknownOutcomeError), the item lands later."""

    def __init__(self) -> None:
        super().__init__()
        self.held: list[tuple[str, EventContent]] = []

    def create_event(self, mailbox: str, content: EventContent) -> RemoteRef:
        if not self.held and not self.requests:
            self.requests += 1
            self.held.append((mailbox, content))
            raise UnknownOutcomeError("no answer within 30 s")
        return super().create_event(mailbox, content)

    def land(self) -> None:
        for mailbox, content in self.held:
            super().create_event(mailbox, content)


def sync_at(b: Booking, calendar: FakeCalendar, store: FakeLinkStore, now: datetime) -> None:
    Executor(INTEGRATION, calendar, store, lambda: now).apply(plan(b, store.links_for(INTEGRATION, b.key)))


def test_a_retry_soon_after_an_unanswered_create_looks_again_later_instead_of_writing_a_second_item() -> None:
    calendar, store = HeldCreate(), FakeLinkStore()
    sent = at(1, 9)
    with pytest.raises(UnknownOutcomeError):
        sync_at(booking(), calendar, store, sent)

    with pytest.raises(
        RetryableError
    ) as retry:  # 40 s later: nothing there yet, but the write may still land
        sync_at(booking(), calendar, store, sent + timedelta(seconds=40))
    assert retry.value.delay_seconds == pytest.approx(
        (WRITE_MAY_LAND - timedelta(seconds=40)).total_seconds()
    )
    assert calendar.contents() == {}

    calendar.land()  # at 70 s Exchange carries out the held write
    sync_at(booking(), calendar, store, sent + WRITE_MAY_LAND)
    assert calendar.contents() == expected_calendar(booking())
    [link] = store.links_for(INTEGRATION, booking().key)
    assert link.state is LinkState.SYNCED


def test_once_an_unanswered_create_can_no_longer_land_an_empty_search_means_write_it() -> None:
    calendar, store = HeldCreate(), FakeLinkStore()
    sent = at(1, 9)
    with pytest.raises(UnknownOutcomeError):
        sync_at(booking(), calendar, store, sent)
    calendar.held.clear()  # never carried out

    sync_at(booking(), calendar, store, sent + WRITE_MAY_LAND)
    assert calendar.contents() == expected_calendar(booking())


def test_a_create_exchange_refused_is_written_again_at_once_by_the_retry() -> None:
    calendar, store = FakeCalendar(), FakeLinkStore()
    refused = FakeCalendar.create_event

    def busy(self: FakeCalendar, mailbox: str, content: EventContent) -> RemoteRef:
        self.create_event = lambda m, c: refused(self, m, c)  # type: ignore[method-assign]
        raise RetryableError("server busy", delay_seconds=1)

    calendar.create_event = lambda m, c: busy(calendar, m, c)  # type: ignore[method-assign]
    with pytest.raises(RetryableError):
        sync_at(booking(), calendar, store, at(1, 9))
    [link] = store.links_for(INTEGRATION, booking().key)
    assert link.state is LinkState.PENDING and link.written_at is None  # Exchange said no: nothing can land

    sync_at(booking(), calendar, store, at(1, 9) + timedelta(seconds=2))
    assert calendar.contents() == expected_calendar(booking())


def test_an_update_or_a_cancellation_removes_a_second_item_of_the_booking() -> None:
    calendar, store = FakeCalendar(), FakeLinkStore()
    sync(booking(), calendar, store)
    calendar.create_event(ALICE, content_of(booking()))  # a write that landed after its retry wrote another
    assert len(calendar.mailboxes[ALICE]) == 2

    sync(MOVED, calendar, store)
    assert calendar.contents() == expected_calendar(MOVED)

    calendar.create_event(ALICE, content_of(MOVED))
    sync(replace(MOVED, status=BookingStatus.CANCELLED), calendar, store)
    assert calendar.contents() == {}
