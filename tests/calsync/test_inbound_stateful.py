"""Random interleavings of Outlook edits, appointment-lock switches, JRNI changes and late or repeated deliveries:
once everything is delivered, both calendars agree, no adviser's change is lost, and nothing echoes."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from calsync.domain import BookingStatus, JrniKey, TimeWindow
from calsync.domain.messages import OutboundMessage
from calsync.usecases.sync_booking import sync_booking
from tests.calsync.builders import ALICE, INTEGRATION, at, booking
from tests.calsync.world import World

SLOTS = st.integers(min_value=0, max_value=7)  # 08:00 … 15:00 on one day


def slot(hour: int) -> TimeWindow:
    return TimeWindow(at(7, 8 + hour), at(7, 9 + hour))


class LockAndMoves(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.world = World(appointment_lock=True)
        self.ids = iter(range(700, 10_000))
        # Where each booking must end up in JRNI once everything is delivered; None when two changes raced and either
        # may rightly win (JRNI's move against the adviser's, both in flight).
        self.expected: dict[JrniKey, TimeWindow | None] = {}
        self.webhooks: list[JrniKey] = []  # JRNI's webhooks not delivered yet
        self.outlook_pending: set[JrniKey] = set()  # moved in Outlook, not yet read by calsync
        self.meetings: dict[str, TimeWindow] = {}

    # ---- helpers

    def lock_on(self) -> bool:
        return self.world.integrations.items[INTEGRATION].appointment_lock

    def items(self) -> dict[JrniKey, list[tuple[str, TimeWindow]]]:
        found: dict[JrniKey, list[tuple[str, TimeWindow]]] = {}
        for remote_id, item in self.world.exchange.mailboxes.get(ALICE, {}).items():
            found.setdefault(item.content.stamp.jrni_key, []).append((remote_id, item.content.window))
        return found

    def active(self) -> list[JrniKey]:
        return sorted((k for k, b in self.world.source.bookings.items() if b.is_active), key=str)

    def settle(self) -> None:
        """Deliver everything: JRNI's webhooks (one per booking, as JRNI sends one per change), then the mailbox."""
        for _ in range(6):
            before = (self.world.exchange.writes, len(self.world.writer.writes))
            for key in list(dict.fromkeys(self.webhooks)) + self.active():
                sync_booking(self.world.services.booking, OutboundMessage(INTEGRATION, key, "webhook"))
            self.webhooks.clear()
            self.world.notified()
            self.outlook_pending.clear()
            if (self.world.exchange.writes, len(self.world.writer.writes)) == before:
                return
        raise AssertionError("calsync kept writing after everything was delivered: an echo loop")

    # ---- JRNI

    @rule(hour=SLOTS)
    def jrni_books(self, hour: int) -> None:
        made = booking(str(next(self.ids)), start=slot(hour).start)
        self.world.source.bookings[made.key] = made
        self.webhooks.append(made.key)
        self.expected[made.key] = made.window

    @precondition(lambda self: self.active())
    @rule(data=st.data(), hour=SLOTS)
    def jrni_moves(self, data: st.DataObject, hour: int) -> None:
        key = data.draw(st.sampled_from(self.active()))
        self.world.source.bookings[key] = replace(self.world.source.bookings[key], window=slot(hour))
        self.webhooks.append(key)
        self.expected[key] = None if key in self.outlook_pending else slot(hour)

    @precondition(lambda self: self.active())
    @rule(data=st.data())
    def jrni_cancels(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(self.active()))
        self.world.source.bookings[key] = replace(
            self.world.source.bookings[key], status=BookingStatus.CANCELLED
        )
        self.webhooks.append(key)
        self.expected.pop(key, None)

    @precondition(lambda self: self.webhooks)
    @rule(data=st.data(), again=st.booleans())
    def a_webhook_arrives(self, data: st.DataObject, again: bool) -> None:
        """In any order, and sometimes twice."""
        key = data.draw(st.sampled_from(self.webhooks))
        if not again:
            self.webhooks.remove(key)
        sync_booking(self.world.services.booking, OutboundMessage(INTEGRATION, key, "webhook"))

    # ---- Outlook

    @precondition(lambda self: self.items())
    @rule(data=st.data(), hour=SLOTS)
    def adviser_moves_a_booking(self, data: st.DataObject, hour: int) -> None:
        key = data.draw(st.sampled_from(sorted(self.items(), key=str)))
        [(remote_id, _)] = self.items()[key][:1]
        self.world.exchange.adviser_moves(ALICE, remote_id, slot(hour))
        booked = self.world.source.bookings[key]
        if not booked.is_active:
            return  # cancelled in JRNI; the item is on its way out
        contested = key in self.webhooks or (key in self.expected and self.expected[key] is None)
        if not self.lock_on():
            self.expected[key] = None if contested else slot(hour)
        self.outlook_pending.add(key)

    @precondition(lambda self: self.lock_on() and self.items())
    @rule(data=st.data(), first=SLOTS, second=SLOTS, unlock=st.booleans())
    def adviser_moves_again_while_calsync_answers(
        self, data: st.DataObject, first: int, second: int, unlock: bool
    ) -> None:
        """make demo's steps 17-18 and their kin: an Outlook change (and perhaps the lock switched off) lands between
        calsync reading a move and writing its answer."""
        self.settle()
        if not self.items():
            return
        key = data.draw(st.sampled_from(sorted(self.items(), key=str)))
        [(remote_id, jrni_time)] = self.items()[key]
        self.world.exchange.adviser_moves(ALICE, remote_id, slot(first))
        if slot(first) == jrni_time:
            return  # no change to answer

        def meanwhile() -> None:
            if unlock:
                self.world.lock(False)
            self.world.exchange.adviser_moves(ALICE, remote_id, slot(second))

        self.world.exchange.before_write = meanwhile
        self.world.notified()
        self.world.exchange.before_write = None
        if unlock:
            self.expected[key] = slot(second)

    @rule(name=st.sampled_from(["m1", "m2", "m3"]), hour=SLOTS)
    def adviser_makes_or_moves_a_meeting(self, name: str, hour: int) -> None:
        self.world.exchange.adviser_meeting(ALICE, name, slot(hour))
        self.meetings[name] = slot(hour)

    @precondition(lambda self: self.meetings)
    @rule(data=st.data())
    def adviser_deletes_a_meeting(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(self.meetings)))
        self.world.exchange.adviser_deletes(ALICE, name)
        del self.meetings[name]

    @rule(again=st.booleans())
    def a_notification_arrives(self, again: bool) -> None:
        self.world.notified()
        self.outlook_pending.clear()
        if again:
            self.world.notified()

    @rule()
    def operator_switches_the_lock(self) -> None:
        self.settle()  # a switch made while changes are in flight may rightly apply to them either way
        self.world.lock(not self.lock_on())

    # ---- what must hold

    @invariant()
    def once_delivered_both_sides_agree_and_nothing_echoes(self) -> None:
        self.settle()
        items = self.items()
        jrni = self.world.source.bookings
        assert sorted(items, key=str) == self.active(), "one item per active booking, none for the others"
        for key in self.active():
            [(_, window)] = items[key]
            assert window == jrni[key].window, f"{key}: Outlook and JRNI disagree"
            wanted = self.expected.get(key)
            if wanted is not None:
                assert jrni[key].window == wanted, f"{key}: a change was lost"
            self.expected[key] = jrni[key].window
        blocks = sorted((b["window"].start, b["window"].end) for b in self.world.writer.blocks.values())  # type: ignore[attr-defined]
        assert blocks == sorted((w.start, w.end) for w in self.meetings.values()), (
            "one block per Outlook meeting"
        )
        # Everything delivered once more: not a single write on either side.
        writes = (self.world.exchange.writes, len(self.world.writer.writes))
        for key in list(jrni):
            sync_booking(self.world.services.booking, OutboundMessage(INTEGRATION, key, "again"))
        self.world.notified()
        assert (self.world.exchange.writes, len(self.world.writer.writes)) == writes, "an echo"


LockAndMoves.TestCase.settings = settings(
    max_examples=60, stateful_step_count=20, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
test_lock_and_moves = LockAndMoves.TestCase
