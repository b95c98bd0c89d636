"""Our own writes cost Exchange nothing more: a booking's items come back as streaming notifications naming them
with the change keys calsync recorded, and the inbound path reads no mailbox for them (no ``SyncFolderItems``).
Request counts are the EWS emulator's own (``GET /_emulator/stats``)."""

from __future__ import annotations

import time
from datetime import timedelta

from tests.e2e.conftest import ALICE, BEN, E2E, MAILBOX, MAPPED, ROOM, SAVINGS, wait_for

COUNT = 20
HALF_HOUR = timedelta(minutes=30)


def test_bookings_written_to_outlook_cost_one_create_each_and_no_mailbox_read(e2e: E2E) -> None:
    day = e2e.day()
    e2e.quiet()
    inbound = e2e.inbound_queue_url
    # The streaming task watching every mapped mailbox, and the syncs its (re)subscriptions asked for done.
    wait_for(
        lambda: (
            set(e2e.ews_stats()["subscriptions_by_mailbox"]) >= {MAILBOX[s] for s in MAPPED}
            and e2e.ews_stats()["streaming_connections"] >= 1
        ),
        "the mapped mailboxes subscribed",
    )
    time.sleep(1.0)
    wait_for(lambda: e2e.queue_counts(inbound) == (0, 0, 0), "the inbound queue empty before the bookings")
    before = e2e.ews_stats()["operations"]
    keys = []
    for n in range(COUNT):
        staff = (ALICE, BEN, ROOM)[n % 3]
        start = day.replace(hour=7) + HALF_HOUR * (n // 3)  # 30-minute Savings reviews, one calendar each
        booking = e2e.book(
            start,
            person=None if staff == ROOM else staff,
            resource=staff if staff == ROOM else None,
            service=SAVINGS,
            client=f"Client{n} Number{n}",
        )
        keys.append((staff, e2e.key(booking)))

    wait_for(
        lambda: sum(len(e2e.ours(MAILBOX[s], k)) for s, k in keys) == COUNT, "the bookings in Outlook", 60
    )
    e2e.quiet()
    time.sleep(1.0)  # past the streaming task's coalescing interval: every notification has become a message
    wait_for(lambda: e2e.queue_counts(inbound) == (0, 0, 0), "the inbound queue drained")
    after = e2e.ews_stats()["operations"]

    assert after.get("CreateItem", 0) - before.get("CreateItem", 0) == COUNT
    # Every notification named only our own items at the versions we wrote: no mailbox was read for them. (One
    # read is allowed for a resync the streaming task may make meanwhile, e.g. a reopened connection.)
    assert after.get("SyncFolderItems", 0) - before.get("SyncFolderItems", 0) <= 1
