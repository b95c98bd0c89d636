"""Subject and body templates: strict, escaped, checked when saved."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from calsync.domain import BookingStatus
from calsync.rendering import TemplateError, Templates, booking_context
from tests.calsync.builders import booking


@dataclass(frozen=True)
class Case:
    name: str
    subject: str
    body: str
    expected: tuple[str, str] | type[Exception]


CONTEXT = booking_context(
    booking(),
    "High Street <Branch>",
) | {
    "booking": booking_context(booking(), "x")["booking"]
    | {
        "service_name": "Advice",
        "client_name": "Ann <script>alert(1)</script>",
        "notes": "Bring ID & payslips",
    }
}

CASES = [
    Case(
        "values",
        "{{ booking.service_name }} with {{ booking.client_name }}",
        "{{ booking.notes }}",
        ("Advice with Ann <script>alert(1)</script>", "Bring ID &amp; payslips"),
    ),
    # The body is HTML: whatever a customer typed into JRNI is escaped there.
    Case(
        "escaped in the body",
        "x",
        "<p>{{ booking.client_name }}</p>",
        ("x", "<p>Ann &lt;script&gt;alert(1)&lt;/script&gt;</p>"),
    ),
    # The subject is one line of plain text, whatever the template's line breaks.
    Case(
        "subject on one line",
        "{{ booking.service_name }}\n\n  {{ company.name }}",
        "",
        ("Advice High Street <Branch>", ""),
    ),
    Case("unknown field", "{{ booking.colour }}", "", TemplateError),
    Case("syntax error", "ok", "{% if booking.notes %}unclosed", TemplateError),
    Case("unknown filter", "{{ booking.id | shout }}", "", TemplateError),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_templates(case: Case) -> None:
    if isinstance(case.expected, type):
        with pytest.raises(case.expected):
            Templates(case.subject, case.body)
        return
    assert Templates(case.subject, case.body).render(CONTEXT) == case.expected


def test_a_bad_template_is_reported_with_line_and_column() -> None:
    with pytest.raises(TemplateError) as caught:
        Templates(body_source="<p>ok</p>\n<p>{{ booking.clientname }}</p>")
    assert caught.value.which == "body"
    assert "2:6" in caught.value.detail and "^" in caught.value.detail


def test_default_templates_render_a_readable_item() -> None:
    subject, body = Templates().render(
        booking_context(booking(status=BookingStatus.RESERVATION), "Branch 12")
    )
    assert "awaiting confirmation" in body and "Branch 12" in body and "booking 501" in body
    assert (
        subject == "Appointment"
    )  # no service or customer on this bare booking: a plain word, no stray colon


def test_a_runaway_loop_is_stopped() -> None:
    with pytest.raises(TemplateError):
        Templates(body_source="{% for i in (1..100000) %}{{ i }}{% endfor %}")
