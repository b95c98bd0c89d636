"""Subject and body templates: strict, escaped, bounded, checked when saved.

The drops themselves, field by field from the JRNI emulator's JSON, are in ``tests/calsync/test_drops.py``.
"""

from __future__ import annotations

import tracemalloc
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bench.templates import HOSTILE
from calsync.domain import BookingKind, BookingStatus
from calsync.rendering import (
    LIMITS,
    SAMPLE_BOOKING,
    SAMPLE_RECORDS,
    About,
    TemplateError,
    Templates,
    for_booking,
    sample,
)
from calsync.rendering.drops import DROPS, context
from tests.calsync.builders import booking

LONDON = SAMPLE_RECORDS.company


def rendered(
    subject: str = "x", body: str = "", row: dict[str, Any] | None = None, **options: Any
) -> tuple[str, str]:
    templates = Templates(subject, body, **options)
    templates.check()
    ctx = (
        sample()
        if row is None
        else context(row, SAMPLE_RECORDS, About("Example", "example", "booking"), None)
    )
    return templates.render(ctx)


def hostile_client(name: str) -> dict[str, Any]:
    client = {**SAMPLE_BOOKING["_embedded"]["client"], "first_name": name, "name": name}
    return {
        **SAMPLE_BOOKING,
        "client_name": name,
        "_embedded": {**SAMPLE_BOOKING["_embedded"], "client": client},
    }


@dataclass(frozen=True)
class Case:
    name: str
    subject: str
    body: str
    expected: tuple[str, str]
    row: dict[str, Any] | None = None


CASES = [
    Case(
        "JRNI's names",
        "{{ service.name }} with {{ client.first_name }} {{ client.last_name }}",
        "{{ company.address.address1 }}, {{ booking.reason_for_visit }}",
        ("Mortgage advice with Sam Sample", "10 High Street, Remortgage"),
    ),
    Case(
        "a value typed into JRNI is escaped in the HTML body, kept as typed in the subject",
        "{{ client.first_name }}",
        "<p>{{ client.first_name }}</p>",
        ("<script>alert(1)</script>", "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>"),
        hostile_client("<script>alert(1)</script>"),
    ),
    Case(
        "the subject is one line",
        "{{ service.name }}\n\n   {{ company.name }}",
        "",
        ("Mortgage advice Example Bank, High Street", ""),
    ),
    Case(
        "dates in the company's zone, with Liquid's date filter",
        "{{ booking.datetime | date: '%a %d %b %H:%M' }}",
        "{{ booking.datetime }}",
        ("Mon 07 Jul 10:00", "2025-07-07T10:00:00+01:00"),
    ),
    Case(
        "a question not answered is blank",
        "[{{ booking.preferred_branch }}]",
        "",
        ("[]", ""),
    ),
    Case(
        "an open field's unknown key is blank",
        "[{{ service.extras.colour }}]",
        "",
        ("[]", ""),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_templates(case: Case) -> None:
    assert rendered(case.subject, case.body, case.row) == case.expected


def test_the_subject_is_cut_at_255_characters() -> None:
    subject, _ = rendered("{% for i in (1..100) %}{{ service.name }} {% endfor %}")
    assert len(subject) == LIMITS.subject == 255


def test_a_plain_text_body_is_not_escaped_and_not_html() -> None:
    templates = Templates("x", "{{ client.name }} & co", plain_text_body=True)
    templates.check()
    assert templates.render(
        context(hostile_client("<b>Ann</b>"), SAMPLE_RECORDS, About("E", "e", "booking"), None)
    )[1] == ("<b>Ann</b> & co")


@dataclass(frozen=True)
class Refused:
    name: str
    subject: str
    body: str
    which: str
    says: str  # a part of the reason
    where: str  # line:col


REFUSED = [
    Refused("unknown field", "{{ booking.colour_of_door.x }}", "", "subject", "colour_of_door", "1:4"),
    Refused(
        "typo of a field",
        "ok",
        "<p>\n  {{ booking.servce_name }}",
        "body",
        "did you mean 'booking.service_name'",
        "2:6",
    ),
    Refused("unknown drop", "{{ clients.name }}", "", "subject", "did you mean 'client'", "1:4"),
    Refused("field of a value", "{{ client.name.first }}", "", "subject", "", "1:4"),
    Refused("block never closed", "ok", "{% if booking.notes %}unclosed", "body", "add {% endif %}", "1:1"),
    Refused("unfinished expression", "{{ booking.id | }}", "", "subject", "expected word", "1:1"),
    Refused("unfinished tag", "ok", "x\n{% for a in %}{% endfor %}", "body", "expected a primitive", "2:1"),
    Refused("unclosed output", "{{ booking.id ", "", "subject", "expected '}}'", "1:1"),
    Refused("unknown filter", "{{ booking.id | shout }}", "", "subject", "no filter named 'shout'", "1:17"),
    Refused("include", "ok", "{% include 'secrets' %}", "body", "cannot include other templates", "1:4"),
    Refused("render", "ok", "{% render 'other' %}", "body", "cannot render other templates", "1:4"),
]


@pytest.mark.parametrize("case", REFUSED, ids=[c.name for c in REFUSED])
def test_a_bad_template_is_refused_with_where_and_why(case: Refused) -> None:
    with pytest.raises(TemplateError) as caught:
        Templates(case.subject, case.body).check()
    assert caught.value.which == case.which
    assert case.says in caught.value.detail
    if case.where:
        assert case.where in caught.value.detail and "^" in caught.value.detail


# Each of bench/templates.py's hostile templates would stall a function or fill an item without the limits: each is
# refused when saved, within a bounded amount of memory (the time each takes is what that benchmark measures).
@pytest.mark.parametrize("source", HOSTILE.values(), ids=list(HOSTILE))
def test_a_hostile_template_is_refused_with_memory_bounded(source: str) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(TemplateError) as caught:
            Templates("x", source).check()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert caught.value.which == "body"
    assert peak < 20 * 1024 * 1024, f"{peak / 1e6:.1f} MB"


def test_a_template_failing_on_one_bookings_data_is_a_template_error() -> None:
    # Valid when saved (the sample has a client), it fails on a booking whose client field holds a number.
    templates = Templates("{{ client.first_name | upcase | split: 'x' | first | divided_by: 0 }}", "")
    row = hostile_client("4")
    with pytest.raises(TemplateError) as caught:
        templates.render(context(row, SAMPLE_RECORDS, About("E", "e", "booking"), None))
    assert caught.value.which == "subject"


def test_the_private_note_only_reaches_a_template_that_names_it() -> None:
    row = {**SAMPLE_BOOKING, "notes": {"public": [], "private": [{"id": 1, "note": "Staff only <b>x</b>"}]}}
    # A template iterating over the booking drop does not see the private note...
    everything = "{% for pair in booking %}{{ pair[0] }}={{ pair[1] }};{% endfor %}"
    _, body = rendered("x", everything, row)
    assert "Staff only" not in body and "private_note" not in body
    # ...one that names it does, escaped.
    _, body = rendered("x", "{{ booking.private_note }}", row)
    assert body == "Staff only &lt;b&gt;x&lt;/b&gt;"


@pytest.mark.parametrize(
    ("kind", "status", "subject", "in_body"),
    [
        (BookingKind.APPOINTMENT, BookingStatus.CONFIRMED, "Appointment", "booking 501"),
        (
            BookingKind.APPOINTMENT,
            BookingStatus.RESERVATION,
            "Appointment (awaiting confirmation)",
            "awaiting confirmation",
        ),
        (BookingKind.BLOCK, BookingStatus.CONFIRMED, "Unavailable", "Time blocked in JRNI"),
    ],
)
def test_the_default_templates_read_well_for_each_kind(
    kind: BookingKind, status: BookingStatus, subject: str, in_body: str
) -> None:
    # A bare booking (no service, no client, JRNI's records unavailable): a plain word, no stray colon.
    item = booking(kind=kind, status=status)
    about = About("Example", "example", "block" if kind is BookingKind.BLOCK else
                  "reservation" if status is BookingStatus.RESERVATION else "booking")  # fmt: skip
    got_subject, body = Templates().render(for_booking(item, SAMPLE_RECORDS.__class__(), about))
    assert got_subject == subject
    assert in_body in body


def test_one_instant_prints_in_each_companys_own_zone() -> None:
    # Two bookings at one instant, in London and in UTC: each shows its own wall-clock time, whichever came first.
    templates = Templates("{{ booking.datetime | date: '%H:%M' }}", "")
    london = context(SAMPLE_BOOKING, SAMPLE_RECORDS, About("E", "e", "booking"), None)
    utc = context(
        {**SAMPLE_BOOKING, "datetime": "2025-07-07T09:00:00+00:00"},
        SAMPLE_RECORDS,
        About("E", "e", "booking"),
        None,
    )
    assert [templates.render(c)[0] for c in (utc, london, utc)] == ["09:00", "10:00", "09:00"]


def test_a_template_of_calsyncs_earlier_names_still_renders_a_real_bookings_times() -> None:
    # Templates saved before JRNI's names were there use booking.start_local / end_local: JRNI's JSON has neither.
    from zoneinfo import ZoneInfo

    from calsync.adapters.jrni.bookings import booking_from_json

    item = booking_from_json(dict(SAMPLE_BOOKING), "10", ZoneInfo("Europe/London"))
    templates = Templates("{{ booking.start_local }} - {{ booking.end_local }}", "")
    subject, _ = templates.render(for_booking(item, SAMPLE_RECORDS, About("E", "e", "booking")))
    assert subject == "Mon 07 Jul 2025 10:00 - 11:00"


def test_the_readme_documents_every_drop_and_field_and_every_limit() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Subject and body templates", 1)[1].split("\n## ", 1)[0]
    rows = {line.split("|")[1].strip(" `"): line for line in section.splitlines() if line.startswith("| `")}
    for drop, fields in DROPS.items():
        assert drop in rows, f"no row for the {drop} drop"
        for field, spec in fields.items():
            if isinstance(spec, dict) and drop == "booking":
                continue  # the linked drops: their own rows
            assert f"`{field}" in rows[drop], f"{drop}.{field} is not in the README"
            if isinstance(spec, dict):
                for inner in spec:
                    assert f"`{inner}`" in rows[drop], f"{drop}.{field}.{inner} is not in the README"
    for figure in (
        "2,000 / 16,000",
        "64 KiB",
        "255",
        "| 500 |",
        "2,000 |",
        "16,384",
        "128 bits",
        "256 KiB",
        "| 20 |",
    ):
        assert figure in section, figure
    assert LIMITS.loop == 500 and LIMITS.iterations == 2_000 and LIMITS.value == 16_384
    assert (LIMITS.subject_source, LIMITS.body_source, LIMITS.output) == (2_000, 16_000, 64 * 1024)
    assert (LIMITS.number_bits, LIMITS.assigned, LIMITS.nesting, LIMITS.subject) == (128, 256 * 1024, 20, 255)
