"""The demo's last part: JRNI's webhooks switched off, changes made in JRNI meanwhile (Outlook hears nothing), the
webhooks back, and one reconcile (asked for through the admin API) repairing every one of them."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from local.demo import ALICE, BEN, BRANCH, MAILBOX, MORTGAGE, POLL_SECONDS, StepTimeout, _at
from local.demo_inbound import next_weekday

if TYPE_CHECKING:
    from local.demo import Demo

PRE, LENGTH, POST = (
    timedelta(minutes=15),
    timedelta(minutes=45),
    timedelta(minutes=10),
)  # the Mortgage appointment


def _mortgage(start: datetime) -> tuple[datetime, datetime, str]:
    return (start - PRE).astimezone(UTC), (start + LENGTH + POST).astimezone(UTC), "Busy"


def run_reconcile(demo: Demo, earlier_day: date) -> None:
    """Three JRNI changes while its webhooks are off, then one reconcile."""
    assert demo.stack.seeded is not None and demo.stack.urls is not None
    day = next_weekday(next_weekday(earlier_day))
    nine, eleven, half_past_twelve = _at(day, 9), _at(day, 11), _at(day, 12, 30)
    demo.out.write(
        f"\nMissed webhooks: JRNI's webhooks off, three changes on {day:%A %d %B %Y}, webhooks back, one reconcile\n"
    )
    demo.out.flush()
    hooks = demo.jrni_call("GET", "webhooks")["webhooks"]
    api = demo.stack.urls.api
    integration = demo.stack.seeded.integration_id
    # A first run reads the whole window and sets where JRNI's changes are read from; the one below reads only those.
    finished(demo, request_run(demo, api, integration), api, integration)

    def book(person: int, start: datetime, first: str, last: str) -> dict[str, Any]:
        return demo.jrni_call(
            "POST",
            "bookings",
            {
                "company_id": BRANCH,
                "service_id": MORTGAGE,
                "person_id": person,
                "datetime": start.isoformat(),
                "client": {
                    "first_name": first,
                    "last_name": last,
                    "email": f"{first.lower()}@customer.example.test",
                },
            },
        )

    # Made with the webhooks on, so that Outlook has it before they go.
    kept = demo.wait_for(
        "booking created (Ben)",
        lambda: book(BEN, eleven, "Kim", "Park"),
        lambda made: {MAILBOX[BEN]: {f"{BRANCH}/{made['id']}": _mortgage(eleven)}},
    )
    demo.jrni_call("DELETE", "webhooks")
    before = demo.read_calendars()
    made = book(ALICE, nine, "Lee", "Chan")
    demo.jrni_call("PUT", f"bookings/{kept['id']}", {"datetime": half_past_twelve.isoformat()})
    cancelled = book(ALICE, _at(day, 15), "Ada", "Ng")
    demo.jrni_call("POST", f"bookings/{cancelled['id']}/cancel", {"cancel_reason": "changed plans"})
    time.sleep(1.0)  # long enough for a webhook to have arrived, had one been sent
    if demo.read_calendars() != before:
        raise StepTimeout("step 'webhooks off': Outlook changed although JRNI sent no webhook")
    demo.note(
        "JRNI changes, no webhook", 1000, "Alice + 09:00, Ben 11:00 → 12:30: not in Outlook (no webhook)"
    )

    api = demo.stack.urls.api
    integration = demo.stack.seeded.integration_id

    def reconcile() -> dict[str, Any]:
        for hook in hooks:
            demo.jrni_call("POST", "webhooks", hook)
        return request_run(demo, api, integration)

    run = demo.wait_for(
        "one reconcile",
        reconcile,
        lambda _: {
            MAILBOX[ALICE]: {f"{BRANCH}/{made['id']}": _mortgage(nine)},
            MAILBOX[BEN]: {f"{BRANCH}/{kept['id']}": _mortgage(half_past_twelve)},
        },
    )
    state = finished(demo, run, api, integration)
    demo.note(
        "reconcile run",
        0,
        f"{state['state']}: {state['mappings_done']}/{state['mappings_total']} mappings, "
        f"{state['bookings_queued']} bookings JRNI changed since the last run (and in the minute before) read "
        "again; those Outlook already showed changed nothing",
    )


def request_run(demo: Demo, api: str, integration: str) -> dict[str, Any]:
    """POST /admin/integrations/{id}/reconcile: the run's first answer."""
    answer = demo.http.post(
        f"{api}/admin/integrations/{integration}/reconcile", json={"deep": False}, timeout=30
    )
    if answer.status_code != 202:
        raise StepTimeout(
            f"step 'reconcile': the admin API answered {answer.status_code}: {answer.text[:300]}"
        )
    run: dict[str, Any] = answer.json()
    return run


def finished(demo: Demo, run: dict[str, Any], api: str, integration: str) -> dict[str, Any]:
    """The run, once it is no longer running."""
    path = f"{api}/admin/integrations/{integration}/reconcile/{run['run_id']}"
    deadline = time.monotonic() + demo.step_timeout
    while (state := demo.http.get(path, timeout=30).json())["state"] == "running":
        if time.monotonic() > deadline:
            raise StepTimeout("step 'reconcile': the run did not finish")
        time.sleep(POLL_SECONDS)
    if state["state"] != "done":
        raise StepTimeout(f"step 'reconcile': the run ended in {state['state']}: {state.get('error', '')}")
    done: dict[str, Any] = state
    return done
