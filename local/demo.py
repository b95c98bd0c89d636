"""``make demo``: the local stack, both directions.

JRNI → Outlook: each step changes something through the JRNI emulator's control plane (which fires webhooks, as JRNI
does), then polls the EWS emulator's mailboxes until the calendars show it.

Outlook → JRNI: each step changes an adviser's calendar as its owner would in Outlook (the EWS emulator's control
plane, which raises the same notifications as EWS), and the streaming task, the inbound queue and the inbound
function carry it to JRNI; the demo polls JRNI's state (its blocks and bookings) until it shows the change, and reads
the events calsync put on the EventBridge bus through a rule → SQS queue on moto.

Every step prints what appeared, changed or disappeared where, and how long it took. Exit 0 when every step arrived;
1, with what was expected, when one did not in time.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

import requests

from local.seed import DEMO_SEED
from local.stack import LocalStack, StackOptions

ZONE = ZoneInfo("Europe/London")  # the demo branch's time zone
BRANCH = 37001
ALICE, BEN, CHLOE, ROOM = 1, 2, 3, 11
MORTGAGE, SAVINGS = 21, 22
MAILBOX = {ALICE: "alice@bank.example.test", BEN: "ben@bank.example.test", ROOM: "room1@bank.example.test"}
WATCHED = (
    "alice@bank.example.test",
    "ben@bank.example.test",
    "room1@bank.example.test",
    "chloe@bank.example.test",
)
KEY_PROPERTY = "CalsyncJrniKey"  # the extended property calsync stamps with "<company>/<booking>"
POLL_SECONDS = 0.02


class StepTimeout(RuntimeError):
    """A change did not show in the calendars within the step's time."""


@dataclass(frozen=True)
class Seen:
    """One of our items in a mailbox, as the demo shows it."""

    subject: str
    start: datetime
    end: datetime
    free_busy: str

    def describe(self) -> str:
        start, end = self.start.astimezone(ZONE), self.end.astimezone(ZONE)
        return f"{self.subject}  {start:%a %d %b %H:%M}-{end:%H:%M}  {self.free_busy}"


Calendars = dict[str, dict[str, Seen]]  # mailbox → JRNI key → item
# mailbox → JRNI key → (start, end, free/busy) it must show, or None: it must be gone.
Expected = dict[str, dict[str, tuple[datetime, datetime, str] | None]]


@dataclass
class Style:
    """ANSI colours on a terminal, plain text otherwise (and when NO_COLOR is set)."""

    enabled: bool

    def paint(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.enabled else text

    @classmethod
    def for_stream(cls, stream: TextIO) -> Style:
        return cls(stream.isatty() and not os.environ.get("NO_COLOR"))


@dataclass
class Demo:
    """The scenario against a running stack."""

    stack: LocalStack
    out: TextIO
    step_timeout: float
    style: Style
    http: requests.Session = field(default_factory=requests.Session)
    calendars: Calendars = field(default_factory=dict)
    timings: list[tuple[str, float]] = field(default_factory=list)

    @property
    def jrni(self) -> str:
        assert self.stack.urls is not None
        return self.stack.urls.jrni

    @property
    def ews(self) -> str:
        assert self.stack.urls is not None
        return self.stack.urls.ews

    # ---------------------------------------------------------------------------------------------- JRNI side

    def jrni_call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """A change made in JRNI's screens (the emulator's control plane)."""
        response = self.http.request(method, f"{self.jrni}/_emulator/{path}", json=body or {}, timeout=30)
        if response.status_code >= 400:
            raise RuntimeError(f"JRNI refused {method} {path}: {response.status_code} {response.text[:300]}")
        result: dict[str, Any] = response.json()
        return result

    # -------------------------------------------------------------------------------------------- Outlook side

    def read_calendars(self) -> Calendars:
        calendars: Calendars = {}
        for mailbox in WATCHED:
            response = self.http.get(f"{self.ews}/_emulator/mailboxes/{mailbox}/items", timeout=30)
            response.raise_for_status()
            items: dict[str, Seen] = {}
            for item in response.json():
                key = next(
                    (
                        p["value"]
                        for p in item.get("extended_properties", [])
                        if p.get("property_name") == KEY_PROPERTY
                    ),
                    None,
                )
                if key is not None:
                    items[str(key)] = Seen(
                        item["subject"],
                        _utc(item["start"]),
                        _utc(item["end"]),
                        item["legacy_free_busy_status"],
                    )
            calendars[mailbox] = items
        return calendars

    def wait_for(self, step: str, change: Callable[[], Any], expect: Callable[[Any], Expected]) -> Any:
        """Make ``change``, then poll the calendars until they show ``expect(what change answered)``; print the
        timeline line. The time is from the change in JRNI to the last calendar showing it."""
        started = time.monotonic()
        result = change()
        expected = expect(result)
        deadline = started + self.step_timeout
        while True:
            now = self.read_calendars()
            missing = _unmet(expected, now)
            if not missing:
                break
            if time.monotonic() > deadline:
                raise StepTimeout(
                    f"step {step!r}: not in Outlook after {self.step_timeout:.0f} s: " + "; ".join(missing)
                )
            time.sleep(POLL_SECONDS)
        took = (time.monotonic() - started) * 1000
        self.timings.append((step, took))
        self.print_step(step, took, _changes(self.calendars, now))
        self.calendars = now
        return result

    # ----------------------------------------------------------------------------------------------- printing

    def print_header(self) -> None:
        line = f"{'#':>2}  {'step':<24} {'took':>8}  {'mailbox':<26} change"
        self.out.write(self.style.paint(line, "1") + "\n")
        self.out.write("-" * 110 + "\n")

    def print_step(self, step: str, took_ms: float, changes: list[tuple[str, str, str]]) -> None:
        number = len(self.timings)
        lead = f"{number:>2}  {step:<24} {took_ms:>5.0f} ms"
        if not changes:
            changes = [("", " ", "(no calendar change)")]
        marks = {"+": "32", "~": "33", "-": "31", " ": "2"}
        for index, (mailbox, mark, text) in enumerate(changes):
            prefix = lead if index == 0 else " " * len(lead)
            self.out.write(f"{prefix}  {mailbox:<26} {self.style.paint(mark + ' ' + text, marks[mark])}\n")
        self.out.flush()

    def note(self, step: str, took_ms: float, text: str) -> None:
        self.timings.append((step, took_ms))
        self.print_step(step, took_ms, [("(admin API status)", " ", text)])


def _utc(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def _unmet(expected: Expected, calendars: Calendars) -> list[str]:
    problems = []
    for mailbox, wanted in expected.items():
        for key, shape in wanted.items():
            seen = calendars.get(mailbox, {}).get(key)
            if shape is None and seen is not None:
                problems.append(f"{mailbox} still shows booking {key}")
            elif shape is not None and (seen is None or (seen.start, seen.end, seen.free_busy) != shape):
                start, end, free_busy = shape
                want = f"{start.astimezone(ZONE):%H:%M}-{end.astimezone(ZONE):%H:%M} {free_busy}"
                problems.append(
                    f"{mailbox} should show booking {key} {want}, shows "
                    + (seen.describe() if seen else "nothing")
                )
    return problems


def _changes(before: Calendars, after: Calendars) -> list[tuple[str, str, str]]:
    """(mailbox, mark, text) for every item that appeared (+), changed (~) or disappeared (-)."""
    lines = []
    for mailbox in WATCHED:
        old, new = before.get(mailbox, {}), after.get(mailbox, {})
        for key in sorted(set(old) | set(new)):
            if key not in old:
                lines.append((mailbox, "+", new[key].describe()))
            elif key not in new:
                lines.append((mailbox, "-", old[key].describe()))
            elif old[key] != new[key]:
                lines.append((mailbox, "~", new[key].describe()))
    return lines


def _at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=ZONE)


def demo_day(today: date) -> date:
    """A weekday a week or so ahead, so every booking is in the future whenever the demo runs."""
    day = today + timedelta(days=7)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def run_scenario(demo: Demo, day: date) -> None:
    """The steps, each waiting until Outlook shows it."""
    pre, post = timedelta(minutes=15), timedelta(minutes=10)  # the Mortgage appointment service's buffers

    def key(answer: dict[str, Any]) -> str:
        return f"{BRANCH}/{answer['id']}"

    def mortgage(start: datetime) -> tuple[datetime, datetime, str]:
        return (start - pre).astimezone(UTC), (start + timedelta(minutes=45) + post).astimezone(UTC), "Busy"

    def review(status: str) -> tuple[datetime, datetime, str]:
        return eleven.astimezone(UTC), (eleven + timedelta(minutes=30)).astimezone(UTC), status

    ten, eleven, two, four, five = _at(day, 10), _at(day, 11), _at(day, 14), _at(day, 16), _at(day, 17)
    booking = demo.wait_for(
        "booking created",
        lambda: demo.jrni_call(
            "POST",
            "bookings",
            {
                "company_id": BRANCH,
                "service_id": MORTGAGE,
                "person_id": ALICE,
                "resource_id": ROOM,
                "datetime": ten.isoformat(),
                "client": {
                    "first_name": "Pat",
                    "last_name": "Jones",
                    "email": "pat.jones@customer.example.test",
                },
            },
        ),
        lambda made: {MAILBOX[ALICE]: {key(made): mortgage(ten)}, MAILBOX[ROOM]: {key(made): mortgage(ten)}},
    )
    mortgage_id = booking["id"]
    demo.wait_for(
        "booking moved",
        lambda: demo.jrni_call("PUT", f"bookings/{mortgage_id}", {"datetime": two.isoformat()}),
        lambda moved: {
            MAILBOX[ALICE]: {key(moved): mortgage(two)},
            MAILBOX[ROOM]: {key(moved): mortgage(two)},
        },
    )
    demo.wait_for(
        "reassigned to Ben",
        lambda: demo.jrni_call("PUT", f"bookings/{mortgage_id}", {"person_id": BEN}),
        lambda moved: {
            MAILBOX[ALICE]: {key(moved): None},
            MAILBOX[BEN]: {key(moved): mortgage(two)},
            MAILBOX[ROOM]: {key(moved): mortgage(two)},
        },
    )
    reservation = demo.wait_for(
        "reservation made",
        lambda: demo.jrni_call(
            "POST",
            "bookings",
            {
                "company_id": BRANCH,
                "service_id": SAVINGS,
                "person_id": ALICE,
                "datetime": eleven.isoformat(),
                "reservation": True,
                "client": {"first_name": "Sam", "last_name": "Lee", "email": "sam.lee@customer.example.test"},
            },
        ),
        lambda made: {MAILBOX[ALICE]: {key(made): review("Tentative")}},
    )
    demo.wait_for(
        "reservation confirmed",
        lambda: demo.jrni_call("POST", f"bookings/{reservation['id']}/confirm"),
        lambda confirmed: {MAILBOX[ALICE]: {key(confirmed): review("Busy")}},
    )
    demo.wait_for(
        "booking cancelled",
        lambda: demo.jrni_call(
            "POST", f"bookings/{mortgage_id}/cancel", {"cancel_reason": "customer rescheduled"}
        ),
        lambda cancelled: {MAILBOX[BEN]: {key(cancelled): None}, MAILBOX[ROOM]: {key(cancelled): None}},
    )
    demo.wait_for(
        "JRNI block (Ben)",
        # booking: true answers the block's status-3 booking, whose id is what calsync stamps on the item.
        lambda: demo.jrni_call(
            "POST",
            "blocks",
            {
                "company_id": BRANCH,
                "person_id": BEN,
                "booking": True,
                "start_time": four.isoformat(),
                "end_time": five.isoformat(),
            },
        ),
        lambda block: {MAILBOX[BEN]: {key(block): (four.astimezone(UTC), five.astimezone(UTC), "Busy")}},
    )
    unmapped_status(demo, day)


def unmapped_status(demo: Demo, day: date) -> None:
    """A booking for Chloe, who is not mapped: nothing in any calendar, and the admin API's status says why."""
    assert demo.stack.urls is not None and demo.stack.seeded is not None
    url = f"{demo.stack.urls.api}/admin/integrations/{demo.stack.seeded.integration_id}/mappings?limit=500"
    started = time.monotonic()
    demo.jrni_call(
        "POST",
        "bookings",
        {
            "company_id": BRANCH,
            "service_id": SAVINGS,
            "person_id": CHLOE,
            "datetime": _at(day, 9).isoformat(),
            "client": {"first_name": "Kim", "last_name": "Park"},
        },
    )
    while True:
        rows = demo.http.get(url, timeout=30).json()["mappings"]
        chloe = next(r for r in rows if r["kind"] == "person" and str(r["jrni_id"]) == str(CHLOE))
        if chloe.get("status") and chloe["status"]["state"] == "skipped":
            break
        if time.monotonic() - started > demo.step_timeout:
            raise StepTimeout(
                f"step 'unmapped adviser': status of Chloe Clark not 'skipped' after "
                f"{demo.step_timeout:.0f} s (is {chloe.get('status')})"
            )
        time.sleep(POLL_SECONDS * 5)
    now = demo.read_calendars()
    if any(now[m] != demo.calendars.get(m, {}) for m in WATCHED):
        raise StepTimeout("step 'unmapped adviser': a calendar changed for a booking nobody is mapped to")
    demo.note(
        "unmapped adviser",
        (time.monotonic() - started) * 1000,
        f"Chloe Clark: skipped - {chloe['status']['detail']}",
    )


def port_if_free(port: int, host: str = "127.0.0.1") -> int:
    """``port`` when nothing listens on it, else 0 (a free one)."""
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return 0
    return port


def summary(demo: Demo, total_seconds: float) -> str:
    ews = demo.http.get(f"{demo.ews}/_emulator/stats", timeout=30).json()
    operations: dict[str, int] = ews.get("operations", {})
    jrni = demo.http.get(f"{demo.jrni}/_emulator/stats", timeout=30).json()
    webhooks = jrni.get("webhooks", {})
    slowest = max(demo.timings, key=lambda t: t[1])
    ops = ", ".join(f"{name} {count}" for name, count in sorted(operations.items(), key=lambda kv: -kv[1]))
    return (
        f"{len(demo.timings)} steps in {total_seconds:.1f} s (slowest: {slowest[0]}, {slowest[1]:.0f} ms)\n"
        f"EWS requests: {sum(operations.values())} ({ops})\n"
        f"JRNI webhooks delivered: {webhooks.get('delivered', 0)}, retried: {webhooks.get('retries', 0)}, "
        f"failed: {webhooks.get('failed', 0)}"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the demo; 0 when every step arrived in Outlook in time."""
    parser = argparse.ArgumentParser(prog="python -m local.demo", description=__doc__)
    parser.add_argument(
        "--step-timeout", type=float, default=30.0, help="seconds a step may take (default 30)"
    )
    parser.add_argument("--latency-ms", type=int, default=0, help="added to every request by both emulators")
    args = parser.parse_args(argv)
    out = sys.stdout
    style = Style.for_stream(out)
    log_path = Path(tempfile.gettempdir()) / "calsync-demo.log"
    began = time.monotonic()
    with log_path.open("w", encoding="utf-8") as log:
        options = StackOptions(
            api_port=port_if_free(8087),
            ews_port=port_if_free(8089),
            jrni_port=port_if_free(8088),
            seed=DEMO_SEED,
            latency_ms=args.latency_ms,
            log_stream=log,
        )
        out.write(
            style.paint("calsync demo", "1") + ": JRNI bookings arriving in Outlook, and Outlook meetings "
            "arriving in JRNI, through the real handlers on the local stack\n"
        )
        out.flush()
        stack = LocalStack(options)
        try:
            urls = stack.start()
            out.write(
                f"stack up in {time.monotonic() - began:.1f} s: API {urls.api}  EWS {urls.ews}  JRNI {urls.jrni}\n"
            )
            day = demo_day(datetime.now(ZONE).date())
            out.write(
                f"branch Example Bank Manchester (Europe/London), bookings on {day:%A %d %B %Y}; "
                "Mortgage appointment: 45 min + 15 min before, 10 min after\n\n"
            )
            demo = Demo(stack, out, args.step_timeout, style)
            demo.print_header()
            scenario_began = time.monotonic()
            run_scenario(demo, day)
            from local.demo_inbound import run_inbound  # it uses this module's helpers

            run_inbound(demo, day)
            from local.demo_reconcile import run_reconcile

            run_reconcile(demo, day)
            out.write("\n" + summary(demo, time.monotonic() - scenario_began) + "\n")
            out.write(style.paint("demo passed", "32;1") + f" in {time.monotonic() - began:.1f} s\n")
            return 0
        except StepTimeout as exc:
            out.write("\n" + style.paint("demo FAILED", "31;1") + f": {exc}\nfunction logs: {log_path}\n")
            return 1
        except Exception as exc:
            out.write(
                "\n" + style.paint("demo FAILED", "31;1") + f": {type(exc).__name__}: {exc}\n"
                f"function logs: {log_path}\n"
            )
            return 1
        finally:
            out.flush()
            stack.stop()


if __name__ == "__main__":
    sys.exit(main())
