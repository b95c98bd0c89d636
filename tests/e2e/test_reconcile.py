"""Reconciliation on the local stack: whatever signal was missed, one reconcile makes Outlook and JRNI agree, and a
reconcile with nothing to repair writes nothing."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.e2e.conftest import (
    ALICE,
    BEN,
    CHLOE,
    E2E,
    KEY_PROPERTY,
    MAILBOX,
    jrni_writes,
    stamp_of,
    utc,
    wait_for,
)

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


def test_mapping_a_staff_member_backfills_their_50_bookings_and_20_outlook_meetings_at_once(
    e2e: E2E, request: pytest.FixtureRequest
) -> None:
    days = [e2e.day() for _ in range(10)]  # days no other test books on
    keys = []
    for n in range(50):  # Chloe is not mapped yet: JRNI's webhooks for these change nothing
        day, slot = divmod(n, 5)
        keys.append(e2e.key(e2e.book(days[day].replace(hour=8) + timedelta(minutes=90 * slot), person=CHLOE)))
    meetings = [
        e2e.meeting(MAILBOX[CHLOE], days[n % 10].replace(hour=17, minute=30 * (n // 10)), minutes=25)
        for n in range(20)
    ]
    e2e.quiet()
    request.addfinalizer(
        lambda: e2e.admin("DELETE", f"integrations/{e2e.integration_id}/mappings/person/{CHLOE}", expect=204)
    )
    progress: list[dict[str, Any]] = []

    def mine() -> list[Any]:  # this integration's blocks (another test maps Chloe in a second integration)
        return [b for b in e2e.blocks(CHLOE) if e2e.integration_id in b.marker]

    def watch() -> None:  # what the operator sees while it runs
        row = next(
            r
            for r in e2e.admin("GET", f"integrations/{e2e.integration_id}/status")["reconcile"]
            if r["jrni_id"] == CHLOE
        )
        if row["backfill"]:
            progress.append(row["backfill"])

    mapped = e2e.admin(
        "PUT", f"integrations/{e2e.integration_id}/mappings/person/{CHLOE}", {"mailbox": MAILBOX[CHLOE]}
    )
    assert mapped["backfill"]["run_id"]

    def complete() -> bool:
        watch()
        ours = [item for item in e2e.items(MAILBOX[CHLOE]) if stamp_of(item, KEY_PROPERTY)]
        return len(ours) >= 50 and len(mine()) >= 20

    wait_for(complete, "Chloe's 50 bookings in Outlook and her 20 meetings blocked in JRNI", timeout=10)
    e2e.quiet()

    for key in keys:
        assert len(e2e.ours(MAILBOX[CHLOE], key)) == 1, f"booking {key} not exactly once"
    assert sorted(b.window for b in mine()) == sorted((utc(m["start"]), utc(m["end"])) for m in meetings)
    run_path = f"integrations/{e2e.integration_id}/reconcile/{mapped['backfill']['run_id']}"
    run = wait_for(
        lambda: (lambda r: r if r["state"] == "done" else None)(e2e.admin("GET", run_path)), "the run"
    )
    assert run["repaired"]["created"] == 50 and run["repaired"]["blocked"] == 20
    assert any(p["total"] == 50 for p in progress), progress  # the status showed the backfill under way
    creates = len(e2e.captured("CreateItem"))
    assert creates <= 2, (
        f"{creates} CreateItem requests for 50 items"
    )  # one batch of up to 100 (and none again)
