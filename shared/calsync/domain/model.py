"""Frozen values: bookings as JRNI has them, calendar content as Exchange should show it, and what links the two."""

from __future__ import annotations

import enum
import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any


def _aware(value: datetime, name: str) -> None:
    if value.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware")


@dataclass(frozen=True, order=True)
class TimeWindow:
    """A half-open span of time [start, end), in aware datetimes."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        _aware(self.start, "start")
        _aware(self.end, "end")
        if self.end < self.start:
            raise ValueError("a time window cannot end before it starts")

    def widened(self, before: timedelta, after: timedelta) -> TimeWindow:
        return TimeWindow(self.start - before, self.end + after)

    def overlaps(self, other: TimeWindow) -> bool:
        return self.start < other.end and other.start < self.end

    def utc(self) -> TimeWindow:
        return TimeWindow(self.start.astimezone(UTC), self.end.astimezone(UTC))


class ResourceKind(enum.StrEnum):
    """What a JRNI calendar belongs to: a staff member (person) or a resource (typically a meeting room)."""

    PERSON = "person"
    RESOURCE = "resource"


class BookingKind(enum.StrEnum):
    APPOINTMENT = "appointment"  # a customer booking (JRNI status 4)
    BLOCK = "block"  # blocked time (JRNI status 3)


class BookingStatus(enum.StrEnum):
    CONFIRMED = "confirmed"
    RESERVATION = "reservation"  # awaiting confirmation: holds the slot, shown as Tentative
    CANCELLED = "cancelled"


class FreeBusy(enum.StrEnum):
    """How a calendar item shows in free/busy (EWS LegacyFreeBusyStatus, Graph showAs)."""

    FREE = "Free"
    TENTATIVE = "Tentative"
    BUSY = "Busy"
    OOF = "OOF"
    WORKING_ELSEWHERE = "WorkingElsewhere"


# What blocks time in JRNI unless an integration says otherwise: everything but Free.
BLOCKING_FREE_BUSY = (FreeBusy.BUSY, FreeBusy.OOF, FreeBusy.TENTATIVE, FreeBusy.WORKING_ELSEWHERE)


@dataclass(frozen=True)
class JrniKey:
    """Names one JRNI object across calsync: the company it lives in and its booking id."""

    company_id: str
    booking_id: str

    def __str__(self) -> str:
        return f"{self.company_id}/{self.booking_id}"

    @classmethod
    def parse(cls, value: str) -> JrniKey:
        company_id, sep, booking_id = value.partition("/")
        if not sep or not company_id or not booking_id:
            raise ValueError(f"not a JRNI key: {value!r}")
        return cls(company_id, booking_id)


@dataclass(frozen=True)
class Booking:
    """A JRNI booking or block, read fresh from JRNI: what outbound sync decides from."""

    key: JrniKey
    kind: BookingKind
    status: BookingStatus
    window: TimeWindow  # the appointment itself, without buffers
    person_id: str | None = None
    resource_id: str | None = None
    pre_time: timedelta = timedelta(0)
    post_time: timedelta = timedelta(0)
    updated_at: datetime | None = None
    # Everything the subject and body templates may show (service, client, company...): JSON-like values.
    details: dict[str, object] = field(default_factory=dict, compare=False, hash=False)

    @property
    def is_active(self) -> bool:
        return self.status is not BookingStatus.CANCELLED

    def calendar_ids(self) -> list[tuple[ResourceKind, str]]:
        """The JRNI calendars the booking occupies: its staff member and its resource, when it has them."""
        found = []
        if self.person_id:
            found.append((ResourceKind.PERSON, self.person_id))
        if self.resource_id:
            found.append((ResourceKind.RESOURCE, self.resource_id))
        return found


@dataclass(frozen=True)
class BookingRecords:
    """What JRNI holds beside a booking that its subject and body may show, each as JRNI's admin API gives it
    (None: JRNI gave nothing): the company, service, staff member and resource, and the company's questions."""

    company: dict[str, Any] | None = None
    service: dict[str, Any] | None = None
    person: dict[str, Any] | None = None
    resource: dict[str, Any] | None = None
    questions: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class Mapping:
    """One JRNI staff member or resource mapped to one mailbox of an integration (strictly 1:1)."""

    integration_id: str
    kind: ResourceKind
    jrni_id: str
    mailbox: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "mailbox", self.mailbox.strip().lower())


@dataclass(frozen=True)
class Stamp:
    """What we write onto every calendar item of ours, so a lost link can be found again instead of duplicated."""

    integration_id: str
    jrni_key: JrniKey


@dataclass(frozen=True)
class EventContent:
    """A calendar item as it should look in one mailbox; ``fingerprint`` identifies the content.

    ``templates``: the fingerprint of the integration's templates that rendered the subject and body ("" for what no
    template renders, a JRNI block); not part of ``fingerprint``: an item rendered with other templates but showing
    the same words is not rewritten."""

    stamp: Stamp
    subject: str
    body: str
    window: TimeWindow
    free_busy: FreeBusy
    is_html: bool = True
    templates: str = ""

    @property
    def fingerprint(self) -> str:
        """Stable over equal content: lets the engine tell a real change from an echo or a replay."""
        canonical = json.dumps(
            [
                self.subject,
                self.body,
                self.window.utc().start.isoformat(),
                self.window.utc().end.isoformat(),
                self.free_busy.value,
                self.is_html,
            ],
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode()).hexdigest()[:32]

    @property
    def placement(self) -> str:
        """Identifies when and how the item shows (its window and free/busy), whatever its words: two contents with
        the same placement differ at most in subject and body."""
        window = self.window.utc()
        canonical = json.dumps(
            [window.start.isoformat(), window.end.isoformat(), self.free_busy.value], separators=(",", ":")
        )
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


class LinkState(enum.StrEnum):
    # Recorded before the remote create: a crash leaves this, and recovery looks for our stamp.
    PENDING = "pending"
    SYNCED = "synced"


@dataclass(frozen=True)
class Link:
    """Where one JRNI object stands in one mailbox: the remote item, its version token, and the content we wrote."""

    integration_id: str
    jrni_key: JrniKey
    mailbox: str
    state: LinkState
    fingerprint: str
    provider: str  # the calendar provider that wrote the item (``CalendarProvider.name``): "ews" today
    remote_id: str | None = None
    version: str | None = None  # EWS ChangeKey today, Graph @odata.etag later
    version_number: int = 0  # optimistic locking of the stored record
    # When the last remote write for this link was sent. While the link is pending, that write may still land:
    # Exchange finishes a request it has started even after the client gave up waiting.
    written_at: datetime | None = None
    # The content written, beyond its fingerprint: which templates rendered it (``EventContent.templates``) and when
    # and how it shows (``EventContent.placement``). "" on links written before they were recorded: unknown.
    templates: str = ""
    placement: str = ""


@dataclass(frozen=True)
class ScheduleBusy:
    """Whether the time outside a mapped staff member's or resource's JRNI working schedule shows as busy items in
    their calendar, with which subject and free/busy."""

    enabled: bool = False
    subject: str = "Outside working hours"
    free_busy: FreeBusy = FreeBusy.BUSY  # Busy or OOF


@dataclass(frozen=True)
class SyncOptions:
    """The integration's choices that change what calendars should show."""

    include_buffers: bool = True
    sync_jrni_blocks: bool = True
    block_subject: str = "Unavailable"
    plain_text_body: bool = False  # the body template writes plain text, not HTML
    schedule_busy: ScheduleBusy = field(default_factory=ScheduleBusy)
