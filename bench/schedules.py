"""Working schedules as busy time in Outlook: what it costs to write them for many advisers, and to follow a change.

    PYTHONPATH=.:shared .venv/bin/python bench/schedules.py [--advisers 100] [--days 90]

The JRNI and EWS emulators run in this process (loopback HTTP); the real pieces write: the schedule read from JRNI by
``JrniBookingSource.schedule_of``, planned by ``engine.schedules``, written by ``EwsScheduleWriter`` through
exchangelib, all driven by ``usecases.schedule_busy.sync_schedule`` as a deep reconcile drives it. Every adviser
works 09:00-17:00 Monday to Thursday (Europe/London), not Friday to Sunday. Three rounds over every adviser: the
first writing (nothing there yet), the same again (nothing changed), and after one Wednesday became a day off in the
shared schedule. The table gives, per round: items in the mailboxes (series and singles) per adviser, EWS requests
and writes per adviser (the EWS emulator's own counts), and the wall time per adviser. Exit 1 when a goal is missed:
at most 4 items per adviser, no write when nothing changed, at most 2 writes per adviser for a one-day change.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import requests

from calsync.adapters.ews.schedules import EwsScheduleWriter
from calsync.adapters.jrni import JrniBookingSource, JrniClient
from calsync.domain import (
    AccessType,
    ExchangeConnection,
    FreeBusy,
    Integration,
    JrniConnection,
    Mapping,
    ResourceKind,
    ScheduleBusy,
    SyncOptions,
    TimeWindow,
)
from calsync.usecases.schedule_busy import sync_schedule
from emulators.common.server import BackgroundServer
from emulators.ews.settings import EmulatorSettings
from emulators.ews.testing import EwsEmulator
from emulators.jrni.app import create_app
from emulators.jrni.settings import JrniSettings

COMPANY = 10
SCHEDULE = 1
WEEK = {
    "1": "0900-1700",
    "2": "0900-1700",
    "3": "0900-1700",
    "4": "0900-1700",
    "5": "None",
    "6": "None",
    "0": "None",
}
SERVICE, PASSWORD = "calsync-svc@bench.example.test", "pass-for-bench"
WRITES = ("CreateItem", "UpdateItem", "DeleteItem")


def _mailbox(n: int) -> str:
    return f"adviser-{n:03d}@bench.example.test"


def _seed(advisers: int) -> dict[str, Any]:
    return {
        "apps": [{"app_id": "bench-app", "app_key": "bench-key"}],
        "companies": [{"id": COMPANY, "name": "Bench Bank", "timezone": "Europe/London", "parent_id": None}],
        "admins": [{"email": "admin@bench.example.test", "password": PASSWORD, "company_id": COMPANY}],
        "schedules": [{"id": SCHEDULE, "company_id": COMPANY, "name": "Mon-Thu", "rules": WEEK}],
        "people": [
            {
                "id": n,
                "company_id": COMPANY,
                "name": f"Adviser {n}",
                "email": _mailbox(n),
                "schedule_id": SCHEDULE,
            }
            for n in range(1, advisers + 1)
        ],
    }


def _operations(ews: EwsEmulator) -> dict[str, int]:
    return dict(ews.control("GET", "stats")["operations"])


def _round(
    ews: EwsEmulator,
    writer: EwsScheduleWriter,
    source: JrniBookingSource,
    integration: Integration,
    mappings: list[Mapping],
    window: TimeWindow,
) -> tuple[float, float, float, float]:
    """(items per adviser, EWS requests per adviser, EWS writes per adviser, ms per adviser) of one round."""
    before = _operations(ews)
    started = time.perf_counter()
    for mapping in mappings:
        sync_schedule(writer, source, integration, mapping, str(COMPANY), [], window)
    took = time.perf_counter() - started
    after = _operations(ews)
    spent = {op: after.get(op, 0) - before.get(op, 0) for op in after}
    items = sum(len(ews.control("GET", f"mailboxes/{m.mailbox}/items")) for m in mappings)
    n = len(mappings)
    return items / n, sum(spent.values()) / n, sum(spent.get(op, 0) for op in WRITES) / n, took * 1000 / n


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--advisers", type=int, default=100)
    parser.add_argument("--days", type=int, default=90)
    args = parser.parse_args()
    failed: list[str] = []
    with (
        BackgroundServer(lambda: create_app(JrniSettings(), None)) as jrni,
        EwsEmulator(EmulatorSettings()) as ews,
    ):
        requests.post(
            f"{jrni.base_url}/_emulator/seed", json=_seed(args.advisers), timeout=30
        ).raise_for_status()
        ews.add_account(SERVICE, PASSWORD)
        for n in range(1, args.advisers + 1):
            ews.add_account(_mailbox(n), PASSWORD)
        ews.control(
            "POST",
            "impersonation",
            {"service_account": SERVICE, "mailboxes": [_mailbox(n) for n in range(1, args.advisers + 1)]},
        )
        integration = Integration(
            id="bench",
            name="Bench Bank",
            jrni=JrniConnection(jrni.base_url, str(COMPANY), "bench/jrni"),
            exchange=ExchangeConnection(ews.ews_url, "bench/exchange", access_type=AccessType.IMPERSONATION),
            webhook_secret_name="bench/webhook",
            options=SyncOptions(schedule_busy=ScheduleBusy(enabled=True, free_busy=FreeBusy.BUSY)),
            test_endpoints=True,
        )
        client = JrniClient(
            integration.jrni,
            {
                "app_id": "bench-app",
                "app_key": "bench-key",
                "email": "admin@bench.example.test",
                "password": PASSWORD,
            },
        )
        source = JrniBookingSource(client)
        writer = EwsScheduleWriter(integration.exchange, {"username": SERVICE, "password": PASSWORD})
        mappings = [
            Mapping("bench", ResourceKind.PERSON, str(n), _mailbox(n)) for n in range(1, args.advisers + 1)
        ]
        now = datetime.now(UTC).replace(microsecond=0)
        window = TimeWindow(now, now + timedelta(days=args.days))
        rows = [("first writing", _round(ews, writer, source, integration, mappings, window))]
        rows.append(("the same again", _round(ews, writer, source, integration, mappings, window)))
        today = date.today()
        off = today + timedelta(days=14 + (2 - today.weekday()) % 7)  # a Wednesday two weeks or more ahead
        requests.put(
            f"{jrni.base_url}/_emulator/schedules/{SCHEDULE}",
            json={"rules": {**WEEK, off.isoformat(): "None"}},
            timeout=10,
        ).raise_for_status()
        rows.append((f"one day off ({off})", _round(ews, writer, source, integration, mappings, window)))
        client.close()
    print(f"{args.advisers} advisers, Mon-Thu 09:00-17:00 (Europe/London), a {args.days}-day window")
    print(
        "| round | items per adviser | EWS requests per adviser | EWS writes per adviser | ms per adviser |"
    )
    print("|---|---:|---:|---:|---:|")
    for name, (items, spent, writes, ms) in rows:
        print(f"| {name} | {items:.2f} | {spent:.2f} | {writes:.2f} | {ms:.1f} |")
    if rows[0][1][0] > 4:
        failed.append(f"{rows[0][1][0]:.2f} items per adviser, over 4")
    if rows[1][1][2] > 0:
        failed.append("writes when nothing changed")
    if rows[2][1][2] > 2 or rows[2][1][2] == 0:
        failed.append(f"{rows[2][1][2]:.2f} writes per adviser for a one-day change (goal: 1 or 2)")
    for problem in failed:
        print(f"FAILED {problem}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
