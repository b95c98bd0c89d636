"""Properties of the inbound plan over random mailboxes: what the adviser has in Outlook, what calsync has linked
(right, stale, pending or for items since deleted), and calsync's own items, untouched or changed in Outlook.

- applying a plan, then planning again over what the mailbox shows afterwards (our own writes coming back
  included), plans nothing, and JRNI holds exactly one block per blocking Outlook item;
- calsync's own items at the version calsync wrote never cause a JRNI change or a revert, whatever the order of the
  changes, with the appointment lock and auto-confirm on or off;
- the order in which the changes arrive does not change what is planned;
- no block is ever made for an item of ours, and a private item's subject never reaches JRNI.

The model applies each action as the executors and the outbound path do (a revert or a JRNI move rewrites our item,
which then carries a new version that calsync records)."""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from hypothesis import given, settings
from hypothesis import strategies as st

from calsync.domain import FreeBusy, JrniKey, LinkState, Mapping, ResourceKind, Stamp, TimeWindow
from calsync.domain.inbound import BlockLink, CalendarEvent, MailboxChanges, OurItem
from calsync.engine.inbound import (
    CancelBooking,
    ConfirmReservation,
    CreateBlock,
    InboundAction,
    InboundOptions,
    MoveBlock,
    MoveBooking,
    Notify,
    RemoveBlock,
    RemoveStrayItem,
    RevertItem,
    block_title,
    plan_inbound,
)
from tests.calsync.builders import ALICE, INTEGRATION

NOW = datetime(2025, 7, 1, 8, tzinfo=UTC)
MAPPING = Mapping(INTEGRATION, ResourceKind.PERSON, "11", ALICE)
T = TypeVar("T")
SECRET = "SECRET-"  # in the subject of private items only: it must never reach JRNI
SERIES = ("s1", "s2")
GONE_SERIES = "s-deleted"  # a series deleted as a whole: its master's id is among the removed


def when(day: int, half_hours: int, length: int) -> TimeWindow:
    start = NOW + timedelta(days=day, minutes=30 * half_hours)
    return TimeWindow(start, start + timedelta(minutes=30 * length))


windows = st.builds(
    when,
    day=st.integers(min_value=-3, max_value=92),  # some before the sync window, some after it
    half_hours=st.integers(min_value=0, max_value=20),
    length=st.integers(min_value=0, max_value=6),
)
free_busy = st.sampled_from(list(FreeBusy))


@dataclass
class Adviser:
    """One of the adviser's own items, and what calsync has linked for it."""

    event: CalendarEvent
    link: str  # "none" | "right" | "stale-time" | "stale-title" | "pending"


@st.composite
def adviser_items(draw: st.DrawFn, index: int) -> Adviser:
    private = draw(st.booleans())
    subject = (
        f"{SECRET}{index}" if private else draw(st.sampled_from(["Team meeting", "1:1", "", "  Lunch  "]))
    )
    stamp = draw(
        st.sampled_from(
            [
                None,
                None,
                None,
                Stamp("another-integration", JrniKey("100", "77")),
                Stamp(INTEGRATION, JrniKey("100", f"88{index}")),
            ]
        )
    )
    event = CalendarEvent(
        remote_id=f"m{index}",
        version=f"m{index}-v{draw(st.integers(1, 3))}",
        window=draw(windows),
        free_busy=draw(free_busy),
        subject=subject,
        is_private=private,
        is_cancelled=draw(st.integers(0, 9)) == 0,
        series_id=draw(st.sampled_from([None, None, *SERIES])),
        stamp=stamp,
        has_attendees=draw(st.booleans()),
    )
    ours_orphan = stamp is not None and stamp.integration_id == INTEGRATION
    link = (
        "none"
        if ours_orphan
        else draw(st.sampled_from(["none", "right", "stale-time", "stale-title", "pending"]))
    )
    return Adviser(event, link)


@dataclass
class Ours:
    """An item calsync wrote for a JRNI booking, and what the adviser did to it in Outlook."""

    item: OurItem
    event: CalendarEvent
    deleted: bool


@st.composite
def our_items(draw: st.DrawFn, index: int) -> Ours:
    key = JrniKey("100", str(500 + index))
    expected = draw(windows)
    version = f"o{index}-ours"
    item = OurItem(
        jrni_key=key,
        expected_window=expected,
        expected_free_busy=FreeBusy.BUSY,
        version=draw(st.sampled_from([version, version, None])),
        pre_time_seconds=draw(st.sampled_from([0, 300, 900])),
        post_time_seconds=draw(st.sampled_from([0, 600])),
        is_reservation=draw(st.booleans()),
        is_cancelled=draw(st.integers(0, 5)) == 0,
    )
    touched = draw(st.sampled_from(["untouched", "moved", "free-busy", "invited", "deleted"]))
    event = CalendarEvent(
        remote_id=f"o{index}",
        version=version,
        window=expected,
        free_busy=FreeBusy.BUSY,
        subject="Mortgage advice",
        stamp=Stamp(INTEGRATION, key),
    )
    if touched == "moved":
        event = replace(event, version=f"o{index}-adviser", window=draw(windows))
    elif touched == "free-busy":
        event = replace(event, version=f"o{index}-adviser", free_busy=draw(free_busy))
    elif touched == "invited":
        event = replace(event, version=f"o{index}-adviser", has_attendees=True)
    return Ours(item, event, touched == "deleted")


@dataclass
class Model:
    """The mailbox and calsync's records, changed by each action the way the executors and outbound change them."""

    mailbox: dict[str, CalendarEvent]
    deleted: set[str]
    blocks: dict[str, BlockLink]
    ours: dict[str, OurItem]
    jrni_writes: list[InboundAction] = field(default_factory=list)
    versions: itertools.count[int] = field(default_factory=itertools.count)

    def feed(self, order: list[int]) -> MailboxChanges:
        """Everything the mailbox shows now, in the given order: each item once, the deleted ones as removed."""
        upserts = _permuted(sorted(self.mailbox.values(), key=lambda e: e.remote_id), order)
        removed = _permuted(sorted(self.deleted - set(self.mailbox)), order)
        series = {e.series_id for e in upserts if e.series_id} | {
            b.series_id for b in self.blocks.values() if b.series_id and b.series_id != GONE_SERIES
        }
        return MailboxChanges(ALICE, upserts, removed, _permuted(sorted(series), order))

    def apply(self, actions: list[InboundAction]) -> None:
        for action in actions:
            if isinstance(action, CreateBlock):
                assert action.event.remote_id not in self.blocks, (
                    f"a second block for {action.event.remote_id}"
                )
                n = next(self.versions)
                self.blocks[action.event.remote_id] = BlockLink(
                    INTEGRATION,
                    ALICE,
                    action.event.remote_id,
                    JrniKey("100", f"9{n}"),
                    f"slot-{n}",
                    action.window,
                    action.title,
                    action.event.version,
                    action.event.series_id,
                )
                self.jrni_writes.append(action)
            elif isinstance(action, MoveBlock):
                assert action.link.remote_id in self.blocks
                self.blocks[action.link.remote_id] = replace(
                    action.link,
                    window=action.window,
                    title=action.title,
                    version=action.event.version,
                    state=LinkState.SYNCED,
                )
                self.jrni_writes.append(action)
            elif isinstance(action, RemoveBlock):
                assert self.blocks.pop(action.link.remote_id, None) is not None, "a block removed twice"
                self.jrni_writes.append(action)
            elif isinstance(action, RevertItem):
                self._revert(action)
            elif isinstance(action, MoveBooking):
                remote_id, our = self._our(action.jrni_key)
                # JRNI moves the booking; outbound writes the item again around it, buffers included.
                self.ours[remote_id] = replace(
                    our,
                    expected_window=action.window.widened(
                        timedelta(seconds=our.pre_time_seconds), timedelta(seconds=our.post_time_seconds)
                    ),
                )
                self._rewrite(remote_id)
                self.jrni_writes.append(action)
            elif isinstance(action, CancelBooking):
                remote_id, our = self._our(action.jrni_key)
                self.ours[remote_id] = replace(our, is_cancelled=True)
                self.jrni_writes.append(action)
            elif isinstance(action, ConfirmReservation):
                remote_id, our = self._our(action.jrni_key)
                self.ours[remote_id] = replace(our, is_reservation=False)
                self.jrni_writes.append(action)
            elif isinstance(action, RemoveStrayItem):
                # Outlook: an item of ours no booking owns here is deleted (never a JRNI write).
                assert action.remote_id in self.mailbox and action.remote_id not in self.ours
                del self.mailbox[action.remote_id]
                self.deleted.add(action.remote_id)
            else:
                assert isinstance(action, Notify)

    def _our(self, key: JrniKey) -> tuple[str, OurItem]:
        (found,) = [(remote_id, our) for remote_id, our in self.ours.items() if our.jrni_key == key]
        return found

    def _revert(self, action: RevertItem) -> None:
        remote_id, our = self._our(action.jrni_key)
        if remote_id in self.mailbox:
            assert action.version == self.mailbox[remote_id].version, "a revert of a version not read"
            self._rewrite(remote_id)
            return
        # Deleted in Outlook: written again as a new item, which the link then names.
        again = f"{remote_id}-again"
        del self.ours[remote_id]
        self.ours[again] = our
        self.mailbox[again] = CalendarEvent(
            again,
            "",
            our.expected_window,
            our.expected_free_busy,
            "Mortgage advice",
            stamp=Stamp(INTEGRATION, our.jrni_key),
        )
        self._rewrite(again)

    def _rewrite(self, remote_id: str) -> None:
        """Outbound writes our item as JRNI has it; the new change key is recorded on the link."""
        our = self.ours[remote_id]
        version = f"written-{next(self.versions)}"
        self.mailbox[remote_id] = replace(
            self.mailbox[remote_id],
            window=our.expected_window,
            free_busy=our.expected_free_busy,
            version=version,
        )
        self.ours[remote_id] = replace(our, version=version)


def _permuted(values: list[T], order: list[int]) -> list[T]:
    """``values`` in an order drawn by Hypothesis (``order`` as sort keys, cycled)."""
    if not order:
        return list(values)
    keyed = sorted(range(len(values)), key=lambda i: (order[i % len(order)], i))
    return [values[i] for i in keyed]


@st.composite
def worlds(draw: st.DrawFn) -> Model:
    advisers = [draw(adviser_items(i)) for i in range(draw(st.integers(0, 7)))]
    ours = [draw(our_items(i)) for i in range(draw(st.integers(0, 4)))]
    blocks: dict[str, BlockLink] = {}
    for n, adviser in enumerate(advisers):
        event = adviser.event
        if adviser.link == "none":
            continue
        link = BlockLink(
            INTEGRATION,
            ALICE,
            event.remote_id,
            JrniKey("100", f"70{n}"),
            f"slot-70{n}",
            event.window,
            "Busy (Outlook)" if event.is_private else (event.subject.strip() or "Busy (Outlook)"),
            event.version,
            event.series_id,
        )
        if adviser.link == "stale-time":
            link = replace(link, window=draw(windows))
        elif adviser.link == "stale-title":
            link = replace(link, title="What it was called before")
        elif adviser.link == "pending":
            link = replace(link, jrni_key=None, slot_id="", state=LinkState.PENDING)
        blocks[event.remote_id] = link
    deleted: set[str] = set()
    # Blocks for items deleted since, for occurrences no longer in their series, and for a series deleted whole.
    for n in range(draw(st.integers(0, 3))):
        series = draw(st.sampled_from([None, *SERIES, GONE_SERIES]))
        remote_id = f"gone{n}"
        blocks[remote_id] = BlockLink(
            INTEGRATION,
            ALICE,
            remote_id,
            JrniKey("100", f"60{n}"),
            f"slot-60{n}",
            draw(windows),
            "Old",
            "v1",
            series,
        )
        if series is None:
            deleted.add(remote_id)
        elif series == GONE_SERIES:
            deleted.add(GONE_SERIES)
    mailbox = {a.event.remote_id: a.event for a in advisers}
    for our in ours:
        if our.deleted:
            deleted.add(our.event.remote_id)
        else:
            mailbox[our.event.remote_id] = our.event
    return Model(mailbox, deleted, blocks, {o.event.remote_id: o.item for o in ours})


switches = st.fixed_dictionaries({"appointment_lock": st.booleans(), "auto_confirm": st.booleans()})
orders = st.lists(st.integers(0, 50), max_size=12)


def options(switch: dict[str, bool]) -> InboundOptions:
    return InboundOptions(now=NOW, **switch)


def plan(model: Model, order: list[int], switch: dict[str, bool]) -> list[InboundAction]:
    return plan_inbound(
        model.feed(order), MAPPING, list(model.blocks.values()), dict(model.ours), options(switch)
    )


@settings(max_examples=300, deadline=None)
@given(model=worlds(), switch=switches, first=orders, second=orders)
def test_applying_a_plan_then_planning_again_plans_nothing(
    model: Model, switch: dict[str, bool], first: list[int], second: list[int]
) -> None:
    model.apply(plan(model, first, switch))

    assert plan(model, second, switch) == []
    opts = options(switch)
    blocking = {
        remote_id: event
        for remote_id, event in model.mailbox.items()
        if remote_id not in model.ours
        and (event.stamp is None or event.stamp.integration_id != INTEGRATION)
        and not event.is_cancelled
        and event.free_busy in opts.blocking
        and event.window.overlaps(opts.window)
    }
    assert set(model.blocks) == set(blocking), "JRNI holds one block per blocking Outlook item, and no other"
    for remote_id, link in model.blocks.items():
        assert (link.window, link.title) == (
            blocking[remote_id].window,
            block_title(blocking[remote_id], opts),
        )
        assert link.state is LinkState.SYNCED


@settings(max_examples=300, deadline=None)
@given(model=worlds(), switch=switches, order=orders)
def test_our_own_items_at_the_version_we_wrote_never_change_jrni(
    model: Model, switch: dict[str, bool], order: list[int]
) -> None:
    # Every item of ours is back in the mailbox as we last wrote it — though JRNI may have moved the booking since
    # (outbound has not written it yet) — so nothing about it comes from Outlook.
    for remote_id, our in list(model.ours.items()):
        model.deleted.discard(remote_id)
        written = f"{remote_id}-written"
        model.ours[remote_id] = replace(our, version=written)
        event = model.mailbox.get(remote_id) or CalendarEvent(
            remote_id,
            written,
            our.expected_window,
            our.expected_free_busy,
            stamp=Stamp(INTEGRATION, our.jrni_key),
        )
        model.mailbox[remote_id] = replace(event, version=written)

    actions = plan(model, order, switch)

    ours = {our.jrni_key for our in model.ours.values()}
    about_ours = [a for a in actions if getattr(a, "jrni_key", None) in ours]
    assert about_ours == []


@settings(max_examples=300, deadline=None)
@given(model=worlds(), switch=switches, first=orders, second=orders)
def test_the_order_of_the_changes_does_not_change_the_plan(
    model: Model, switch: dict[str, bool], first: list[int], second: list[int]
) -> None:
    one = Counter(repr(a) for a in plan(model, first, switch))
    other = Counter(repr(a) for a in plan(model, second, switch))

    assert one == other


@settings(max_examples=300, deadline=None)
@given(model=worlds(), switch=switches, order=orders)
def test_no_block_for_an_item_of_ours_and_no_private_subject_in_jrni(
    model: Model, switch: dict[str, bool], order: list[int]
) -> None:
    actions = plan(model, order, switch)

    for action in actions:
        if isinstance(action, CreateBlock | MoveBlock):
            stamp = action.event.stamp
            assert stamp is None or stamp.integration_id != INTEGRATION, f"a block for our item {stamp}"
            assert action.event.remote_id not in model.ours
            assert SECRET not in action.title
        assert SECRET not in repr(getattr(action, "detail", ""))
