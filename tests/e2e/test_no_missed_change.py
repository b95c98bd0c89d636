"""No missed change (DESIGN.md §4, ews-notes §4): streaming notifications get lost — the connection drops, the
subscriptions expire, Exchange says it missed events — while advisers keep changing their calendars. calsync must
notice (resubscribe, resync) so that every change still reaches JRNI, and exactly once: at the end JRNI's blocks are
exactly what Outlook shows, one block per blocking meeting at its time, and no meeting was ever blocked twice.

Only calsync's own machinery may bring the changes in: the tests never ask for a sync themselves.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.e2e.conftest import E2E, MAILBOX, MAPPED, NAME, calsync_blocks, wait_for

FAULTS = ("drop_stream", "expire_subscriptions", "missed_events")
RECOVERY_SECONDS = 20.0  # resubscribing and resyncing after a fault; normally about a second


def inject(e2e: E2E, kind: str) -> None:
    e2e.ews_control("POST", "faults", {"operation": "*", "kind": kind, "count": 1})


@pytest.mark.parametrize(
    "faults", [[kind] for kind in FAULTS] + [list(FAULTS)], ids=[*FAULTS, "all_three_mixed"]
)
def test_every_outlook_change_made_while_notifications_are_lost_reaches_jrni_exactly_once(
    e2e: E2E, faults: list[str]
) -> None:
    day = e2e.day()
    live: dict[str, dict[str, Any]] = {}  # Outlook item id → {"who", "start", "minutes"}
    made = 0
    rounds = 3

    def create(who: str, start: datetime, minutes: int = 30) -> None:
        nonlocal made
        item = e2e.meeting(MAILBOX[who], start, minutes=minutes, subject=f"Meeting {made}")
        live[item["id"]] = {"who": who, "start": start, "minutes": minutes}
        made += 1

    for n, who in enumerate(MAPPED * 2):
        create(who, day.replace(hour=7) + timedelta(hours=n))
    for round_ in range(rounds):
        kind = faults[round_ % len(faults)]
        fired = e2e.ews_stats().get("faults_fired", {}).get(kind, 0)
        inject(e2e, kind)
        # While the fault bites: new meetings, moves and deletions across the mailboxes.
        for n, who in enumerate(MAPPED):
            create(who, day.replace(hour=14 + round_) + timedelta(minutes=15 * n), minutes=15)
        movable = sorted(live)[round_::4]
        for item_id in movable[:2]:
            meeting = live[item_id]
            meeting["start"] = meeting["start"] + timedelta(days=1, minutes=30)
            e2e.move(MAILBOX[meeting["who"]], item_id, meeting["start"], meeting["minutes"])
        victim = sorted(live)[-1 - round_]
        e2e.outlook("DELETE", MAILBOX[live.pop(victim)["who"]], victim)
        wait_for(
            lambda k=kind, f=fired: e2e.ews_stats().get("faults_fired", {}).get(k, 0) > f,  # type: ignore[misc]
            f"the {kind} fault fired",
        )

    for who in MAPPED:
        want = [
            (m["start"], m["start"] + timedelta(minutes=m["minutes"]))
            for m in live.values()
            if m["who"] == who
        ]
        e2e.wait_blocks(
            who, want, f"{NAME[who]}'s blocks as Outlook shows them after {faults}", timeout=RECOVERY_SECONDS
        )

    state = e2e.jrni_state()
    blocks = calsync_blocks(state)
    assert len({b.marker for b in blocks}) == len(blocks) == len(live), "one block per meeting, no duplicates"
    ever = calsync_blocks(state, live=False)
    assert len({b.marker for b in ever}) == len(ever) <= made, "a meeting was blocked twice at some point"
