"""No echo (DESIGN.md §5.3): calsync's own writes coming back through the other side's change feed cause no write.

JRNI → Outlook: 50 bookings made in JRNI become 50 Outlook items, and the inbound path, which is woken for every one
of them, writes nothing to JRNI. Outlook → JRNI: 50 meetings made in Outlook become 50 JRNI blocks, and the outbound
path, which JRNI's webhooks wake for every block, writes nothing to Exchange. Request counts are the emulators' own.
"""

from __future__ import annotations

from datetime import timedelta

from tests.e2e.conftest import ALICE, BEN, E2E, MAILBOX, MAPPED, ROOM, SAVINGS, jrni_writes, minus, wait_for

COUNT = 50
HALF_HOUR = timedelta(minutes=30)


def test_fifty_bookings_made_in_jrni_reach_outlook_and_the_inbound_path_writes_nothing_to_jrni(
    e2e: E2E,
) -> None:
    day = e2e.day()
    before = jrni_writes(e2e.jrni_stats())
    ews_before = e2e.ews_writes()
    who = [(ALICE, BEN, ROOM)[n % 3] for n in range(COUNT)]
    keys = []
    for n, staff in enumerate(who):
        start = day.replace(hour=7) + HALF_HOUR * (
            n // 3
        )  # 30-minute Savings reviews, back to back, no buffers
        booking = e2e.book(
            start,
            person=None if staff == ROOM else staff,
            resource=staff if staff == ROOM else None,
            service=SAVINGS,
            client=f"Client{n} Number{n}",
        )
        keys.append((staff, e2e.key(booking)))

    def all_there() -> bool:
        return sum(len(e2e.ours(MAILBOX[staff], key)) for staff, key in keys) == COUNT

    wait_for(all_there, "the 50 bookings in Outlook", timeout=60)
    e2e.quiet()
    e2e.sync_every_mailbox(timeout=30)  # every mailbox read again after the last of calsync's own writes

    assert e2e.ews_writes()["CreateItem"] - ews_before["CreateItem"] == COUNT
    assert minus(jrni_writes(e2e.jrni_stats()), before) == {}, "the inbound path wrote to JRNI"
    assert e2e.blocks() == []


def test_fifty_meetings_made_in_outlook_become_fifty_blocks_and_the_outbound_path_writes_nothing_to_exchange(
    e2e: E2E,
) -> None:
    day = e2e.day()
    ews_before = e2e.ews_writes()
    expected: dict[str, list[tuple[object, object]]] = {staff: [] for staff in MAPPED}
    for n in range(COUNT):
        staff = MAPPED[n % 3]
        start = day.replace(hour=7) + HALF_HOUR * (n // 3)
        e2e.meeting(MAILBOX[staff], start, minutes=30, subject=f"Meeting {n}")
        expected[staff].append((start, start + HALF_HOUR))

    for staff, windows in expected.items():
        e2e.wait_blocks(staff, windows, timeout=30)  # type: ignore[arg-type]
    e2e.quiet()  # JRNI's webhooks for the 50 blocks delivered, and the outbound queue empty
    e2e.sync_every_mailbox()

    assert e2e.ews_writes() == ews_before, "the outbound path pushed calsync's own blocks back to Exchange"
    assert sum(1 for _ in e2e.blocks()) == COUNT
