"""Reconciliation on the local stack: whatever signal was missed, one reconcile makes Outlook and JRNI agree, and a
reconcile with nothing to repair writes nothing."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from tests.e2e.conftest import ALICE, BEN, E2E, MAILBOX, jrni_writes, utc, wait_for

PRE = timedelta(minutes=15)  # the Mortgage appointment's time before


def reconcile(e2e: E2E, *, deep: bool = False, timeout: float = 30) -> dict[str, Any]:
    """One run of every mapping, asked for through the admin API and followed to its end."""
    started = e2e.admin("POST", f"integrations/{e2e.integration_id}/reconcile", {"deep": deep}, expect=202)
    assert started["state"] == "running"
    path = f"integrations/{e2e.integration_id}/reconcile/{started['run_id']}"
    run: dict[str, Any] = wait_for(
        lambda: (lambda r: r if r["state"] != "running" else None)(e2e.admin("GET", path)),
        "the reconcile run to finish",
        timeout,
    )
    e2e.quiet()  # the bookings it queued for the outbound function, written
    return run


def writes(e2e: E2E) -> dict[str, int]:
    """Every write calsync made to Exchange and to JRNI so far."""
    ews = {op: len(e2e.captured(op)) for op in ("CreateItem", "UpdateItem", "DeleteItem")}
    jrni = {f"JRNI {k}": v for k, v in jrni_writes(e2e.jrni_stats()).items()}
    return {**ews, **jrni}


Booked = dict[str, tuple[str, datetime | None]]  # JRNI key → (adviser, start; None: cancelled)


def outlook_matches_jrni(e2e: E2E, bookings: Booked) -> None:
    """Each live booking exactly once in its adviser's calendar at its time; a cancelled one nowhere."""
    for key, (adviser, start) in bookings.items():
        for person in (ALICE, BEN):
            items = e2e.ours(MAILBOX[person], key)
            if start is not None and person == adviser:
                assert len(items) == 1, f"booking {key} shows {len(items)} times for {person}"
                assert utc(items[0]["start"]) == start - PRE, f"booking {key} at the wrong time"
            else:
                assert not items, f"booking {key} left in {MAILBOX[person]}"


def test_twenty_jrni_changes_made_while_webhooks_were_off_are_all_repaired_by_one_reconcile(e2e: E2E) -> None:
    reconcile(e2e)  # where JRNI's changes are read from (the first run reads everything)
    hooks = e2e.jrni("GET", "webhooks")["webhooks"]
    e2e.jrni("DELETE", "webhooks")
    rng = random.Random(11)
    day = e2e.day()
    bookings: Booked = {}
    ids: dict[str, int] = {}
    for n in range(10):  # 10 made
        start = day.replace(hour=8) + timedelta(minutes=90 * n)
        adviser = (ALICE, BEN)[n % 2]
        made = e2e.book(start, person=adviser)
        bookings[e2e.key(made)] = (adviser, start)
        ids[e2e.key(made)] = made["id"]
    for key in rng.sample(sorted(bookings), 6):  # 6 moved
        adviser, start = bookings[key]
        assert start is not None
        later = start + timedelta(days=1)
        e2e.jrni("PUT", f"bookings/{ids[key]}", {"datetime": later.isoformat()})
        bookings[key] = (adviser, later)
    for key in rng.sample(sorted(bookings), 4):  # 4 cancelled
        e2e.jrni("POST", f"bookings/{ids[key]}/cancel", {"cancel_reason": "changed plans"})
        bookings[key] = (bookings[key][0], None)
    for hook in hooks:
        e2e.jrni("POST", "webhooks", hook)
    assert all(not e2e.ours(MAILBOX[p], key) for key in bookings for p in (ALICE, BEN))

    run = reconcile(e2e)

    assert run["state"] == "done" and run["mappings_done"] == run["mappings_total"]
    assert run["bookings_queued"] == 10
    outlook_matches_jrni(e2e, bookings)

    before = writes(e2e)
    again = reconcile(e2e)
    assert again["repaired"] == {k: 0 for k in again["repaired"]}
    assert writes(e2e) == before  # nothing had drifted: nothing written
