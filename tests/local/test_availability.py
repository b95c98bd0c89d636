"""The merged availability view on the local stack (the real functions, moto, both emulators): one day of Alice's
at the demo bank, with a JRNI booking, an Outlook meeting, a private Outlook item and her working schedule (09:00-17:00
Monday to Thursday, the time outside it written into Outlook as busy); through the admin API and the CLI."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests

from local.stack import LocalStack
from tests.cli.conftest import calsync
from tests.local.scheduled import OUTSIDE, WEEK, scheduled_stack

LONDON = ZoneInfo("Europe/London")
ALICE = "alice@bank.example.test"
SERVICE = "calsync-svc@bank.example.test"
# A Monday at least three days ahead.
DAY = date.today() + timedelta(days=3 + (0 - (date.today() + timedelta(days=3)).weekday()) % 7)


def local(hour: int, minute: int = 0) -> datetime:
    return datetime(DAY.year, DAY.month, DAY.day, hour, minute, tzinfo=LONDON)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    for running in scheduled_stack(tmp_path_factory, WEEK):
        _alices_day(running)
        yield running


def _alices_day(stack: LocalStack) -> None:
    """A mortgage appointment booked in JRNI at 10:00 (and written into Outlook by calsync), a branch meeting at 12:00
    and a private appointment at 14:00 made in Outlook; calsync's service account may read Alice's calendar."""
    assert stack.urls is not None
    booked = requests.post(
        f"{stack.urls.jrni}/_emulator/bookings",
        json={
            "company_id": 37001,
            "service_id": 21,  # Mortgage appointment: 45 minutes, 15 before and 10 after
            "person_id": 1,
            "datetime": local(10).isoformat(),
            "client": {"first_name": "Pat", "last_name": "Jones", "email": "pat@customer.example.test"},
        },
        timeout=5,
    )
    assert booked.status_code == 201, booked.text
    for subject, hour, sensitivity in (("Branch meeting", 12, "Normal"), ("Doctor", 14, "Private")):
        made = requests.post(
            f"{stack.urls.ews}/_emulator/mailboxes/{ALICE}/items",
            json={
                "subject": subject,
                "start": local(hour).isoformat(),
                "end": local(hour, 30).isoformat(),
                "legacy_free_busy_status": "Busy",
                "sensitivity": sensitivity,
            },
            timeout=5,
        )
        assert made.status_code == 201, made.text
    granted = requests.post(
        f"{stack.urls.ews}/_emulator/delegates",
        json={"owner": ALICE, "delegate": SERVICE, "permission": "Reviewer"},
        timeout=5,
    )
    assert granted.status_code < 300, granted.text
    # The booking reaches Outlook through JRNI's webhook and the outbound queue
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        items = requests.get(
            f"{stack.urls.ews}/_emulator/mailboxes/{ALICE}/items",
            params={"start": local(0).isoformat(), "end": local(23).isoformat()},
            timeout=5,
        ).json()
        if any(i["subject"].startswith("Mortgage appointment") for i in items):
            return
        time.sleep(0.2)
    raise AssertionError("the booking did not reach Alice's calendar in time")


def _availability(stack: LocalStack, jrni_id: str = "1") -> requests.Response:
    assert stack.urls is not None and stack.seeded is not None
    return requests.get(
        f"{stack.urls.api}/admin/integrations/{stack.seeded.integration_id}/availability",
        params={
            "kind": "person",
            "jrni_id": jrni_id,
            "start": local(0).isoformat(),
            "end": (local(0) + timedelta(days=1)).isoformat(),
        },
        timeout=30,
    )


def _hhmm(text: str) -> str:
    return datetime.fromisoformat(text).astimezone(LONDON).strftime("%H:%M")


def _shown(answer: dict[str, Any]) -> list[tuple[str, str, str, str, str | None]]:
    return [
        (_hhmm(i["start"]), _hhmm(i["end"]), i["source"], i["label"], i["detail"])
        for i in answer["intervals"]
    ]


def test_alices_day_shows_each_interval_with_its_source_and_the_private_item_without_its_subject(
    stack: LocalStack,
) -> None:
    answer = _availability(stack)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["mailbox"], body["zone"]) == (ALICE, "Europe/London")
    shown = _shown(body)
    by_source = {
        source: [(a, b, label) for a, b, s, label, _ in shown if s == source]
        for source in {s[2] for s in shown}
    }
    assert by_source["working_hours"] == [("09:00", "17:00", "Working hours")]
    assert by_source["jrni_booking"] == [("10:00", "10:45", "Mortgage appointment: Pat Jones")]
    outlook = [(a, b, label, detail) for a, b, s, label, detail in shown if s == "outlook"]
    # calsync's item for the booking (with its buffers), the meeting, the private item, and the time outside the
    # working hours before and after them
    # (the weekend's, begun on Thursday at 17:00: an Outlook item is shown whole)
    assert outlook[0] == ("17:00", "09:00", OUTSIDE, "written by calsync (outside working hours)")
    assert datetime.fromisoformat(body["intervals"][0]["start"]) < local(0)
    assert outlook[1][:2] == ("09:45", "10:55") and outlook[1][3].startswith(
        "written by calsync (JRNI booking "
    )
    assert outlook[2] == ("12:00", "12:30", "Branch meeting", None)
    assert outlook[3] == (
        "14:00",
        "14:30",
        "Private appointment",
        "private in Outlook: its subject is not shown",
    )
    assert outlook[4][:3] == ("17:00", "09:00", OUTSIDE)
    assert "Doctor" not in answer.text
    # Sorted by start
    starts = [i["start"] for i in body["intervals"]]
    assert starts == sorted(starts, key=datetime.fromisoformat)


def test_an_unmapped_staff_member_is_a_404(stack: LocalStack) -> None:
    answer = _availability(stack, jrni_id="3")  # Chloe: known to JRNI, not mapped
    assert answer.status_code == 404 and "person 3 is not mapped" in answer.json()["message"]


def test_the_cli_prints_the_day_as_a_timeline_in_the_companys_zone(stack: LocalStack) -> None:
    assert stack.urls is not None
    shown = calsync("--api", stack.urls.api, "availability", "person", "1", "--day", DAY.isoformat())
    assert shown.exit_code == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == f"person 1 → {ALICE}, {DAY.isoformat()} (Europe/London)"
    assert "09:00-17:00 working_hours Working hours" in lines
    assert "10:00-10:45 jrni_booking Mortgage appointment: Pat Jones (JRNI booking " in "\n".join(lines)
    assert "12:00-12:30 outlook Branch meeting" in lines
    assert "14:00-14:30 outlook Private appointment (private in Outlook: its subject is not shown)" in lines

    as_json = calsync(
        "--api", stack.urls.api, "--json", "availability", "person", "1", "--day", DAY.isoformat()
    )
    assert as_json.exit_code == 0, as_json.stderr
    assert json.loads(as_json.stdout)["intervals"] == _availability(stack).json()["intervals"]

    unmapped = calsync("--api", stack.urls.api, "availability", "person", "3", "--day", DAY.isoformat())
    assert unmapped.exit_code == 3
    assert "person 3 is not mapped" in unmapped.stderr
