"""Dead letters on the whole local stack: a mailbox that refuses the service account dead-letters its booking, the
operator sees why in the admin API, has access granted, replays, and the booking arrives and the status is ok; another
integration sees and replays none of it; a message SQS's redrive moved is listed and replayed too."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from typing import Any

from tests.e2e.conftest import ALICE, BEN, CHLOE, E2E, MAILBOX, ROOM, SERVICE_ACCOUNT, utc, wait_for

PRE = timedelta(minutes=15)  # the Mortgage appointment's buffer before
REFUSED = "may not impersonate ben@bank.example.test"


def dead_letters(e2e: E2E) -> list[dict[str, Any]]:
    letters: list[dict[str, Any]] = e2e.admin("GET", f"integrations/{e2e.integration_id}/dead-letters")[
        "dead_letters"
    ]
    return letters


def problems_of(e2e: E2E, jrni_id: str) -> list[dict[str, Any]]:
    status = e2e.admin("GET", f"integrations/{e2e.integration_id}/status")
    return [p for p in status["problems"] if p["jrni_id"] == jrni_id]


def test_a_refusing_mailbox_is_dead_lettered_listed_with_why_then_replayed_once_access_is_granted(
    e2e: E2E,
) -> None:
    # Exchange's administrator has not (yet) given the service account Ben's mailbox.
    allowed = [MAILBOX[m] for m in (ALICE, ROOM, CHLOE)]
    e2e.ews_control("POST", "impersonation", {"service_account": SERVICE_ACCOUNT, "mailboxes": allowed})
    booking = e2e.book(e2e.day().replace(hour=11), person=BEN, client="Kim Park")
    key = e2e.key(booking)

    # The refusal is permanent: dead-lettered at once (not retried for ever), listed with its reason.
    (letter,) = wait_for(lambda: dead_letters(e2e), "the booking's dead letter listed by the admin API")
    e2e.quiet()
    assert letter["queue"] == "outbound"
    assert letter["about"] == {"booking": key}
    assert REFUSED in letter["reason"] and "ApplicationImpersonation" in letter["reason"]
    assert letter["attempts"] == 1 and letter["at"]
    assert e2e.mapping_row("person", BEN)["status"]["state"] == "error"
    assert [p["state"] for p in problems_of(e2e, BEN)] == ["error"]
    assert e2e.items(MAILBOX[BEN]) == []

    # Access granted; the operator replays the integration's dead letters.
    e2e.ews_control("POST", "impersonation", {"service_account": SERVICE_ACCOUNT, "mailboxes": ["*"]})
    replayed = e2e.admin(
        "POST", f"integrations/{e2e.integration_id}/dead-letters/replay", {"ids": [letter["id"]]}, expect=202
    )
    assert replayed == {"replayed": 1, "ids": [letter["id"]], "not_replayed": []}

    item = e2e.one_item(MAILBOX[BEN], key)
    assert item["subject"] == "Mortgage appointment: Kim Park"
    wait_for(lambda: not problems_of(e2e, BEN), "Ben's problem settled in the status")
    assert e2e.mapping_row("person", BEN)["status"]["state"] == "ok"
    assert dead_letters(e2e) == []
    # Replaying again finds nothing: the id is no longer one of the integration's dead letters.
    e2e.admin(
        "POST", f"integrations/{e2e.integration_id}/dead-letters/replay", {"ids": [letter["id"]]}, expect=404
    )


def test_replay_of_another_integrations_dead_letter_is_refused_and_lists_never_cross_integrations(
    e2e: E2E,
) -> None:
    allowed = [MAILBOX[m] for m in (ALICE, ROOM, CHLOE)]
    e2e.ews_control("POST", "impersonation", {"service_account": SERVICE_ACCOUNT, "mailboxes": allowed})
    e2e.book(e2e.day().replace(hour=9), person=BEN)
    (letter,) = wait_for(lambda: dead_letters(e2e), "the booking's dead letter")
    e2e.quiet()
    other = "other-bank"
    created = e2e.http.post(
        f"{e2e.api}/admin/integrations",
        json={**seeded_body(e2e), "id": other, "name": "Other bank"},
        timeout=30,
    )
    try:
        assert created.status_code == 201, created.text
        assert e2e.admin("GET", f"integrations/{other}/dead-letters") == {"dead_letters": []}
        refused = e2e.admin(
            "POST", f"integrations/{other}/dead-letters/replay", {"ids": [letter["id"]]}, expect=404
        )
        assert "has no dead letter" in refused["message"]
        replay_all = e2e.admin("POST", f"integrations/{other}/dead-letters/replay", {}, expect=202)
        assert replay_all["replayed"] == 0
        assert [d["id"] for d in dead_letters(e2e)] == [letter["id"]]  # still there, still the seeded one's
    finally:
        # The other tests know one integration: this one goes, as an operator would remove its item.
        e2e.stack.client("dynamodb").delete_item(
            TableName=os.environ["INTEGRATIONS_TABLE"], Key={"integration_id": {"S": other}}
        )


def seeded_body(e2e: E2E) -> dict[str, Any]:
    """The seeded integration as the admin API shows it, as a body to create another one like it."""
    shown = e2e.admin("GET", "integrations")["integrations"][0]
    # Another integration's secrets are named from its own id: the body names none.
    return {
        key: shown[key]
        for key in (
            "name",
            "options",
            "subject_template",
            "body_template",
            "appointment_lock",
            "auto_confirm",
            "test_endpoints",
        )
    } | {
        "jrni": {k: v for k, v in shown["jrni"].items() if k != "secret_name"},
        "exchange": {k: v for k, v in shown["exchange"].items() if v is not None and k != "secret_name"},
    }


def test_a_message_the_queues_redrive_moved_is_listed_as_such_and_replays_like_any_other(e2e: E2E) -> None:
    start = e2e.day().replace(hour=14)
    booking = e2e.book(start, person=ALICE, client="Lee Moss")
    key = e2e.key(booking)
    e2e.one_item(MAILBOX[ALICE], key)
    e2e.quiet()
    # The booking moves in JRNI, and its only message is the one the function crashed on maxReceiveCount times: SQS's
    # redrive left it in the dead-letter queue as it was sent, with no reason (JRNI's webhooks are off meanwhile).
    e2e.jrni("DELETE", "webhooks")
    later = start + timedelta(hours=2)
    e2e.jrni("PUT", f"bookings/{booking['id']}", {"datetime": later.isoformat()})
    body = {
        "integration_id": e2e.integration_id,
        "company_id": str(booking["company_id"]),
        "booking_id": str(booking["id"]),
        "trigger": "modify",
    }
    e2e.sqs.send_message(
        QueueUrl=e2e.dead_letter_url,
        MessageBody=json.dumps(body, sort_keys=True),
        MessageGroupId=f"{e2e.integration_id}/{key}",
        MessageDeduplicationId=f"redriven-{booking['id']}",
    )

    (letter,) = dead_letters(e2e)
    assert letter["about"] == {"booking": key} and letter["queue"] == "outbound"
    assert "redrive" in letter["reason"] and letter["id"] in letter["reason"]
    replayed = e2e.admin("POST", f"integrations/{e2e.integration_id}/dead-letters/replay", {}, expect=202)
    assert replayed["ids"] == [letter["id"]]

    moved = e2e.one_item(
        MAILBOX[ALICE], key, lambda item: utc(item["start"]) == later - PRE, "the item moved"
    )
    assert moved["subject"] == "Mortgage appointment: Lee Moss"
    assert dead_letters(e2e) == []
