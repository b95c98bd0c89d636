"""JRNI's Liquid drops, field by field, from the JRNI emulator's own booking JSON.

A booking, a reservation and a block are made in the emulator (seeded with emulators/jrni/example-seed.json: a
branch with its address, a client, custom questions), read back over HTTP by the adapter exactly as a sync reads
them (``JrniBookingSource.get_booking`` and ``records``), and each template below is rendered with what came back;
the admin API's preview renders the branch's booking named by its id alone.
The expected values are the seed's and the booking's as made here, written out.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from calsync.adapters.jrni import JrniBookingSource, JrniClient
from calsync.domain import JrniConnection
from calsync.rendering import About, Templates, for_booking, kind_of
from calsync.transport.admin import build_admin_api
from emulators.common.server import BackgroundServer
from tests.apigw import LambdaContext, rest_event
from tests.calsync.adapters.jrni_support import control
from tests.calsync.builders import INTEGRATION, integration
from tests.calsync.fakes import fake_admin_deps

EXAMPLE_SEED = json.loads(
    (Path(__file__).resolve().parents[3] / "emulators/jrni/example-seed.json").read_text()
)
NORTH = 11  # Branch North, Europe/London
CONSULTATION, ALICE, ROOM, PRIYA = 401, 101, 151, 1
REASON, VISITED, ACCOUNT = 1001, 1002, 1003  # two questions of the head office, one of the branch
# 10:00 in London (summer time) on Tuesday 2 July 2030: a 30-minute Consultation, 5 minutes before, 10 after.
START = "2030-07-02T09:00:00Z"


@dataclass(frozen=True)
class Made:
    """What the emulator made, as the adapter read it back: the context each kind renders with."""

    booking: dict[str, Any]
    reservation: dict[str, Any]
    block: dict[str, Any]


def _context(source: JrniBookingSource, booking_id: int) -> dict[str, Any]:
    found = source.get_booking(str(NORTH), str(booking_id))
    assert found is not None
    about = About("Example Bank", "example-bank", kind_of(found))
    return for_booking(found, source.records(found), about)


@dataclass(frozen=True)
class Jrni:
    """The emulator, seeded, with the bookings made in it, and the adapter reading it."""

    source: JrniBookingSource
    booking_id: int
    reservation_id: int
    block_id: int


@pytest.fixture(scope="module")
def jrni(emulator: BackgroundServer) -> Iterator[Jrni]:
    base = emulator.base_url
    control(base, "POST", "reset")
    control(base, "POST", "seed", json=EXAMPLE_SEED)
    booking = control(
        base,
        "POST",
        "bookings",
        json={
            "company_id": NORTH,
            "service_id": CONSULTATION,
            "person_id": ALICE,
            "resource_id": ROOM,
            "client_id": PRIYA,
            "datetime": START,
            "channel": "Client",
            "price": 1250,
            "external_cal_id": "outlook-item-7",
            "private_note": "Staff only: check ID",
            "questions": {
                str(REASON): "Remortgage of the flat",
                str(VISITED): "Yes",
                str(ACCOUNT): "12345678",
            },
        },
    )
    reservation = control(
        base,
        "POST",
        "bookings",
        json={
            "company_id": NORTH,
            "service_id": CONSULTATION,
            "person_id": ALICE,
            "datetime": "2030-07-03T09:00:00Z",
            "client": {"first_name": "Robin", "last_name": "Reserve", "email": "robin@example.test"},
            "reservation": True,
        },
    )
    block = control(
        base,
        "POST",
        "blocks",
        json={
            "company_id": NORTH,
            "person_id": ALICE,
            "start_time": "2030-07-04T12:00:00Z",
            "end_time": "2030-07-04T13:00:00Z",
            "booking": True,
        },
    )
    secret = {
        "app_id": EXAMPLE_SEED["apps"][0]["app_id"],
        "app_key": EXAMPLE_SEED["apps"][0]["app_key"],
        "email": "parent-admin@example.test",
        "password": "password-for-tests",
    }
    client = JrniClient(JrniConnection(base, "10", "calsync/jrni/drops"), secret, timeout=5)
    try:
        yield Jrni(JrniBookingSource(client), booking["id"], reservation["id"], block["id"])
    finally:
        client.close()


@pytest.fixture(scope="module")
def made(jrni: Jrni) -> Made:
    return Made(
        _context(jrni.source, jrni.booking_id),
        _context(jrni.source, jrni.reservation_id),
        _context(jrni.source, jrni.block_id),
    )


@dataclass(frozen=True)
class Case:
    template: str
    expected: str
    kind: str = "booking"  # which of Made's contexts


CASES = [
    # ---- booking: its own fields
    Case("{{ booking.service_name }}", "Consultation"),
    Case("{{ booking.person_name }}", "Alice Adviser"),
    Case("{{ booking.resource_name }}", "Room 1"),
    Case("{{ booking.client_name }}", "Priya Patel"),
    Case("{{ booking.client_email }}", "priya.patel@example.test"),
    Case("{{ booking.client_phone }}", "0113 496 0999"),
    Case("{{ booking.client_mobile }}", "07700 900456"),
    Case("{{ booking.company_name }}", "Branch North"),
    Case("{{ booking.datetime | date: '%a %d %b %H:%M' }}", "Tue 02 Jul 10:00"),
    Case("{{ booking.end_datetime | date: '%H:%M %Z' }}", "10:30 BST"),
    Case("{{ booking.datetime }}", "2030-07-02T10:00:00+01:00"),
    Case("{{ booking.duration }} min", "30 min"),
    Case("{{ booking.pre_time }}/{{ booking.post_time }}", "5/10"),
    Case("{{ booking.channel }}", "Client"),
    Case("{{ booking.status }}", "4"),
    Case("{{ booking.is_cancelled }}", "false"),
    Case("{{ booking.is_reservation }}", "false"),
    Case("{{ booking.price }}/{{ booking.paid }}", "1250/0"),
    Case("{{ booking.external_cal_id }}", "outlook-item-7"),
    Case("{{ booking.service_id }} {{ booking.person_id }} {{ booking.resource_id }}", "401 101 151"),
    Case("{{ booking.client_id }}", str(PRIYA)),
    Case("{% if booking.full_describe contains 'Consultation' %}described{% endif %}", "described"),
    Case("[{{ booking.notes }}]", "[]"),  # public notes only: this booking has a private one
    # ---- booking: its answers, by reference and in JRNI's lists
    Case("{{ booking.reason_for_visit }}", "Remortgage of the flat"),
    Case("{{ booking.visited_before }}", "Yes"),
    Case("{{ booking.account_number }}", "12345678"),  # the branch's own question
    Case("[{{ booking.preferred_language }}]", "[]"),  # another company's question: not answered here
    Case(
        "{% for a in booking.answers %}{{ a.reference }}={{ a.answer }};{% endfor %}",
        "reason_for_visit=Remortgage of the flat;visited_before=Yes;account_number=12345678;",
    ),
    Case(
        "{% for a in booking.answers_summary %}{{ a.name }}|{% endfor %}",
        "Reason for visit|Have you visited us before?|Account number|",
    ),
    Case("{{ booking.questions['1002'].answer }}", "Yes"),
    Case(
        "{{ booking.answers_summary_text }}",
        "Reason for visit: Remortgage of the flat, "
        "Have you visited us before?: Yes, Account number: 12345678",
    ),
    # ---- booking: the linked drops
    Case("{{ booking.client.first_name }}", "Priya"),
    Case("{{ booking.service.description }}", "A first conversation with an adviser about your plans."),
    Case("{{ booking.person.description }}", "Senior mortgage adviser"),
    Case("{{ booking.resource.name }}", "Room 1"),
    Case("{{ booking.company.address.address4 }}", "Leeds"),
    # ---- private notes: only for a template that names them, and then escaped like the rest
    Case("{{ booking.private_note }}", "Staff only: check ID"),
    # ---- client
    Case("{{ client.first_name }} {{ client.last_name }}", "Priya Patel"),
    Case("{{ client.name }}", "Priya Patel"),
    Case("{{ client.email }}", "priya.patel@example.test"),
    Case("{{ client.mobile }} / {{ client.phone }}", "07700 900456 / 0113 496 0999"),
    Case(
        "{{ client.address1 }}, {{ client.address2 }}, {{ client.address4 }} {{ client.postcode }}",
        "Flat 2, 10 Example Road, Leeds ZZ6 1AB",
    ),
    Case("{{ client.country }}", "United Kingdom"),
    Case("{{ client.reference }}", "CUST-0001"),
    # ---- service
    Case("{{ service.name }} ({{ service.duration }} min)", "Consultation (30 min)"),
    Case("{{ service.description }}", "A first conversation with an adviser about your plans."),
    Case("{{ service.reference }}", "SVC-CONSULT"),
    Case("{{ service.extra.bring }}", "Photo ID"),
    # ---- person (the resource drop's shape)
    Case("{{ person.name }}", "Alice Adviser"),
    Case("{{ person.email }}", "alice@example.test"),
    Case("{{ person.mobile }}", "07700 900123"),
    Case("{{ person.reference }}", "STAFF-101"),
    Case("{{ person.group_name }}", "Mortgage advisers"),
    Case("{{ person.extra.languages }}", "English, Urdu"),
    # ---- resource
    Case("{{ resource.name }}", "Room 1"),
    Case("{{ resource.id }}", str(ROOM)),
    # ---- company
    Case("{{ company.name }}", "Branch North"),
    Case("{{ company.timezone }}", "Europe/London"),
    Case("{{ company.reference }}", "BR-0011"),
    Case("{{ company.currency_code }}", "GBP"),
    Case("{{ company.website }}", "https://north.example.test"),
    Case("{{ company.extra.parking }}", "Free, behind the branch"),
    Case("{{ company.address.address1 }}, {{ company.address.address2 }}", "Unit 4, 22 Specimen Row"),
    Case("{{ company.address.postcode }} {{ company.address.country }}", "ZZ2 2BB United Kingdom"),
    Case("{{ company.address.phone }}", "0113 496 0123"),
    # ---- calsync's own
    Case("{{ calsync.integration }}", "Example Bank"),
    Case("{{ calsync.kind }} {{ calsync.is_reservation }}", "booking false"),
    Case("[{{ calsync.admin_url }}]", "[]"),  # JRNI has no public form of a booking's Studio page
    # ---- a reservation
    Case("{{ calsync.kind }} {{ calsync.is_reservation }}", "reservation true", "reservation"),
    Case("{{ booking.is_reservation }}", "true", "reservation"),
    Case("{{ client.first_name }} {{ client.last_name }}", "Robin Reserve", "reservation"),
    Case("{{ booking.datetime | date: '%d %b %H:%M' }}", "03 Jul 10:00", "reservation"),
    Case("[{{ booking.reason_for_visit }}]", "[]", "reservation"),  # unanswered: blank
    # ---- a block pushed to Outlook
    Case("{{ calsync.kind }} {{ booking.status }}", "block 3", "block"),
    Case("{{ booking.person_name }}", "Alice Adviser", "block"),
    Case(
        "{{ booking.datetime | date: '%H:%M' }}-{{ booking.end_datetime | date: '%H:%M' }}",
        "13:00-14:00",
        "block",
    ),
    Case("[{{ client.name }}][{{ service.name }}]", "[][]", "block"),
    Case("{{ company.address.address4 }}", "Leeds", "block"),
]


@pytest.mark.parametrize("case", CASES, ids=[f"{c.kind}: {c.template}" for c in CASES])
def test_each_drop_field_renders_from_the_bookings_jrni_json(made: Made, case: Case) -> None:
    templates = Templates(case.template, "")
    templates.check()
    subject, _ = templates.render(getattr(made, case.kind))
    assert subject == case.expected


def test_the_default_subject_and_body_read_well_for_each_kind(made: Made) -> None:
    templates = Templates()
    booking_subject, booking_body = templates.render(made.booking)
    reservation_subject, _ = templates.render(made.reservation)
    block_subject, block_body = templates.render(made.block)
    assert booking_subject == "Consultation: Priya Patel"
    for shown in ("Priya Patel", "priya.patel@example.test", "Branch North", "Tue 02 Jul 2030 10:00"):
        assert shown in booking_body
    assert "Staff only" not in booking_body  # a private note never reaches a template that does not name it
    assert reservation_subject == "Consultation: Robin Reserve (awaiting confirmation)"
    assert block_subject == "Unavailable"
    assert "Time blocked in JRNI (Branch North) for Alice Adviser." in block_body
    assert "Reason for visit: Remortgage of the flat" in booking_body


def test_a_private_note_a_template_names_is_escaped_in_the_html_body(made: Made) -> None:
    _, body = Templates("x", "<p>{{ booking.private_note }} {{ booking.reason_for_visit }}</p>").render(
        {**made.booking, "booking": {**made.booking["booking"], "private_note": "<b>ID</b> & co"}}
    )
    assert body == "<p>&lt;b&gt;ID&lt;/b&gt; &amp; co Remortgage of the flat</p>"


def test_the_preview_renders_a_branchs_booking_named_by_its_id_alone(jrni: Jrni) -> None:
    services = fake_admin_deps(
        integration(jrni=JrniConnection(jrni.source.client.base_url, "10", "calsync/jrni/drops")),
        bookings_for=lambda _: jrni.source,
    )
    event = rest_event(
        "POST",
        f"/admin/integrations/{INTEGRATION}/templates/preview",
        {
            "booking_id": str(jrni.booking_id),
            "subject_template": "{{ service.name }} with {{ client.first_name }} {{ client.last_name }}",
            "body_template": "<p>{{ company.address.address1 }}, {{ company.address.address4 }}</p>"
            "<p>{{ booking.reason_for_visit }}</p>",
        },
        resource="/admin/integrations/{integration_id}/templates/preview",
        path_parameters={"integration_id": INTEGRATION},
    )
    answer = build_admin_api(lambda: services).resolve(event, LambdaContext())
    shown = json.loads(answer["body"])
    assert answer["statusCode"] == 200, shown
    assert shown == {
        "subject": "Consultation with Priya Patel",
        "body": "<p>Unit 4, Leeds</p><p>Remortgage of the flat</p>",
        "body_type": "html",
        "booking": f"JRNI booking {NORTH}/{jrni.booking_id}",
    }
