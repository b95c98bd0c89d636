"""``make demo``, second half: Outlook → JRNI.

Advisers change their own calendars as they would in Outlook (the EWS emulator's control plane, as the mailbox
owner); the streaming task notices, the inbound function applies the change to JRNI. Each step polls JRNI's state
(``GET /_emulator/state``: blocks and bookings) until it shows the change, or, for what must *not* reach JRNI, watches
it for a bounded while. Lines are printed in the same timeline as the first half.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from local.demo import ALICE, BEN, BRANCH, MAILBOX, POLL_SECONDS, SAVINGS, ZONE, StepTimeout, _at, _utc

if TYPE_CHECKING:
    from local.demo import Demo

# How long a change that must not reach JRNI is watched for. A meeting normally reaches JRNI in well under a second.
QUIET_SECONDS = 2.0
WEEKLY_OCCURRENCES = 4


@dataclass(frozen=True)
class Block:
    """A live JRNI block, as the demo shows it."""

    who: str
    start: datetime
    end: datetime
    title: str

    def describe(self) -> str:
        start, end = self.start.astimezone(ZONE), self.end.astimezone(ZONE)
        return f"block {self.title!r}  {start:%a %d %b %H:%M}-{end:%H:%M}  ({self.who})"


Blocks = dict[str, Block]  # JRNI booking id of the block → block


def next_weekday(day: date) -> date:
    day += timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


class Inbound:
    """The Outlook side of the demo, over a running ``Demo``."""

    def __init__(self, demo: Demo) -> None:
        self.demo = demo
        self.blocks: Blocks = self.read_blocks()

    # ---- Outlook, as the mailbox owner -------------------------------------------------------------------------

    def outlook(
        self, method: str, mailbox: str, item_id: str | None = None, body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        path = f"{self.demo.ews}/_emulator/mailboxes/{mailbox}/items"
        if item_id is not None:
            path += "/" + quote(item_id, safe="")
        response = self.demo.http.request(method, path, json=body, timeout=30)
        if response.status_code >= 400:
            raise RuntimeError(
                f"Outlook (EWS emulator) refused {method} {path}: {response.status_code} "
                f"{response.text[:300]}"
            )
        return dict(response.json()) if response.content else {}

    def item(self, mailbox: str, item_id: str) -> dict[str, Any]:
        return self.outlook("GET", mailbox, item_id)

    # ---- JRNI, as its screens show it --------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        response = self.demo.http.get(f"{self.demo.jrni}/_emulator/state", timeout=30)
        response.raise_for_status()
        return dict(response.json())

    def read_blocks(self) -> Blocks:
        """The live blocks calsync made (their private note ends with calsync's marker); blocks staff made in JRNI
        are left out."""
        blocks: Blocks = {}
        for block in self.state().get("blocks", []):
            note = str(block.get("private_note") or "")
            if block.get("is_cancelled") or not any(
                line.startswith("calsync:") for line in note.splitlines()
            ):
                continue
            title = note.splitlines()[0] if not note.startswith("calsync:") else ""
            who = block.get("person_name") or block.get("resource_name") or "?"
            blocks[str(block["id"])] = Block(
                str(who), _utc(block["datetime"]), _utc(block["end_datetime"]), title
            )
        return blocks

    def booking(self, booking_id: int) -> dict[str, Any]:
        booking: dict[str, Any] = next(b for b in self.state()["bookings"] if b["id"] == booking_id)
        return booking

    # ---- steps -------------------------------------------------------------------------------------------------

    def step(
        self,
        name: str,
        change: Callable[[], Any],
        done: Callable[[Any, Blocks], str | None],
        extra: Callable[[Any], list[tuple[str, str, str]]] | None = None,
    ) -> Any:
        """Make ``change`` in Outlook, then poll JRNI until ``done(result, blocks)`` answers None (it answers what is
        still missing otherwise); print the step with the blocks that appeared, moved or went."""
        demo = self.demo
        started = time.monotonic()
        result = change()
        deadline = started + demo.step_timeout
        while True:
            now = self.read_blocks()
            missing = done(result, now)
            if missing is None:
                break
            if time.monotonic() > deadline:
                raise StepTimeout(f"step {name!r}: not in JRNI after {demo.step_timeout:.0f} s: {missing}")
            time.sleep(POLL_SECONDS)
        took = (time.monotonic() - started) * 1000
        lines = _block_changes(self.blocks, now) + (extra(result) if extra else [])
        demo.timings.append((name, took))
        demo.print_step(name, took, lines)
        self.blocks = now
        return result

    def nothing(self, name: str, change: Callable[[], Any], why: str) -> Any:
        """Make ``change`` and watch JRNI for ``QUIET_SECONDS``: no block may appear, move or go."""
        demo = self.demo
        started = time.monotonic()
        result = change()
        while time.monotonic() - started < QUIET_SECONDS:
            now = self.read_blocks()
            if now != self.blocks:
                raise StepTimeout(
                    f"step {name!r}: JRNI changed although it should not ({why}): "
                    + "; ".join(text for _, _, text in _block_changes(self.blocks, now))
                )
            time.sleep(POLL_SECONDS * 5)
        demo.timings.append((name, QUIET_SECONDS * 1000))
        demo.print_step(
            name, QUIET_SECONDS * 1000, [("JRNI", " ", f"no block after {QUIET_SECONDS:g} s ({why})")]
        )
        return result


def _block_changes(before: Blocks, after: Blocks) -> list[tuple[str, str, str]]:
    lines = []
    for key in sorted(set(before) | set(after), key=int):
        if key not in before:
            lines.append(("JRNI", "+", after[key].describe()))
        elif key not in after:
            lines.append(("JRNI", "-", before[key].describe()))
        elif before[key] != after[key]:
            lines.append(("JRNI", "~", after[key].describe()))
    return lines


def _window(start: datetime, minutes: int = 60) -> dict[str, str]:
    return {
        "start": start.astimezone(UTC).isoformat(),
        "end": (start + timedelta(minutes=minutes)).astimezone(UTC).isoformat(),
        "time_zone": "GMT Standard Time",
    }


def _only(blocks: Blocks, expected: list[tuple[datetime, datetime]], who: str) -> str | None:
    """None when ``who``'s blocks are exactly ``expected`` (start, end) pairs; else what differs."""
    have = sorted((b.start, b.end) for b in blocks.values() if b.who == who)
    want = sorted((s.astimezone(UTC), e.astimezone(UTC)) for s, e in expected)
    if have == want:
        return None
    return (
        f"{who}'s blocks are {[f'{s.astimezone(ZONE):%d %b %H:%M}' for s, _ in have]}, "
        f"expected {[f'{s.astimezone(ZONE):%d %b %H:%M}' for s, _ in want]}"
    )


def _events(demo: Demo) -> list[tuple[str, str, str]]:
    """The calsync events on the bus since the last look, as timeline lines."""
    lines = []
    for event in demo.stack.events():
        detail = event.get("detail", {})
        lines.append(
            (
                "EventBridge",
                " ",
                f"{event.get('detail-type')}: booking {detail.get('company_id')}/{detail.get('booking_id')}",
            )
        )
    return lines


def run_inbound(demo: Demo, outbound_day: date) -> None:
    """The Outlook → JRNI steps, on the weekday after the first half's bookings (Alice's calendar)."""
    assert demo.stack.seeded is not None
    inbound = Inbound(demo)
    alice, ben = MAILBOX[ALICE], MAILBOX[BEN]
    day = next_weekday(outbound_day)
    nine, noon, three = _at(day, 9), _at(day, 12), _at(day, 15)
    demo.out.write(f"\nOutlook → JRNI: advisers' own meetings on {day:%A %d %B %Y}, made in Outlook\n")
    demo.out.flush()

    meeting = inbound.step(
        "Outlook meeting (Alice)",
        lambda: inbound.outlook(
            "POST",
            alice,
            body={"subject": "Team meeting", **_window(nine), "legacy_free_busy_status": "Busy"},
        ),
        lambda made, blocks: _only(blocks, [(nine, nine + timedelta(hours=1))], "Alice Adams"),
    )
    inbound.step(
        "meeting moved",
        lambda: inbound.outlook("PATCH", alice, meeting["id"], _window(noon)),
        lambda moved, blocks: _only(blocks, [(noon, noon + timedelta(hours=1))], "Alice Adams"),
    )
    inbound.step(
        "meeting deleted",
        lambda: inbound.outlook("DELETE", alice, meeting["id"]),
        lambda gone, blocks: _only(blocks, [], "Alice Adams"),
    )
    inbound.nothing(
        "Free meeting (Alice)",
        lambda: inbound.outlook(
            "POST",
            alice,
            body={"subject": "Optional lunch and learn", **_window(noon), "legacy_free_busy_status": "Free"},
        ),
        "Free time does not block",
    )

    def neutral(made: dict[str, Any], blocks: Blocks) -> str | None:
        wrong = _only(blocks, [(three, three + timedelta(hours=1))], "Alice Adams")
        if wrong is not None:
            return wrong
        leaked = [b for b in blocks.values() if "Doctor" in b.title]
        return f"the private subject shows in JRNI: {leaked[0].describe()}" if leaked else None

    private = inbound.step(
        "private meeting (Alice)",
        lambda: inbound.outlook(
            "POST",
            alice,
            body={
                "subject": "Doctor appointment",
                **_window(three),
                "legacy_free_busy_status": "Busy",
                "sensitivity": "Private",
            },
        ),
        neutral,
    )
    # Out of the way of the series and the bookings below.
    inbound.step(
        "private deleted",
        lambda: inbound.outlook("DELETE", alice, private["id"]),
        lambda gone, blocks: _only(blocks, [], "Alice Adams"),
    )
    weekly = [
        (_at(day + timedelta(weeks=n), 8), _at(day + timedelta(weeks=n), 8, 30))
        for n in range(WEEKLY_OCCURRENCES)
    ]
    inbound.step(
        f"weekly series x{WEEKLY_OCCURRENCES} (Ben)",
        lambda: inbound.outlook(
            "POST",
            ben,
            body={
                "subject": "Branch huddle",
                **_window(weekly[0][0], 30),
                "legacy_free_busy_status": "Busy",
                "recurrence": {
                    "pattern": "weekly",
                    "interval": 1,
                    "days_of_week": [f"{day:%A}"],
                    "range": {
                        "type": "numbered",
                        "start_date": day.isoformat(),
                        "number_of_occurrences": WEEKLY_OCCURRENCES,
                    },
                },
            },
        ),
        lambda made, blocks: _only(blocks, weekly, "Ben Brown"),
    )
    locked_bookings(demo, inbound, day)


def _ours(demo: Demo, mailbox: str, key: str) -> dict[str, Any] | None:
    """The item calsync wrote for JRNI booking ``key`` in ``mailbox`` (raw JSON), if any."""
    from local.demo import KEY_PROPERTY

    response = demo.http.get(f"{demo.ews}/_emulator/mailboxes/{mailbox}/items", timeout=30)
    response.raise_for_status()
    for item in response.json():
        if any(
            p.get("property_name") == KEY_PROPERTY and str(p.get("value")) == key
            for p in item.get("extended_properties", [])
        ):
            return dict(item)
    return None


def locked_bookings(demo: Demo, inbound: Inbound, day: date) -> None:
    """JRNI bookings moved in Outlook: reverted with the appointment lock on; moved in JRNI with it off; and a
    reservation moved in Outlook is confirmed (auto-confirm)."""
    assert demo.stack.seeded is not None
    alice = MAILBOX[ALICE]
    two, half_two, four, half_four = _at(day, 14), _at(day, 14, 30), _at(day, 16), _at(day, 16, 30)

    def key(answer: dict[str, Any]) -> str:
        return f"{BRANCH}/{answer['id']}"

    def savings(start: datetime, status: str = "Busy") -> tuple[datetime, datetime, str]:
        return start.astimezone(UTC), (start + timedelta(minutes=30)).astimezone(UTC), status

    booking = demo.wait_for(
        "JRNI booking (Alice)",
        lambda: demo.jrni_call(
            "POST",
            "bookings",
            {
                "company_id": BRANCH,
                "service_id": SAVINGS,
                "person_id": ALICE,
                "datetime": two.isoformat(),
                "client": {
                    "first_name": "Alex",
                    "last_name": "Moss",
                    "email": "alex.moss@customer.example.test",
                },
            },
        ),
        lambda made: {alice: {key(made): savings(two)}},
    )
    item = _ours(demo, alice, key(booking))
    assert item is not None
    item_id = str(item["id"])

    def at_jrni_time(moved: dict[str, Any], blocks: Blocks) -> str | None:
        now = _ours(demo, alice, key(booking))
        if now is None:
            return "the booking's Outlook item is gone"
        if _utc(now["start"]) != two.astimezone(UTC):
            return f"the Outlook item is still at {_utc(now['start']).astimezone(ZONE):%H:%M}, JRNI has it at 14:00"
        if _utc(inbound.booking(booking["id"])["datetime"]) != two.astimezone(UTC):
            return "the JRNI booking moved although the appointment lock is on"
        return None

    inbound.step(
        "Outlook move, lock on",
        lambda: inbound.outlook("PATCH", alice, item_id, _window(half_two, 30)),
        at_jrni_time,
        lambda moved: [(alice, "~", "moved to 14:30 in Outlook, put back at 14:00 (JRNI's time)")],
    )

    integration_id = demo.stack.seeded.integration_id
    demo.stack.set_integration(integration_id, appointment_lock=False)
    demo.out.write(f"   (appointment lock switched off: PATCH /admin/integrations/{integration_id})\n")

    def moved_in_jrni(moved: dict[str, Any], blocks: Blocks) -> str | None:
        now = _utc(inbound.booking(booking["id"])["datetime"])
        return (
            None
            if now == half_two.astimezone(UTC)
            else f"JRNI still has the booking at {now.astimezone(ZONE):%H:%M}"
        )

    inbound.step(
        "Outlook move, lock off",
        lambda: inbound.outlook("PATCH", alice, item_id, _window(half_two, 30)),
        moved_in_jrni,
        lambda moved: [("JRNI", "~", f"booking {key(booking)} now at 14:30")],
    )

    reservation = demo.wait_for(
        "JRNI reservation (Alice)",
        lambda: demo.jrni_call(
            "POST",
            "bookings",
            {
                "company_id": BRANCH,
                "service_id": SAVINGS,
                "person_id": ALICE,
                "datetime": four.isoformat(),
                "reservation": True,
                "client": {"first_name": "Jo", "last_name": "Reed", "email": "jo.reed@customer.example.test"},
            },
        ),
        lambda made: {alice: {key(made): savings(four, "Tentative")}},
    )
    held = _ours(demo, alice, key(reservation))
    assert held is not None
    held_id = str(held["id"])
    published: list[tuple[str, str, str]] = []

    def confirmed(moved: dict[str, Any], blocks: Blocks) -> str | None:
        published.extend(_events(demo))
        if inbound.booking(reservation["id"]).get("is_reservation"):
            return "JRNI still shows a reservation"
        kinds = {text.split(":")[0] for _, _, text in published if text.endswith(key(reservation))}
        wanted = {"booking.updated", "booking.confirmed"}
        return None if wanted <= kinds else f"events on the bus: {sorted(kinds)}, expected {sorted(wanted)}"

    inbound.step(
        "reservation moved",
        lambda: inbound.outlook("PATCH", alice, held_id, _window(half_four, 30)),
        confirmed,
        lambda moved: [
            (
                "JRNI",
                "~",
                f"reservation {key(reservation)} confirmed, at "
                f"{_utc(inbound.booking(reservation['id'])['datetime']).astimezone(ZONE):%H:%M}",
            ),
            *published,
        ],
    )
