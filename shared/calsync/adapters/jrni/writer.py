"""JRNI as a ``BookingWriter``: the blocks inbound sync makes for Outlook items, and the bookings it moves, cancels and
confirms when a synced item is edited in Outlook.

Reference: ../shared/reference/jrni-api.md §2.3-2.4 and the JRNI emulator's README (its "Choices"):

- a block is made with ``PUT …/people|resources/{id}/block {start_time, end_time, booking: true, private_note}``;
  the answer is the block's status-3 *booking* (the id JRNI's webhooks name) carrying its ``slot_id``;
- a block is moved with ``PUT …/slots/{id} {start_time, end_time}`` and removed with ``DELETE …/slots/{id}``;
- a booking is moved with ``PUT …/bookings/{id} {datetime, duration}``, cancelled with
  ``POST …/bookings/{id}/cancel {notify: false, cancel_reason}``, and a reservation confirmed with
  ``PUT …/bookings/{id} {confirm: true}`` (the emulator's choice: JRNI documents no call for it).

JRNI shows a block as ``Person - <name>`` and has no title field for it; its private note is what staff see in the
block's details. So the note is the block's title on the first line(s) and calsync's marker on the last line::

    Dentist
    calsync:<integration id>:<hash of the Outlook item id>

The marker is made and read in ``calsync.domain.markers``: ``find_block`` finds a block whose creation was not
recorded by it, and outbound sync never pushes such a block back to Outlook.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from calsync.adapters.jrni.bookings import STATUS_BLOCKED
from calsync.adapters.jrni.client import JrniClient
from calsync.domain import JrniKey, PermanentError, ResourceKind, TimeWindow
from calsync.domain.markers import block_note, has_exact_marker, has_marker, split_note
from calsync.ports import CreatedBlock

log = logging.getLogger(__name__)

Json = dict[str, Any]

_STATUS = re.compile(r"JRNI answered (\d{3}) to ")  # JrniClient's wording for a refused call
_SEARCH_MARGIN = timedelta(days=1)  # JRNI's date filters use the company's zone: a day either side covers any


class BookingLockedError(PermanentError):
    """JRNI refuses to change a booking: it is cancelled, or was made externally (or is out of the admin's reach)."""


class BlockGoneError(PermanentError):
    """The block to move no longer exists in JRNI (someone removed it there)."""


# ---------------------------------------------------------------------------------------------------- notes


def carries_marker(booking: Mapping[str, Any], integration_id: str) -> bool:
    """Whether a JRNI booking's JSON, or a domain ``Booking.details``, is a block this integration made.

    Reads ``private_note`` and, for JRNI's JSON, ``notes.private[].note`` too.
    """
    return has_marker(_private_notes(booking), integration_id)


def _private_notes(booking: Mapping[str, Any]) -> list[str]:
    notes = [booking.get("private_note")]
    grouped = booking.get("notes")
    if isinstance(grouped, dict) and isinstance(grouped.get("private"), list):
        notes += [n.get("note") if isinstance(n, dict) else n for n in grouped["private"]]
    return [n for n in notes if isinstance(n, str) and n]


# ---------------------------------------------------------------------------------------------------- writer


class JrniBookingWriter:
    """Writes blocks and booking changes through a logged-in ``JrniClient`` (errors translated there)."""

    def __init__(self, client: JrniClient, *, page_size: int = 100) -> None:
        self.client = client
        self.page_size = page_size

    # ------------------------------------------------------------------------------------------------ blocks

    def create_block(
        self, company_id: str, kind: ResourceKind, jrni_id: str, window: TimeWindow, title: str, marker: str
    ) -> CreatedBlock:
        """Block the time; the answer is the status-3 booking JRNI's webhooks will name. 409 over a booking."""
        answer = self._write(
            "PUT",
            f"/api/v1/admin/{company_id}/{_collection(kind)}/{jrni_id}/block",
            {
                "start_time": _iso(window.start),
                "end_time": _iso(window.end),
                "booking": True,
                "private_note": block_note(title, marker),
            },
        )
        created = _created(answer, company_id)
        log.info(
            "blocked %s %s in JRNI company %s: booking %s, slot %s",
            kind.value,
            jrni_id,
            company_id,
            created.jrni_key.booking_id,
            created.slot_id,
        )
        return created

    def find_block(
        self, company_id: str, kind: ResourceKind, jrni_id: str, window: TimeWindow, marker: str
    ) -> CreatedBlock | None:
        """The live block carrying ``marker`` among the staff member's or resource's bookings around ``window``
        (the one at exactly ``window`` first, should there be several)."""
        params: dict[str, str | int] = {
            f"{kind.value}_id": jrni_id,
            "start_date": (window.utc().start - _SEARCH_MARGIN).date().isoformat(),
            "end_date": (window.utc().end + _SEARCH_MARGIN).date().isoformat(),
            "include_cancelled": "false",
            "per_page": self.page_size,
        }
        found: list[Json] = []
        for row in self.client.get_all(f"/api/v1/admin/{company_id}/bookings", "bookings", params):
            if _int(row.get("status")) != STATUS_BLOCKED or row.get("is_cancelled") or not row.get("slot_id"):
                continue
            if str(row.get(f"{kind.value}_id")) != str(jrni_id):
                continue  # the filter should have done this; never take another calendar's block for ours
            if has_exact_marker(_private_notes(row), marker):
                found.append(row)
        if not found:
            return None
        exact = [row for row in found if _window_of(row) == window.utc()]
        return _created((exact or found)[0], company_id)

    def move_block(self, company_id: str, slot_id: str, window: TimeWindow, title: str) -> None:
        """Move the block's slot; rename it (its private note, marker kept) only when the title changed."""
        answer = self._call(
            "PUT",
            f"/api/v1/admin/{company_id}/slots/{slot_id}",
            json={"start_time": _iso(window.start), "end_time": _iso(window.end)},
            missing_ok=True,
        )
        if answer is None:
            raise BlockGoneError(f"JRNI block (slot {slot_id}) in company {company_id} no longer exists")
        if "private_note" in answer and answer.get("booking_id") is not None:
            note, booking_id = answer["private_note"], answer["booking_id"]
        else:  # a slot answer without its booking's note: read the booking
            booking = self._slot_booking(company_id, answer)
            note, booking_id = booking.get("private_note"), booking.get("id")
        current, marker = split_note(note if isinstance(note, str) else "")
        if current == title.strip():
            return
        path = f"/api/v1/admin/{company_id}/bookings/{_id(booking_id, f'booking of slot {slot_id}')}"
        self._call("PUT", path, json={"private_note": block_note(title, marker) if marker else title.strip()})

    def remove_block(self, company_id: str, slot_id: str) -> None:
        """Delete the block's slot (JRNI keeps its booking as cancelled); a slot already gone counts as removed."""
        if self._call("DELETE", f"/api/v1/admin/{company_id}/slots/{slot_id}", missing_ok=True) is None:
            log.info("JRNI block (slot %s) in company %s was already gone", slot_id, company_id)

    # ------------------------------------------------------------------------------------------------ bookings

    def move_booking(self, key: JrniKey, window: TimeWindow) -> None:
        """Move the booking to ``window`` (its start and its length); BookingLockedError when JRNI refuses."""
        minutes = max(1, math.ceil((window.end - window.start).total_seconds() / 60))
        self._change(key, {"datetime": _iso(window.start), "duration": minutes}, "moved")

    def cancel_booking(self, key: JrniKey, reason: str) -> None:
        """Cancel without notifying the customer; cancelling again, or a booking JRNI no longer knows, is a no-op."""
        path = f"/api/v1/admin/{key.company_id}/bookings/{key.booking_id}/cancel"
        if self._call("POST", path, json={"notify": False, "cancel_reason": reason}, missing_ok=True) is None:
            log.info("JRNI booking %s to cancel no longer exists", key)

    def confirm_reservation(self, key: JrniKey) -> None:
        """Confirm a reservation (``confirm: true``); a booking already confirmed stays as it is."""
        answer = self._change(key, {"confirm": True}, "confirmed")
        if answer.get("is_reservation") and not answer.get("is_cancelled"):
            raise PermanentError(
                f"JRNI accepted the confirmation of reservation {key} but still shows it as a "
                "reservation: confirm it in JRNI, or check the tenant's reservation workflow"
            )

    # ------------------------------------------------------------------------------------------------ plumbing

    def _change(self, key: JrniKey, body: Json, what: str) -> Json:
        path = f"/api/v1/admin/{key.company_id}/bookings/{key.booking_id}"
        try:
            answer = self._write("PUT", path, body)
        except PermanentError as exc:
            if _status(exc) != 403:
                raise
            raise BookingLockedError(
                f"JRNI refuses to let booking {key} be {what}: {self._why_locked(key)}"
            ) from exc
        return answer

    def _why_locked(self, key: JrniKey) -> str:
        """Why JRNI answered 403, in words an operator can act on (one read, only when it happened)."""
        try:
            booking = self.client.find(f"/api/v1/admin/{key.company_id}/bookings/{key.booking_id}")
        except PermanentError:
            booking = None
        if booking is not None and booking.get("is_cancelled"):
            return "it is cancelled"
        if booking is not None and booking.get("external"):
            return "it was made externally, and JRNI only lets its own bookings be rescheduled"
        if booking is not None and _int(booking.get("status")) == STATUS_BLOCKED:
            return "it is a block, not an appointment"
        return "it is cancelled, made externally, or outside the integration administrator's companies"

    def _slot_booking(self, company_id: str, slot: Json) -> Json:
        """The status-3 booking behind a slot, for its private note (when the slot's answer did not carry it)."""
        booking_id = slot.get("booking_id")
        if booking_id is not None:
            return self.client.get(f"/api/v1/admin/{company_id}/bookings/{booking_id}")
        link = slot.get("_links", {}).get("booking_details")
        if isinstance(link, dict) and isinstance(link.get("href"), str):
            return self.client.get(link["href"])
        raise PermanentError(f"JRNI's slot {slot.get('id')} names no booking")

    def _call(
        self, method: str, path: str, *, json: Json | None = None, missing_ok: bool = False
    ) -> Json | None:
        return self.client.request(method, path, json=json, missing_ok=missing_ok)

    def _write(self, method: str, path: str, body: Json) -> Json:
        answer = self.client.request(method, path, json=body)
        assert answer is not None  # only a missing_ok call answers None
        return answer


# ---------------------------------------------------------------------------------------------------- helpers


def _collection(kind: ResourceKind) -> str:
    return "people" if kind is ResourceKind.PERSON else "resources"


def _iso(moment: datetime) -> str:
    """UTC, whole seconds, with its offset (JRNI reads a time without an offset as UTC; we never rely on that)."""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat()


def _created(answer: Json, company_id: str) -> CreatedBlock:
    """The block's status-3 booking and its slot, from a booking (``booking: true``) or a slot answer."""
    if "booking_id" in answer and "slot_id" not in answer:  # a slot: JRNI ignored ``booking: true``
        booking_id, slot_id = answer.get("booking_id"), answer.get("id")
    else:
        booking_id, slot_id = answer.get("id"), answer.get("slot_id")
    company = str(answer.get("company_id") or company_id)
    return CreatedBlock(
        JrniKey(company, _id(booking_id, "block's booking id")), _id(slot_id, "block's slot id")
    )


def _window_of(row: Json) -> TimeWindow | None:
    try:
        return TimeWindow(
            datetime.fromisoformat(str(row.get("datetime"))),
            datetime.fromisoformat(str(row.get("end_datetime"))),
        ).utc()
    except ValueError:
        return None


def _status(exc: PermanentError) -> int | None:
    found = _STATUS.search(str(exc))
    return int(found.group(1)) if found else None


def _id(value: object, what: str) -> str:
    if value is None or value == "" or isinstance(value, bool):
        raise PermanentError(f"JRNI's answer carried no {what}")
    return str(value)


def _int(value: object) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return 0
