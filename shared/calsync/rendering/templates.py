"""Compiling, checking and rendering the integration's templates."""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from liquid import BoundTemplate, Environment, StrictUndefined
from liquid.exceptions import LiquidError

from calsync.domain import Booking, BookingStatus, Integration, TemplateError

DEFAULT_SUBJECT = (
    '{{ booking.service_name | default: "Appointment" }}'
    "{% if booking.client_name != blank %}: {{ booking.client_name }}{% endif %}"
)
DEFAULT_BODY = """<p><strong>{{ booking.service_name }}</strong>{% if booking.is_reservation %} (awaiting confirmation){% endif %}</p>
<p>{{ booking.start_local }} &ndash; {{ booking.end_local }}{% if booking.resource_name != blank %}, {{ booking.resource_name }}{% endif %}</p>
<p>Customer: {{ booking.client_name }}{% if booking.client_email != blank %}, {{ booking.client_email }}{% endif %}{% if booking.client_phone != blank %}, {{ booking.client_phone }}{% endif %}</p>
{% if booking.notes != blank %}<p>Notes: {{ booking.notes }}</p>{% endif %}
<p>Booked in JRNI ({{ company.name }}), booking {{ booking.id }}. Change it in JRNI, not here.</p>"""


class _Limited(Environment):
    # Templates are customer-written: bound what one can cost.
    loop_iteration_limit = 1_000
    output_stream_limit = 64 * 1024
    context_depth_limit = 20


_HTML = _Limited(undefined=StrictUndefined, autoescape=True)
_TEXT = _Limited(undefined=StrictUndefined, autoescape=False)
_ENVIRONMENTS = {"html": _HTML, "text": _TEXT}


@functools.lru_cache(maxsize=256)
def _compiled(kind: str, source: str) -> BoundTemplate:
    """``source`` parsed once per function environment: an integration's templates are the same for every booking
    (raises LiquidError, which is not cached)."""
    return _ENVIRONMENTS[kind].from_string(source)


@functools.lru_cache(maxsize=256)
def _checked(kind: str, source: str) -> None:
    """Compile ``source`` and render the sample booking with it; only a success is remembered."""
    _compiled(kind, source).render(**SAMPLE_CONTEXT)


def booking_context(booking: Booking, company_name: str, time_zone_label: str = "") -> dict[str, Any]:
    """What templates can use: ``booking`` (JRNI's booking drop subset) and ``company``, as plain values."""
    details = dict(booking.details)
    start = details.get("start_local") or booking.window.start.strftime("%a %d %b %Y %H:%M")
    end = details.get("end_local") or booking.window.end.strftime("%H:%M")
    drop = {
        "id": booking.key.booking_id,
        "service_name": "",
        "client_name": "",
        "client_email": "",
        "client_phone": "",
        "person_name": "",
        "resource_name": "",
        "notes": "",
        "channel": "",
        **{k: v for k, v in details.items() if not isinstance(v, dict)},
        "start_local": start,
        "end_local": end,
        "duration": int((booking.window.end - booking.window.start).total_seconds() // 60),
        "is_reservation": booking.status is BookingStatus.RESERVATION,
        "is_cancelled": booking.status is BookingStatus.CANCELLED,
    }
    return {"booking": drop, "company": {"name": company_name, "timezone": time_zone_label}}


SAMPLE_CONTEXT: dict[str, Any] = {
    "booking": {
        "id": "1001",
        "service_name": "Mortgage advice",
        "client_name": "Sam Sample",
        "client_email": "sam@example.com",
        "client_phone": "",
        "person_name": "Alice Adviser",
        "resource_name": "Room 1",
        "notes": "",
        "channel": "Client",
        "start_local": "Mon 07 Jul 2025 10:00",
        "end_local": "11:00",
        "duration": 60,
        "is_reservation": False,
        "is_cancelled": False,
    },
    "company": {"name": "Example Bank, High Street", "timezone": "Europe/London"},
}


@dataclass(frozen=True)
class Templates:
    """An integration's subject and body templates, compiled and checked against every field they may use."""

    subject_source: str = DEFAULT_SUBJECT
    body_source: str = DEFAULT_BODY

    def __post_init__(self) -> None:
        self.check()

    @property
    def fingerprint(self) -> str:
        """Identifies the pair of templates: an item rendered with other templates is brought to these."""
        canonical = json.dumps([self.subject_source, self.body_source], separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def check(self) -> None:
        """Raise TemplateError unless both templates compile and render the sample booking without unknown names."""
        for which, kind, source in (
            ("subject", "text", self.subject_source),
            ("body", "html", self.body_source),
        ):
            try:
                _checked(kind, source)
            except LiquidError as exc:
                raise TemplateError(which, str(exc)) from exc

    def render(self, context: dict[str, Any]) -> tuple[str, str]:
        """(subject, body) for one booking; the subject is a single line of plain text."""
        try:
            subject = _compiled("text", self.subject_source).render(**context)
            body = _compiled("html", self.body_source).render(**context)
        except LiquidError as exc:
            raise TemplateError("subject or body", str(exc)) from exc
        return " ".join(subject.split())[:255], body


def templates_of(integration: Integration) -> Templates:
    """The integration's templates, or the defaults for those it leaves empty."""
    return Templates(
        integration.subject_template or DEFAULT_SUBJECT, integration.body_template or DEFAULT_BODY
    )
