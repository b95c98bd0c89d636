"""JRNI as a ``BookingSource``: bookings and blocks read fresh, staff and resources of the whole company tree.

Reference: ../shared/reference/jrni-api.md §2.3-2.5; the reservation and block model follows the JRNI emulator's
documented choices (emulators/jrni/README.md, "Choices"): a reservation is ``is_reservation: true`` /
``booking_type: "Reservation"`` with status 4; a block is a status-3 booking (its slot's webhook names the booking).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from calsync.adapters.jrni.client import JrniClient
from calsync.adapters.jrni.schedules import covering, schedule_id_of, working_days
from calsync.domain import (
    Booking,
    BookingKind,
    BookingRecords,
    BookingStatus,
    ForbiddenError,
    JrniKey,
    PermanentError,
    ResourceKind,
    TimeWindow,
)
from calsync.domain.schedules import WorkingSchedule
from calsync.ports import JrniCalendar

Json = dict[str, Any]

STATUS_BLOCKED = 3  # JRNI's integer booking status for blocked time; 4 is a customer booking
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class JrniBookingSource:
    """Reads bookings, blocks, staff and resources through a logged-in ``JrniClient``."""

    def __init__(self, client: JrniClient, *, page_size: int = 100) -> None:
        self.client = client
        self.page_size = page_size
        self._zones: dict[str, tzinfo | None] = {}  # company id -> its time zone (None: JRNI did not say)

    def get_booking(self, company_id: str, booking_id: str) -> Booking | None:
        """The booking (or block) as JRNI has it now; None when JRNI does not know it."""
        found = self.client.find(f"/api/v1/admin/{company_id}/bookings/{booking_id}")
        if found is None:
            return None
        return booking_from_json(found, company_id, self._zone(company_id, found))

    def find_booking(self, booking_id: str) -> Booking | None:
        """The booking of that id wherever it is in the company tree (parent first): a booking is read through
        its own company, and an operator naming one seldom knows which branch's it is."""
        for company_id in self._company_tree():
            try:
                found = self.get_booking(company_id, booking_id)
            except ForbiddenError:
                continue  # another company's: JRNI says so rather than 404
            if found is not None:
                return found
        return None

    def records(self, booking: Booking) -> BookingRecords:
        """The company, service, staff member and resource of ``booking``, for its subject and body: each read at
        most once in a few minutes (``JrniClient.find_recent``); one JRNI cannot give is left out, not an error."""
        company_id = booking.key.company_id
        row = booking.details.get("json")
        links = row.get("_links", {}) if isinstance(row, dict) else {}
        service_id = row.get("service_id") if isinstance(row, dict) else None

        def read(kind: str, plural: str, ident: object) -> Json | None:
            if ident in (None, ""):
                return None
            link = links.get(kind) if isinstance(links, dict) else None
            href = link.get("href") if isinstance(link, dict) else None
            path = href if isinstance(href, str) and href else f"/api/v1/admin/{company_id}/{plural}/{ident}"
            found = self.client.find_recent(path)
            return found if isinstance(found, dict) else None

        company = self.client.find_recent(f"/api/v1/admin/{company_id}/company")
        return BookingRecords(
            company=company if isinstance(company, dict) else None,
            service=read("service", "services", service_id),
            person=read("person", "people", booking.person_id),
            resource=read("resource", "resources", booking.resource_id),
            questions=self._questions(company_id),
        )

    def _questions(self, company_id: str) -> tuple[Json, ...]:
        """The company's custom booking questions (first page: JRNI serves a hundred a page), for the references a
        template names answers by; none when JRNI cannot say."""
        found = self.client.find_recent(f"/api/v1/admin/{company_id}/questions")
        rows = found.get("_embedded", {}).get("questions") if isinstance(found, dict) else None
        return tuple(row for row in rows if isinstance(row, dict)) if isinstance(rows, list) else ()

    def changed_since(self, since: datetime) -> list[Booking]:
        """Every booking and block of the company tree JRNI changed at or after ``since``, cancelled ones included: one
        paged query on the parent company (``children=true``), ``page_size`` a page."""
        company_id = self.client.connection.company_id
        params: dict[str, str | int] = {
            "children": "true",
            "include_cancelled": "true",
            "modified_since": since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
            "per_page": self.page_size,
        }
        return self._bookings(company_id, params)

    def bookings_of(
        self, company_id: str, kind: ResourceKind, jrni_id: str, window: TimeWindow
    ) -> list[Booking]:
        """The live bookings and blocks of one staff member or resource starting inside ``window`` (by the company's
        dates, a day either side: the engine compares exact times), ``page_size`` a page."""
        field = "person_id" if kind is ResourceKind.PERSON else "resource_id"
        params: dict[str, str | int] = {
            field: jrni_id,
            "start_date": (window.start - timedelta(days=1)).date().isoformat(),
            "end_date": (window.end + timedelta(days=1)).date().isoformat(),
            "per_page": self.page_size,
        }
        return self._bookings(company_id, params)

    def _bookings(self, company_id: str, params: dict[str, str | int]) -> list[Booking]:
        rows = self.client.get_all(f"/api/v1/admin/{company_id}/bookings", "bookings", params)
        found = []
        for row in rows:
            owner = str(row.get("company_id") or company_id)
            found.append(booking_from_json(row, owner, self._zone(owner, row)))
        return found

    def schedule_of(
        self, company_id: str, kind: ResourceKind, jrni_id: str, window: TimeWindow
    ) -> WorkingSchedule | None:
        """The staff member's or resource's schedule over the company's dates ``window`` touches (read fresh: a
        schedule change shows at the next reconcile); None when they have none. Dates in the company's zone."""
        schedule_id = schedule_id_of(self.client, company_id, kind, jrni_id)
        if schedule_id is None:
            return None
        zone = self._zone(company_id, {})
        if not isinstance(zone, ZoneInfo):
            raise PermanentError(
                f"JRNI company {company_id} names no time zone calsync knows: its schedule cannot be placed in time"
            )
        first, last = covering(window, zone)
        return WorkingSchedule(
            schedule_id, zone.key, working_days(self.client, company_id, schedule_id, first, last)
        )

    def calendars(self) -> list[JrniCalendar]:
        """Every staff member and resource of the parent company and its descendants, deleted ones left out."""
        found: list[JrniCalendar] = []
        for company_id in self._company_tree():
            size = {"per_page": self.page_size}
            for row in self.client.get_all(f"/api/v1/admin/{company_id}/people", "people", size):
                if not row.get("deleted"):
                    found.append(_calendar(ResourceKind.PERSON, row, company_id))
            for row in self.client.get_all(f"/api/v1/admin/{company_id}/resources", "resources", size):
                if not row.get("deleted"):
                    found.append(_calendar(ResourceKind.RESOURCE, row, company_id))
        return found

    def companies(self) -> list[tuple[str, str]]:
        """The parent company and its descendants, each as its id and name (what the token can see)."""
        return [(company_id, str(company.get("name") or "")) for company_id, company in self._companies()]

    def _company_tree(self) -> Iterator[str]:
        for company_id, _ in self._companies():
            yield company_id

    def _companies(self) -> Iterator[tuple[str, Json]]:
        """The parent company, then its children, grandchildren... (JRNI has parent/child and grandparent levels)."""
        queue = [self.client.connection.company_id]
        seen: set[str] = set()
        while queue:
            company_id = queue.pop(0)
            if company_id in seen:
                continue
            seen.add(company_id)
            company = self.client.get(f"/api/v1/admin/{company_id}/company")
            self._zones.setdefault(company_id, _zone_named(company.get("timezone")))
            yield company_id, company
            queue.extend(sorted(_child_ids(company) - seen, key=_numeric_first))

    def _zone(self, company_id: str, booking: Json) -> tzinfo | None:
        # Bookings carry the company's zone name; older payloads may not, then the company says it.
        named = _zone_named(booking.get("time_zone"))
        if named is not None:
            return named
        if company_id not in self._zones:
            company = self.client.find_recent(f"/api/v1/admin/{company_id}/company")
            self._zones[company_id] = _zone_named(company.get("timezone")) if company else None
        return self._zones[company_id]


def booking_from_json(row: Json, company_id: str, zone: tzinfo | None) -> Booking:
    """A domain ``Booking`` from JRNI's booking JSON; ``zone`` is the company's time zone, for the local strings."""
    booking_id = _id(row.get("id"), "id")
    start = _when(row.get("datetime"), "datetime", booking_id)
    end = _when(row.get("end_datetime"), "end_datetime", booking_id)
    kind = BookingKind.BLOCK if _int(row.get("status")) == STATUS_BLOCKED else BookingKind.APPOINTMENT
    if row.get("is_cancelled"):
        status = BookingStatus.CANCELLED
    elif row.get("is_reservation") or row.get("booking_type") == "Reservation":
        status = BookingStatus.RESERVATION
    else:
        status = BookingStatus.CONFIRMED
    local_start, local_end = (start.astimezone(zone), end.astimezone(zone)) if zone else (start, end)
    updated = row.get("updated_at")
    return Booking(
        key=JrniKey(str(row.get("company_id") or company_id), booking_id),
        kind=kind,
        status=status,
        # Kept at JRNI's fixed offset: arithmetic on it (buffers) is then absolute time, even across DST.
        window=TimeWindow(start, end),
        person_id=_optional_id(row.get("person_id")),
        resource_id=_optional_id(row.get("resource_id")),
        pre_time=timedelta(minutes=_int(row.get("pre_time"))),
        post_time=timedelta(minutes=_int(row.get("post_time"))),
        updated_at=_when(updated, "updated_at", booking_id) if updated else None,
        details={
            # JRNI's own JSON for the booking: what its Liquid drops are made of (rendering.drops).
            "json": row,
            "service_name": _text(row.get("service_name")),
            "client_name": _text(row.get("client_name")),
            "client_email": _text(row.get("client_email")),
            "client_phone": _text(row.get("client_phone") or row.get("client_mobile")),
            "person_name": _text(row.get("person_name")),
            "resource_name": _text(row.get("resource_name")),
            "notes": _public_notes(row.get("notes")),
            "company_name": _text(row.get("company_name")),
            "channel": _text(row.get("channel")),
            "time_zone": _text(row.get("time_zone")),
            "external_cal_id": _text(row.get("external_cal_id")),
            # A block's private note carries calsync's marker on the blocks it made (outbound: no echo). Only
            # blocks': an appointment's private notes are for JRNI staff, never for a calendar.
            "private_note": _private_note(row) if kind is BookingKind.BLOCK else "",
            "start_local": _long_local(local_start),
            "end_local": _short_local(local_end)
            if local_end.date() == local_start.date()
            else _long_local(local_end),
        },
    )


# ---------------------------------------------------------------------------------------------------- helpers


def _calendar(kind: ResourceKind, row: Json, company_id: str) -> JrniCalendar:
    return JrniCalendar(
        kind=kind,
        jrni_id=_id(row.get("id"), "id"),
        company_id=str(row.get("company_id") or company_id),
        name=_text(row.get("name")),
        email=row.get("email") or None,
        ews_email=row.get("ews_email") or None,
        disabled=bool(row.get("disabled")),
    )


def _child_ids(company: Json) -> set[str]:
    ids = {
        str(c["id"])
        for c in company.get("_embedded", {}).get("children", [])
        if isinstance(c, dict) and "id" in c
    }
    # The children links name the same companies; read them too in case the embedded list is abridged.
    links = company.get("_links", {}).get("children", [])
    for link in links if isinstance(links, list) else [links]:
        href = link.get("href", "") if isinstance(link, dict) else ""
        parts = href.rstrip("/").split("/")
        if len(parts) >= 2 and parts[-1] == "company" and parts[-2].isdigit():
            ids.add(parts[-2])
    return ids


def _numeric_first(company_id: str) -> tuple[int, str]:
    return (int(company_id), "") if company_id.isdigit() else (0, company_id)


def _zone_named(name: object) -> tzinfo | None:
    if not isinstance(name, str) or not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None  # an unknown zone name: the booking's own offset still gives correct local times


def _when(value: object, field: str, booking_id: str) -> datetime:
    if not isinstance(value, str):
        raise PermanentError(f"JRNI booking {booking_id} has no {field}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise PermanentError(f"JRNI booking {booking_id} has an unreadable {field}: {value!r}") from exc
    if parsed.tzinfo is None:
        raise PermanentError(f"JRNI booking {booking_id} gave {field} without an offset: {value!r}")
    return parsed


def _id(value: object, field: str) -> str:
    if isinstance(value, bool) or value is None or value == "":
        raise PermanentError(f"JRNI sent an object without its {field}")
    return str(value)


def _optional_id(value: object) -> str | None:
    return None if value is None or value == "" or isinstance(value, bool) else str(value)


def _int(value: object) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return 0


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _public_notes(notes: object) -> str:
    """Public notes only, one per line: private notes are for JRNI staff, not for a calendar others may read."""
    public = notes.get("public", []) if isinstance(notes, dict) else []
    texts = [str(n.get("note", "")) if isinstance(n, dict) else str(n) for n in public if n]
    return "\n".join(t for t in texts if t)


def _private_note(row: Json) -> str:
    """``private_note``, else JRNI's ``notes.private[].note`` one per line."""
    if isinstance(row.get("private_note"), str) and row["private_note"]:
        return str(row["private_note"])
    notes = row.get("notes")
    private = notes.get("private", []) if isinstance(notes, dict) else []
    texts = [str(n.get("note", "")) if isinstance(n, dict) else str(n) for n in private if n]
    return "\n".join(t for t in texts if t)


def _long_local(moment: datetime) -> str:
    # Spelled out rather than strftime's %a/%b, which follow the process locale.
    return f"{_DAYS[moment.weekday()]} {moment.day:02d} {_MONTHS[moment.month - 1]} {moment.year} {_short_local(moment)}"


def _short_local(moment: datetime) -> str:
    return f"{moment.hour:02d}:{moment.minute:02d}"
