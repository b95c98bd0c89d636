"""JRNI's Liquid drops, as JRNI names them, built from the JSON its admin API returns.

What a template may name is declared here once (``DROPS``): the save-time check refuses any other name, and the
context built for a booking holds every declared field (``None`` where JRNI gave nothing), so a template that passed
the check never meets an undefined name at sync time. Reference: ../shared/reference/jrni-api.md §1.8 (the drops),
§2.3 (the booking JSON); the person drop is taken to have the resource drop's shape (JRNI's page is not public).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from calsync.domain import Booking, BookingKind, BookingRecords, BookingStatus

Json = Mapping[str, Any]


class Open:
    """A field whose keys are the customer's own (extras, settings, answers by question): any key may be named."""


class Private:
    """A field shown only to a template that names it (a booking's private notes are for JRNI staff)."""


@dataclass(frozen=True)
class ListOf:
    """A list whose items have the fields of ``item``."""

    item: Mapping[str, Any]


def _fields(names: str) -> dict[str, None]:
    """Plain fields, named in one string."""
    return dict.fromkeys(names.split())


OPEN: Final = Open()
PRIVATE: Final = Private()

_ADDRESS = _fields("id address1 address2 address3 address4 address5 postcode country lat long map_url phone")
_STAFF = {
    **_fields(
        "id name description email ews_email phone phone_prefix mobile ical_link reference company_id "
        "company_ids group_id group_name schedule_id service_ids resource_ids never_booked disabled "
        "deleted order origin type attendance_status attendance_estimate attendance_started live_status "
        "queuing_disabled created_at updated_at"
    ),
    "extra": OPEN,
    "extras": OPEN,
    "app": OPEN,
}
CLIENT = _fields(
    "id first_name last_name name email mobile mobile_prefix phone phone_prefix address1 address2 "
    "address3 address4 address5 postcode country reference"
)
SERVICE = {
    **_fields(
        "id name description duration durations price prices pre_time post_time company_id reference "
        "category_id booking_type_public booking_type_member"
    ),
    "extra": OPEN,
    "extras": OPEN,
    "app": OPEN,
}
COMPANY = {
    **_fields(
        "id name description reference ref address_id timezone currency_code country_code locale "
        "available_locales website host live disabled logo_url children_count membership_id "
        "numeric_widget_id origin created_at updated_at"
    ),
    "address": _ADDRESS,
    "settings": OPEN,
    "extra": OPEN,
    "extras": OPEN,
    "images": OPEN,
    "multi_status": OPEN,
    "app": OPEN,
}
ANSWER = _fields("question_id name answer reference")
BOOKING = {
    **_fields(
        "id full_describe resource_name person_name service_name resource_id person_id people_ids "
        "service_id member_id client_id client_name client_email client_phone client_mobile datetime "
        "end_datetime duration duration_span listed_duration pre_time post_time on_waitlist "
        "company_id company_name attended booking_updated updated_at created_at price paid quantity "
        "is_cancelled cancelled_by cancellation_date cancel_reason current_multi_status purchase_id "
        "purchase_ref event_chain_id notes channel user_id status ticket_name slot_id booked_by "
        "booked_by_email customer_count external_cal_id answers_summary_text"
    ),
    # calsync's own, kept for the templates written before JRNI's names were all there
    **_fields("start_local end_local is_reservation"),
    "multi_status": OPEN,
    "settings": OPEN,
    "slot_settings": OPEN,
    "questions": OPEN,
    "answers": ListOf(ANSWER),
    "answers_summary": ListOf(ANSWER),
    "survey_answers_summary": OPEN,
    "private_note": PRIVATE,
    "app": OPEN,
    "client": CLIENT,
    "service": SERVICE,
    "person": _STAFF,
    "resource": _STAFF,
    "company": COMPANY,
}
CALSYNC = _fields("admin_url block_subject integration integration_id is_reservation kind")
DROPS: Final[Mapping[str, Mapping[str, Any]]] = {
    "booking": BOOKING,
    "client": CLIENT,
    "service": SERVICE,
    "person": _STAFF,
    "resource": _STAFF,
    "company": COMPANY,
    "calsync": CALSYNC,
}

# A booking's question answered by its reference: ``booking.reason_for_visit``.
QUESTION_REFERENCE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_DATES = ("datetime", "end_datetime", "updated_at", "created_at", "cancellation_date", "attendance_started")


class LocalTime(datetime):
    """A date-time in the company's zone: ``date`` formats it; printed bare it is JRNI's own form (ISO 8601)."""

    def __str__(self) -> str:
        return self.isoformat(timespec="seconds")


class Blank(dict[str, Any]):
    """What an open field gives for a key it does not have: nothing, printed as nothing, itself open."""

    def __missing__(self, key: str) -> Any:
        if key in ("size", "first", "last"):
            raise KeyError(key)
        return Blank()

    def __str__(self) -> str:
        return "" if not self else super().__str__()


class _Booking(dict[str, Any]):
    """The booking drop: a name that is not one of its fields is a question's reference (blank if unanswered)."""

    def __missing__(self, key: str) -> Any:
        if isinstance(key, str) and QUESTION_REFERENCE.match(key):
            return ""
        raise KeyError(key)


@dataclass(frozen=True)
class About:
    """calsync's own facts about the booking."""

    integration: str
    integration_id: str
    kind: str  # "booking", "reservation" or "block"
    block_subject: str = "Unavailable"  # the integration's subject for JRNI blocks
    admin_url: str = ""


def context(booking: Json, records: BookingRecords, about: About, zone: tzinfo | None) -> dict[str, Any]:
    """The Liquid context for one booking: JRNI's drops, every declared field present, values as JRNI gave them and
    date-times in the company's zone. The private note is in it, and taken out for a template that does not name it
    (``without_private_note``)."""
    company = _drop(COMPANY, records.company or {"name": booking.get("company_name")}, zone)
    client = _drop(CLIENT, _client_json(booking), zone)
    service = _drop(SERVICE, records.service or _named(booking, "service"), zone)
    person = _drop(_STAFF, records.person or _named(booking, "person"), zone)
    resource = _drop(_STAFF, records.resource or _named(booking, "resource"), zone)
    answers = _answers(booking, records.questions)
    drop = _Booking(
        {
            **{
                name: _value(spec, booking.get(name), zone, name)
                for name, spec in BOOKING.items()
                if not isinstance(spec, Private) and not isinstance(spec, dict)
            },
            "notes": _public_notes(booking.get("notes")),
            "answers": answers,
            "answers_summary": answers,
            "answers_summary_text": ", ".join(f"{a['name']}: {a['answer']}" for a in answers if a["answer"]),
            "client": client,
            "service": service,
            "person": person,
            "resource": resource,
            "company": company,
        }
    )
    for answer in answers:
        reference = answer["reference"]
        if reference and reference not in BOOKING:
            drop[reference] = answer["answer"]
    if booking.get("is_reservation") is None:
        drop["is_reservation"] = about.kind == "reservation"
    drop["private_note"] = _private_notes(booking)
    calsync = {
        "admin_url": about.admin_url,
        "block_subject": about.block_subject,
        "integration": about.integration,
        "integration_id": about.integration_id,
        "is_reservation": about.kind == "reservation",
        "kind": about.kind,
    }
    return {
        "booking": drop,
        "client": client,
        "service": service,
        "person": person,
        "resource": resource,
        "company": company,
        "calsync": calsync,
    }


def without_private_note(booking: Mapping[str, Any]) -> dict[str, Any]:
    """The booking drop for a template that does not name ``booking.private_note``: without it."""
    return _Booking({k: v for k, v in booking.items() if k != "private_note"})


def for_booking(booking: Booking, records: BookingRecords, about: About) -> dict[str, Any]:
    """The context for a domain ``Booking``: from the JSON JRNI gave for it (``details["json"]``) when there is,
    else from what the booking holds."""
    given = booking.details.get("json")
    # calsync's own local-time strings (``booking.start_local``) are in the details, not in JRNI's JSON.
    row = {**_json_of(booking), **given} if isinstance(given, Mapping) else _json_of(booking)
    zone = booking.window.start.tzinfo
    named = (records.company or {}).get("timezone") or row.get("time_zone")
    if isinstance(named, str) and named:
        with contextlib.suppress(ZoneInfoNotFoundError, ValueError):
            zone = ZoneInfo(named)
    return context(row, records, about, zone)


def _json_of(booking: Booking) -> dict[str, Any]:
    details = booking.details
    return {
        **{k: v for k, v in details.items() if not isinstance(v, dict)},
        "id": booking.key.booking_id,
        "company_id": booking.key.company_id,
        "datetime": booking.window.start.isoformat(),
        "end_datetime": booking.window.end.isoformat(),
        "duration": int((booking.window.end - booking.window.start).total_seconds() // 60),
        "person_id": booking.person_id,
        "resource_id": booking.resource_id,
        "is_cancelled": booking.status is BookingStatus.CANCELLED,
        "is_reservation": booking.status is BookingStatus.RESERVATION,
        "status": 3 if booking.kind is BookingKind.BLOCK else 4,
    }


def kind_of(booking: Booking) -> str:
    """ "block", "reservation" or "booking": what ``calsync.kind`` says."""
    if booking.kind is BookingKind.BLOCK:
        return "block"
    return "reservation" if booking.status is BookingStatus.RESERVATION else "booking"


# A booking as JRNI's admin API gives it (jrni-api.md §2.3), with its company, service and staff: what the save-time
# check renders every template with, and what the preview shows when no booking is named.
SAMPLE_BOOKING: Final[Json] = {
    "id": 1001,
    "full_describe": "Mortgage advice with Alice Adviser - Room 1 at Example Bank, High Street",
    "service_name": "Mortgage advice",
    "service_id": 31,
    "person_name": "Alice Adviser",
    "person_id": 11,
    "resource_name": "Room 1",
    "resource_id": 21,
    "client_id": 41,
    "client_name": "Sam Sample",
    "client_email": "sam.sample@example.com",
    "client_phone": "",
    "client_mobile": "07700 900123",
    "datetime": "2025-07-07T10:00:00+01:00",
    "end_datetime": "2025-07-07T11:00:00+01:00",
    "duration": 60,
    "duration_span": 3600,
    "company_id": 10,
    "company_name": "Example Bank, High Street",
    "price": 0,
    "paid": 0,
    "is_cancelled": False,
    "is_reservation": False,
    "channel": "Client",
    "status": 4,
    "booked_by": "Sam Sample",
    "booked_by_email": "sam.sample@example.com",
    "notes": {"public": [{"id": 1, "note": "First-time buyer"}], "private": []},
    "answers_summary": [
        {
            "question_id": 7,
            "name": "Reason for visit",
            "answer": "Remortgage",
            "reference": "reason_for_visit",
        }
    ],
    "questions": {"7": {"name": "Reason for visit", "answer": "Remortgage"}},
    "settings": {},
    "_embedded": {
        "client": {
            "id": 41,
            "first_name": "Sam",
            "last_name": "Sample",
            "name": "Sam Sample",
            "email": "sam.sample@example.com",
            "mobile": "07700 900123",
            "address1": "1 Example Road",
            "postcode": "EX1 1AA",
            "country": "United Kingdom",
        },
        "answers": [],
    },
}
SAMPLE_RECORDS: Final = BookingRecords(
    company={
        "id": 10,
        "name": "Example Bank, High Street",
        "timezone": "Europe/London",
        "address": {
            "address1": "10 High Street",
            "address2": "Exampleton",
            "postcode": "EX2 2BB",
            "country": "United Kingdom",
        },
    },
    service={
        "id": 31,
        "name": "Mortgage advice",
        "duration": 60,
        "description": "An hour with a mortgage adviser",
    },
    person={"id": 11, "name": "Alice Adviser", "email": "alice.adviser@example.com", "type": "person"},
    resource={"id": 21, "name": "Room 1", "type": "resource"},
)
SAMPLE_ABOUT: Final = About(integration="Example integration", integration_id="example", kind="booking")


def sample(about: About = SAMPLE_ABOUT) -> dict[str, Any]:
    """The sample booking's context (as an integration's, with its ``about``)."""
    return context(SAMPLE_BOOKING, SAMPLE_RECORDS, about, ZoneInfo("Europe/London"))


# ------------------------------------------------------------------------------------------------------ helpers


def _drop(fields: Mapping[str, Any], row: Json, zone: tzinfo | None) -> dict[str, Any]:
    return {name: _value(spec, row.get(name), zone, name) for name, spec in fields.items()}


def _value(spec: Any, value: Any, zone: tzinfo | None, name: str = "") -> Any:
    if isinstance(spec, dict):
        return _drop(spec, value if isinstance(value, Mapping) else {}, zone)
    if isinstance(spec, Open):
        return _open(value)
    if isinstance(spec, ListOf):
        rows = value if isinstance(value, list) else []
        return [_drop(spec.item, row, zone) for row in rows if isinstance(row, Mapping)]
    if name in _DATES:
        return _when(value, zone) or ""
    # Nothing from JRNI prints as nothing and counts as blank, as in JRNI's own templates.
    return "" if value is None else _plain(value)


def _open(value: Any) -> Any:
    if isinstance(value, Mapping):
        return Blank({str(k): _open(v) for k, v in value.items()})
    if isinstance(value, list):
        return [_open(v) for v in value]
    return Blank() if value is None else _plain(value)


def _plain(value: Any) -> Any:
    """JSON scalars and lists of them as they are; anything else (a nested object where a value was expected) as
    its text, so no template reaches into what was not declared."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return str(value)


def _when(value: Any, zone: tzinfo | None) -> LocalTime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is not None and zone is not None:
        moment = moment.astimezone(zone)
    return LocalTime(
        moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second, tzinfo=moment.tzinfo
    )


def _client_json(booking: Json) -> Json:
    embedded = booking.get("_embedded")
    client = embedded.get("client") if isinstance(embedded, Mapping) else None
    if isinstance(client, Mapping):
        return client
    return {
        "id": booking.get("client_id"),
        "name": booking.get("client_name"),
        "email": booking.get("client_email"),
        "phone": booking.get("client_phone"),
        "mobile": booking.get("client_mobile"),
    }


def _named(booking: Json, kind: str) -> Json:
    return {"id": booking.get(f"{kind}_id"), "name": booking.get(f"{kind}_name")}


def _answers(booking: Json, questions: Iterable[Json]) -> list[dict[str, Any]]:
    """Every answer of the booking as ``{question_id, name, answer, reference}``, from whichever of JRNI's shapes
    the booking has (``_embedded.answers``, ``answers_summary``, ``questions``)."""
    references = {str(q.get("id")): q for q in questions if isinstance(q, Mapping)}
    found: dict[str, dict[str, Any]] = {}

    def add(question_id: Any, name: Any, answer: Any, reference: Any = None) -> None:
        key = str(question_id)
        known = references.get(key, {})
        row = found.setdefault(
            key, {"question_id": question_id, "name": None, "answer": None, "reference": None}
        )
        row["name"] = row["name"] or _plain(name) or _plain(known.get("name"))
        row["answer"] = row["answer"] if row["answer"] is not None else _plain(answer)
        row["reference"] = row["reference"] or _reference(reference) or _reference(known.get("reference"))

    embedded = booking.get("_embedded")
    for row in (embedded.get("answers") if isinstance(embedded, Mapping) else None) or []:
        if isinstance(row, Mapping):
            add(
                row.get("question_id"),
                row.get("question_text") or row.get("name"),
                row.get("value", row.get("answer")),
                row.get("reference") or row.get("question_reference") or _embedded_reference(row),
            )
    for row in booking.get("answers_summary") or []:
        if isinstance(row, Mapping):
            add(row.get("question_id"), row.get("name"), row.get("answer"), row.get("reference"))
    questions_map = booking.get("questions")
    if isinstance(questions_map, Mapping):
        for question_id, row in questions_map.items():
            if isinstance(row, Mapping):
                add(question_id, row.get("name"), row.get("answer"), row.get("reference"))
    return list(found.values())


def _embedded_reference(answer: Json) -> Any:
    """The reference of the question an answer embeds (``_embedded.question.reference``), as JRNI gives it."""
    embedded = answer.get("_embedded")
    question = embedded.get("question") if isinstance(embedded, Mapping) else None
    return question.get("reference") if isinstance(question, Mapping) else None


def _reference(value: Any) -> str | None:
    return value if isinstance(value, str) and QUESTION_REFERENCE.match(value) else None


def _public_notes(notes: Any) -> str:
    if isinstance(notes, str):
        return notes
    if isinstance(notes, Mapping):
        public = notes.get("public") or []
        return "\n".join(str(n.get("note", "")) if isinstance(n, Mapping) else str(n) for n in public)
    return ""


def _private_notes(booking: Json) -> str:
    notes = booking.get("notes")
    private = notes.get("private") if isinstance(notes, Mapping) else None
    if isinstance(private, list) and private:
        return "\n".join(str(n.get("note", "")) if isinstance(n, Mapping) else str(n) for n in private)
    return str(booking.get("private_note") or "")
