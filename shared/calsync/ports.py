"""What the service needs from the outside world, as Protocols; adapters implement them, tests use fakes."""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterator, Sequence
from collections.abc import Mapping as ReadOnlyMap
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Protocol

from calsync.domain import (
    Booking,
    BookingRecords,
    CalsyncError,
    EventContent,
    Integration,
    JrniKey,
    Link,
    Mapping,
    MappingStatus,
    ResourceKind,
    Stamp,
    TimeWindow,
)
from calsync.domain.availability import BusyTime
from calsync.domain.dead_letters import DeadLetter
from calsync.domain.diagnosis import Check
from calsync.domain.inbound import BlockLink, MailboxChanges, MailboxStreamState, TaskHeartbeat
from calsync.domain.messages import OutboundMessage, ReconcileMessage
from calsync.domain.reconcile import MappingReconcile, ReconcileRun, Repairs
from calsync.domain.schedules import WorkingSchedule, WrittenItem


@dataclass(frozen=True)
class RemoteRef:
    """A calendar item as the provider names it: its id and its current version token."""

    remote_id: str
    version: str


@dataclass(frozen=True)
class StampedItem:
    """An item carrying the integration's stamp, as a listing of the mailbox shows it."""

    jrni_key: JrniKey
    ref: RemoteRef
    window: TimeWindow


class CalendarProvider(Protocol):
    """Exchange today (EWS), Microsoft Graph later: nothing above the adapters may assume which."""

    name: str
    MAX_BATCH: int  # items ``create_events`` takes at once

    def create_event(self, mailbox: str, content: EventContent) -> RemoteRef:
        """Write a new item carrying ``content.stamp``; one remote request."""
        ...

    def create_events(self, mailbox: str, contents: Sequence[EventContent]) -> list[RemoteRef | CalsyncError]:
        """Write up to ``MAX_BATCH`` new items in one remote request; per item, its reference or why it was refused.
        A failure of the request as a whole is raised (UnknownOutcomeError: some items may have been written)."""
        ...

    def update_event(
        self, mailbox: str, remote_id: str, content: EventContent, *, if_version: str | None = None
    ) -> RemoteRef | None:
        """Bring the item to ``content``; None when it no longer exists.

        ``if_version``: write only if the item still has this version (the one a decision was made on); ConflictError
        when it changed since. Without it, the write overwrites whatever the item holds."""
        ...

    def delete_event(self, mailbox: str, remote_id: str) -> None:
        """Remove the item; an item already gone counts as removed."""
        ...

    def find_stamped(self, mailbox: str, stamp: Stamp) -> list[RemoteRef]:
        """Our items carrying ``stamp`` (normally none or one)."""
        ...

    def our_items(self, mailbox: str, integration_id: str) -> list[StampedItem]:
        """Every item of the mailbox stamped by the integration, with the JRNI object each shows (a deep reconcile:
        one request per page)."""
        ...


class LinkStore(Protocol):
    """Links between JRNI objects and calendar items, written with optimistic locking."""

    def links_for(self, integration_id: str, jrni_key: JrniKey) -> list[Link]:
        """Every mailbox's link for one JRNI object."""
        ...

    def links_in(self, integration_id: str, mailbox: str) -> list[Link]:
        """Every link of one mailbox (inbound: which items there are ours)."""
        ...

    def versions_of(self, integration_id: str, mailbox: str, item_ids: Sequence[str]) -> dict[str, str]:
        """The version recorded for those of ``item_ids`` that are our items in one mailbox, by item id: what tells our
        own writes coming back (items that are not ours are left out)."""
        ...

    def save(self, link: Link) -> Link:
        """Store ``link`` if nobody changed it since it was read (``version_number``); StaleStateError otherwise."""
        ...

    def save_all(self, links: Sequence[Link]) -> list[Link]:
        """Store up to 100 links as ``save`` would, all or none, in one request."""
        ...

    def delete(self, link: Link) -> None:
        """Remove ``link`` (conditionally, like ``save``)."""
        ...


@dataclass(frozen=True)
class JrniCalendar:
    """A JRNI staff member or resource: what the operator maps to a mailbox."""

    kind: ResourceKind
    jrni_id: str
    company_id: str
    name: str
    email: str | None = None
    ews_email: str | None = None  # the mailbox JRNI itself records for the staff member or resource
    disabled: bool = False


class BookingSource(Protocol):
    """JRNI, read fresh: a webhook only says *which* booking to look at."""

    def get_booking(self, company_id: str, booking_id: str) -> Booking | None:
        """The booking as JRNI has it now; None when JRNI no longer knows it."""
        ...

    def find_booking(self, booking_id: str) -> Booking | None:
        """The booking of that id in the parent company or any of its child companies; None when none has it."""
        ...

    def calendars(self) -> list[JrniCalendar]:
        """Every staff member and resource of the parent company and its child companies."""
        ...

    def records(self, booking: Booking) -> BookingRecords:
        """What JRNI holds beside ``booking`` that its subject and body may show (company, service, staff member,
        resource): read seldom, as these change seldom."""
        ...

    def changed_since(self, since: datetime) -> list[Booking]:
        """Every booking and block of the company tree changed at or after ``since``, cancelled ones included (one
        query, paged): what reconciliation looks at between deep runs."""
        ...

    def bookings_of(
        self, company_id: str, kind: ResourceKind, jrni_id: str, window: TimeWindow
    ) -> list[Booking]:
        """The live bookings and blocks of one staff member or resource around ``window`` (a deep reconcile)."""
        ...

    def schedule_of(
        self, company_id: str, kind: ResourceKind, jrni_id: str, window: TimeWindow
    ) -> WorkingSchedule | None:
        """What the staff member or resource works on each of the company's dates ``window`` touches; None when they
        have no schedule in JRNI."""
        ...


class AvailabilityReader(Protocol):
    """A mailbox's busy time as its calendar publishes it (Exchange's free/busy): what customers of JRNI compete
    with, read for the operator's merged view."""

    def busy_times(self, mailbox: str, window: TimeWindow) -> list[BusyTime]:
        """Every item of the mailbox that is not free and overlaps ``window``, sorted by start; its subject only
        where Exchange gives details and the item is not private."""
        ...


class ScheduleWriter(Protocol):
    """The items that show time outside working hours in a mailbox: weekly series (no end) with their modified and
    deleted occurrences, and single items; each stamped with the integration and its key."""

    def written(self, mailbox: str, integration_id: str) -> list[WrittenItem]:
        """Every schedule item of the integration in the mailbox, as Exchange holds it now."""
        ...

    def create_series(
        self,
        mailbox: str,
        *,
        integration_id: str,
        key: str,
        zone: str,
        weekdays: tuple[int, ...],
        start: time,
        minutes: int,
        first_day: date,
        subject: str,
        free_busy: str,
    ) -> str:
        """A weekly series from ``first_day``, each occurrence ``minutes`` of local time from ``start``: its id."""
        ...

    def change_occurrence(
        self, mailbox: str, master_id: str, original_start: datetime, window: TimeWindow | None
    ) -> None:
        """The occurrence the pattern puts at ``original_start`` shows ``window`` instead (None: deleted)."""
        ...

    def restore_occurrence(self, mailbox: str, master_id: str, original_start: datetime) -> None:
        """A modified occurrence back to the pattern's times; OccurrenceDeletedError for a deleted one."""
        ...

    def create_single(
        self, mailbox: str, *, integration_id: str, key: str, window: TimeWindow, subject: str, free_busy: str
    ) -> str:
        """A single busy item: its id."""
        ...

    def remove(self, mailbox: str, item_id: str) -> None:
        """A series (with its exceptions) or a single item; one already gone is not an error."""
        ...


class IntegrationStore(Protocol):
    def get(self, integration_id: str) -> Integration | None:
        """One integration, or None."""
        ...

    def all(self) -> list[Integration]:
        """Every integration."""
        ...

    def create(self, integration: Integration) -> Integration:
        """Store a new integration: as stored (at its first version); ConflictError when its id exists."""
        ...

    def update(self, integration: Integration, expected_version: int) -> Integration:
        """Store a changed integration only if its stored version is still ``expected_version``: the integration as
        stored, with its new version. PreconditionFailedError when the version moved, NotFoundError when it is gone."""
        ...

    def delete(self, integration_id: str) -> bool:
        """Remove the integration itself (not its state: see ``IntegrationState``); False when there was none."""
        ...


class IntegrationState(Protocol):
    """A store keeping items for each integration (mappings and statuses, links, block links, cursors, how
    mailboxes are watched, reconcile runs): what deleting an integration removes."""

    def remove_integration(self, integration_id: str) -> int:
        """Remove every item kept for the integration; how many there were."""
        ...


class MappingStore(Protocol):
    """Staff members and resources mapped to mailboxes: strictly one to one within an integration."""

    def mappings(self, integration_id: str) -> list[Mapping]:
        """Every mapping of one integration."""
        ...

    def mapping_of(self, integration_id: str, mailbox: str) -> Mapping | None:
        """The mapping holding ``mailbox`` (lower case), None when none does; without reading every mapping."""
        ...

    def put(self, mapping: Mapping) -> None:
        """Map (or re-map) a staff member or resource; ConflictError when the mailbox is mapped to another one."""
        ...

    def remove(self, integration_id: str, kind: ResourceKind, jrni_id: str) -> bool:
        """Unmap; False when it was not mapped."""
        ...

    def statuses(self, integration_id: str) -> list[MappingStatus]:
        """The last sync outcome recorded for each staff member and resource."""
        ...

    def record_status(self, *statuses: MappingStatus) -> None:
        """Record the outcome of a sync for each staff member or resource: its last outcome, the problem it opens
        (not ok, under its subject) and the problems it settles; one write for all of them (a later one wins)."""
        ...

    def problems(self, integration_id: str) -> list[MappingStatus]:
        """The open problems: outcomes other than ok that no later outcome has settled yet."""
        ...


class WebhookFormat(Protocol):
    """How the booking platform's webhooks are checked and read (JRNI's today)."""

    def authentic(
        self, headers: ReadOnlyMap[str, str | Sequence[str]], secret: ReadOnlyMap[str, str]
    ) -> bool:
        """Whether the delivery carries the integration's webhook credentials (``secret``)."""
        ...

    def bookings(self, body: bytes) -> list[tuple[JrniKey, str]]:
        """The bookings a delivery names, each with what happened to it; InvalidInputError for anything else."""
        ...


class SecretStore(Protocol):
    def get(self, name: str) -> dict[str, str]:
        """A secret's JSON fields (cached); PermanentError when it does not exist."""
        ...


class OutboundQueue(Protocol):
    def send(self, messages: list[OutboundMessage], delivery_id: str = "", correlation_id: str = "") -> None:
        """Enqueue in order, one message group per booking so that one booking's changes stay in order.

        ``delivery_id`` names the webhook delivery: an exact redelivery may be deduplicated, a new change never.
        ``correlation_id`` (the webhook's request id, a reconcile's run id) travels with each message into the log
        lines of the function that handles it."""
        ...


# ---- inbound (Exchange → JRNI) -------------------------------------------------------------------------------------


class CalendarFeed(Protocol):
    """A mailbox's change feed (EWS SyncFolderItems today, Graph calendarView delta later)."""

    def changes(self, mailbox: str, cursor: str | None, window: TimeWindow) -> MailboxChanges:
        """Everything that changed since ``cursor`` (None: everything there is), series expanded inside ``window``."""
        ...


@dataclass(frozen=True)
class CreatedBlock:
    jrni_key: JrniKey  # the block's status-3 booking
    slot_id: str


class BookingWriter(Protocol):
    """JRNI, written to by inbound sync. Every block calsync makes carries ``marker`` in its private note."""

    def create_block(
        self, company_id: str, kind: ResourceKind, jrni_id: str, window: TimeWindow, title: str, marker: str
    ) -> CreatedBlock:
        """Block the staff member's or resource's time."""
        ...

    def find_block(
        self, company_id: str, kind: ResourceKind, jrni_id: str, window: TimeWindow, marker: str
    ) -> CreatedBlock | None:
        """A block carrying ``marker`` around ``window`` (finds a block whose creation was not recorded)."""
        ...

    def move_block(self, company_id: str, slot_id: str, window: TimeWindow, title: str) -> None:
        """Move (or rename) a block."""
        ...

    def remove_block(self, company_id: str, slot_id: str) -> None:
        """Free the time; a block already gone counts as removed."""
        ...

    def move_booking(self, key: JrniKey, window: TimeWindow) -> None:
        """Move a booking (lock off); PermanentError when JRNI refuses (cancelled or made externally)."""
        ...

    def cancel_booking(self, key: JrniKey, reason: str) -> None:
        """Cancel a booking without notifying the customer."""
        ...

    def confirm_reservation(self, key: JrniKey) -> None:
        """Confirm a reservation (a no-op for a booking already confirmed)."""
        ...


class BlockLinkStore(Protocol):
    def blocks(self, integration_id: str, mailbox: str) -> list[BlockLink]:
        """Every block calsync made for one mailbox."""
        ...

    def by_jrni_key(self, integration_id: str, jrni_key: JrniKey) -> BlockLink | None:
        """The block link of a JRNI block, if calsync made it (lets outbound recognise its own blocks: no echo)."""
        ...

    def save(self, link: BlockLink) -> BlockLink:
        """Store conditionally on ``version_number``; StaleStateError when it lost a race."""
        ...

    def delete(self, link: BlockLink) -> None: ...


class CursorStore(Protocol):
    """Where each mailbox's change feed stands (EWS SyncState), stored only after its changes were applied."""

    def get(self, integration_id: str, mailbox: str) -> str | None: ...

    def put(self, integration_id: str, mailbox: str, cursor: str) -> None: ...


class EventPublisher(Protocol):
    """The customer's event bus (EventBridge): what happened, for their own notifications."""

    def publish(self, events: list[dict[str, object]]) -> None: ...


class StreamingStates(Protocol):
    """What the streaming task reports per mailbox, for the operator's status."""

    def mailbox_states(self, integration_id: str) -> list[MailboxStreamState]: ...

    def heartbeats(self) -> list[TaskHeartbeat]:
        """The last heartbeat of each streaming task seen lately."""
        ...


# ---- reconciliation -------------------------------------------------------------------------------------------------


class ReconcileQueue(Protocol):
    def send(self, messages: list[ReconcileMessage]) -> None:
        """Enqueue: one message group per integration for its run, one per mailbox for a mapping's reconcile (never
        at the same time as another reconcile of the same mailbox)."""
        ...


class RunStore(Protocol):
    """Reconcile runs and their progress, and where each integration's read of JRNI's changes stands."""

    def start(self, run: ReconcileRun) -> None:
        """Record a run (or its mapping count, once known); a later ``start`` of the same run overwrites it."""
        ...

    def get(self, integration_id: str, run_id: str) -> ReconcileRun | None: ...

    def runs_of(self, integration_id: str) -> list[ReconcileRun]:
        """The integration's runs still kept (a week after they started), newest first."""
        ...

    def mapping_done(self, integration_id: str, run_id: str, repairs: Repairs) -> None:
        """One more mapping reconciled, with what it repaired (atomic: mappings finish side by side)."""
        ...

    def failed(self, integration_id: str, run_id: str, reason: str) -> None: ...

    def jrni_cursor(self, integration_id: str) -> datetime | None:
        """Since when JRNI's changes are still to be read (None: never read; a deep run reads everything)."""
        ...

    def set_jrni_cursor(self, integration_id: str, at: datetime) -> None: ...

    def reconciled(self, integration_id: str, mailbox: str, at: datetime, repairs: Repairs) -> None:
        """A mapping's reconcile ended (any backfill of it too)."""
        ...

    def progress(self, integration_id: str, mailbox: str, total: int, done: int) -> None:
        """How far a mapping's backfill has got."""
        ...

    def mapping_states(self, integration_id: str) -> list[MappingReconcile]: ...


# ---- metrics --------------------------------------------------------------------------------------------------------


class Metric(enum.StrEnum):
    """Every metric calsync emits (CloudWatch names, in the namespace the template gives the functions)."""

    # JRNI → Exchange: calendar items written (created, updated, put back or recovered), one per calendar; items
    # removed (a booking cancelled or moved away); second items of one booking removed.
    ITEMS_WRITTEN = "ItemsWritten"
    ITEMS_REMOVED = "ItemsRemoved"
    EXTRAS_REMOVED = "ExtrasRemoved"
    # Exchange → JRNI: blocks made, moved and released; bookings moved, cancelled or confirmed from Outlook; Outlook
    # edits of a locked booking put back; items of ours no booking owns removed.
    BLOCKS_WRITTEN = "BlocksWritten"
    BLOCKS_MOVED = "BlocksMoved"
    BLOCKS_RELEASED = "BlocksReleased"
    BOOKINGS_CHANGED = "BookingsChanged"
    REVERTS = "Reverts"
    STRAYS_REMOVED = "StraysRemoved"
    # What reconciliation put right (a missed signal).
    REPAIRED_BY_RECONCILE = "RepairedByReconcile"
    # The mass-delete guard held changes back: the mapping needs an operator.
    MASS_DELETE_REFUSED = "MassDeleteRefused"
    # Seconds from the change (JRNI's updated_at; the Outlook item's last-modified time) to our write on the other side.
    OUTBOUND_LAG = "OutboundSyncLag"
    INBOUND_LAG = "InboundSyncLag"
    # Queue outcomes: given up on (dead-lettered); put back for later (any retryable error); of those, put back for a
    # server's back-off (throttled).
    DEAD_LETTERED = "DeadLettered"
    POSTPONED = "Postponed"
    THROTTLED = "Throttled"
    # The streaming task is alive (one each beat).
    STREAMING_HEARTBEAT = "StreamingHeartbeat"


class Telemetry(Protocol):
    """Where the use cases count what they did (CloudWatch embedded metrics in AWS)."""

    def count(self, name: Metric, value: int = 1, *, integration_id: str = "") -> None:
        """Add ``value`` to a count."""
        ...

    def lag(self, name: Metric, seconds: float, *, integration_id: str = "") -> None:
        """Record one delay, in seconds."""
        ...


class NoTelemetry:
    """Counts nothing (the default of every use case's dependencies, and of tests that do not look)."""

    def count(self, name: Metric, value: int = 1, *, integration_id: str = "") -> None:
        return None

    def lag(self, name: Metric, seconds: float, *, integration_id: str = "") -> None:
        return None


NO_TELEMETRY: Telemetry = NoTelemetry()
# ---- connection tests (the admin API's checklist and automap) -------------------------------------------------------


class JrniCheck(Protocol):
    """The way to one integration's JRNI, checked step by step (``domain.diagnosis.JRNI_CHECKS``)."""

    def check(self) -> Iterator[Check]:
        """Each check in the checklist's order as soon as it is made; nothing more after a failed one."""
        ...


class ExchangeCheck(Protocol):
    """The way to one integration's Exchange, and its mailboxes, checked step by step."""

    def check(self) -> Iterator[Check]:
        """``domain.diagnosis.EXCHANGE_CHECKS`` in order, each as soon as it is made; nothing more after a failed
        one (a warning goes on)."""
        ...

    def open_mailbox(self, mailbox: str, *, write: bool) -> Iterator[Check]:
        """``domain.diagnosis.mailbox_checks(mailbox)``: the service account reaches the mailbox and reads its
        calendar, with the rights calsync needs; ``write``: a private probe item created, then deleted at once."""


# ---- the operator's views: JRNI's directory, dead letters ------------------------------------------------------------


class DirectoryStore(Protocol):
    """A copy of each integration's JRNI directory (its staff and resources), refreshed by every reconcile run, so
    that the admin API pages over it instead of reading all of JRNI per request."""

    def refreshed_at(self, integration_id: str) -> datetime | None:
        """When the copy was last written; None when there is none."""
        ...

    def page(
        self, integration_id: str, *, after: tuple[ResourceKind, str] | None, limit: int
    ) -> tuple[list[JrniCalendar], bool]:
        """Up to ``limit`` calendars in the order (kind, jrni_id), those after ``after``; and whether more follow."""
        ...

    def replace(self, integration_id: str, calendars: Sequence[JrniCalendar], at: datetime) -> None:
        """Store ``calendars`` as the whole directory (those no longer in it are removed), refreshed at ``at``."""
        ...


class DeadLetterStore(IntegrationState, Protocol):
    """What is known of each dead letter, per integration: written when calsync dead-letters a message (and
    forgotten with the integration)."""

    def record(self, letter: DeadLetter) -> None: ...

    def letters(self, integration_id: str) -> list[DeadLetter]:
        """The integration's recorded dead letters (one query)."""
        ...

    def forget(self, integration_id: str, letter_ids: Collection[str]) -> None:
        """Remove the records of letters that were replayed (or are no longer in their queue)."""
        ...


@dataclass(frozen=True)
class ConnectionChecks:
    """What tests one integration's connections: its JRNI, its Exchange."""

    jrni: JrniCheck
    exchange: ExchangeCheck


@dataclass(frozen=True)
class ReplayOutcome:
    """What a replay moved back, and why it stopped early when it did (the rest stays in the dead-letter queues)."""

    moved: list[DeadLetter]
    stopped: str | None = None


class DeadLetterQueues(Protocol):
    """The dead-letter queues themselves, shared by every integration: read and moved back message by message."""

    def held(self, integration_id: str) -> list[DeadLetter]:
        """The integration's messages found in the dead-letter queues now (those moved there by the queues' redrive
        carry no reason); reading leaves them where they are."""
        ...

    def replay(self, integration_id: str, letter_ids: Collection[str] | None) -> ReplayOutcome:
        """Move the integration's messages (those of ``letter_ids``; None: all) back to their source queues, each
        sent again before it is deleted from its dead-letter queue; the ones moved, and why it stopped when a queue
        could not be reached midway (what was moved is still reported)."""
        ...
