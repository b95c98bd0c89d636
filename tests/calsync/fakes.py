"""In-memory fakes of the ports (not mocks): they keep state and enforce the same rules as the real adapters."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from calsync.domain import (
    Booking,
    BookingRecords,
    BookingStatus,
    CalsyncError,
    ConflictError,
    EventContent,
    FreeBusy,
    Integration,
    JrniKey,
    Link,
    Mapping,
    MappingStatus,
    NotFoundError,
    PermanentError,
    PreconditionFailedError,
    ResourceKind,
    StaleStateError,
    Stamp,
    TimeWindow,
    UnknownOutcomeError,
)
from calsync.domain.dead_letters import DeadLetter
from calsync.domain.inbound import BlockLink, CalendarEvent, MailboxChanges
from calsync.domain.messages import OutboundMessage, ReconcileMessage
from calsync.domain.reconcile import MappingReconcile, ReconcileRun, Repairs
from calsync.domain.schedules import WorkingSchedule
from calsync.ports import CreatedBlock, JrniCalendar, RemoteRef, ReplayOutcome, StampedItem
from calsync.usecases.admin import AdminDeps


def _drop(table: dict[Any, Any], integration_id: str) -> int:
    """Remove the entries keyed (integration id, ...) of one integration; how many."""
    gone = [key for key in table if key[0] == integration_id]
    for key in gone:
        del table[key]
    return len(gone)


@dataclass
class FakeItem:
    remote_id: str
    version: str
    content: EventContent


class FakeCalendar:
    """Mailboxes of stamped items; counts remote requests like the EWS adapter would make them."""

    name = "fake"

    def __init__(self) -> None:
        self.mailboxes: dict[str, dict[str, FakeItem]] = {}
        self.requests = 0
        self._ids = itertools.count(1)
        # Set to a method name to make the next call to it raise (after doing its work, like a lost reply: the adapter
        # says UnknownOutcomeError).
        self.crash_after: str | None = None

    def _maybe_crash(self, method: str) -> None:
        if self.crash_after == method:
            self.crash_after = None
            raise UnknownOutcomeError(f"no answer after {method}")

    MAX_BATCH = 100

    def create_events(self, mailbox: str, contents: Sequence[EventContent]) -> list[RemoteRef | CalsyncError]:
        self.requests += 1
        made: list[RemoteRef | CalsyncError] = []
        for content in contents:
            remote_id = f"item-{next(self._ids)}"
            self.mailboxes.setdefault(mailbox, {})[remote_id] = FakeItem(remote_id, "v1", content)
            made.append(RemoteRef(remote_id, "v1"))
        return made

    def create_event(self, mailbox: str, content: EventContent) -> RemoteRef:
        self.requests += 1
        remote_id = f"item-{next(self._ids)}"
        self.mailboxes.setdefault(mailbox, {})[remote_id] = FakeItem(remote_id, "v1", content)
        self._maybe_crash("create_event")
        return RemoteRef(remote_id, "v1")

    def update_event(
        self, mailbox: str, remote_id: str, content: EventContent, *, if_version: str | None = None
    ) -> RemoteRef | None:
        self.requests += 1
        item = self.mailboxes.get(mailbox, {}).get(remote_id)
        if item is None:
            return None
        if if_version is not None and item.version != if_version:
            raise ConflictError(f"{remote_id} is at {item.version}, not {if_version}")
        item.content = content
        item.version = f"v{int(item.version[1:]) + 1}"
        self._maybe_crash("update_event")
        return RemoteRef(remote_id, item.version)

    def delete_event(self, mailbox: str, remote_id: str) -> None:
        self.requests += 1
        self.mailboxes.get(mailbox, {}).pop(remote_id, None)
        self._maybe_crash("delete_event")

    def find_stamped(self, mailbox: str, stamp: Stamp) -> list[RemoteRef]:
        self.requests += 1
        return [
            RemoteRef(i.remote_id, i.version)
            for i in self.mailboxes.get(mailbox, {}).values()
            if i.content.stamp == stamp
        ]

    def our_items(self, mailbox: str, integration_id: str) -> list[StampedItem]:
        self.requests += 1
        return [
            StampedItem(i.content.stamp.jrni_key, RemoteRef(i.remote_id, i.version), i.content.window)
            for i in self.mailboxes.get(mailbox, {}).values()
            if i.content.stamp.integration_id == integration_id
        ]

    def contents(self) -> dict[str, list[EventContent]]:
        """Every mailbox's items (empty mailboxes left out), for comparing calendars."""
        return {
            m: sorted((i.content for i in items.values()), key=lambda c: c.fingerprint)
            for m, items in self.mailboxes.items()
            if items
        }


class FakeLinkStore:
    """Links with the same optimistic locking as the DynamoDB store (``version_number``)."""

    def __init__(self) -> None:
        self.links: dict[tuple[str, JrniKey, str], Link] = {}
        self.batches = 0

    def links_for(self, integration_id: str, jrni_key: JrniKey) -> list[Link]:
        return [link for (i, k, _), link in self.links.items() if i == integration_id and k == jrni_key]

    def links_in(self, integration_id: str, mailbox: str) -> list[Link]:
        return [link for (i, _, m), link in self.links.items() if i == integration_id and m == mailbox]

    def versions_of(self, integration_id: str, mailbox: str, item_ids: Sequence[str]) -> dict[str, str]:
        return {
            link.remote_id: link.version
            for link in self.links_in(integration_id, mailbox)
            if link.remote_id in item_ids and link.version
        }

    def save(self, link: Link) -> Link:
        key = (link.integration_id, link.jrni_key, link.mailbox)
        current = self.links.get(key)
        if (current.version_number if current else 0) != link.version_number:
            raise StaleStateError("link changed since it was read")
        stored = replace(link, version_number=link.version_number + 1)
        self.links[key] = stored
        return stored

    def save_all(self, links: Sequence[Link]) -> list[Link]:
        """All or none, as one DynamoDB transaction."""
        for link in links:
            current = self.links.get((link.integration_id, link.jrni_key, link.mailbox))
            if (current.version_number if current else 0) != link.version_number:
                raise StaleStateError("a link changed since it was read")
        self.batches += 1
        return [self.save(link) for link in links]

    def delete(self, link: Link) -> None:
        key = (link.integration_id, link.jrni_key, link.mailbox)
        current = self.links.get(key)
        if current is not None and current.version_number != link.version_number:
            raise StaleStateError("link changed since it was read")
        self.links.pop(key, None)

    def remove_integration(self, integration_id: str) -> int:
        return _drop(self.links, integration_id)


class FakeIntegrations:
    def __init__(self, *integrations: Integration) -> None:
        self.items = {i.id: i for i in integrations}

    def get(self, integration_id: str) -> Integration | None:
        return self.items.get(integration_id)

    def all(self) -> list[Integration]:
        return list(self.items.values())

    def create(self, integration: Integration) -> Integration:
        if integration.id in self.items:
            raise ConflictError(f"integration {integration.id} exists")
        stored = replace(integration, version=1)
        self.items[integration.id] = stored
        return stored

    def update(self, integration: Integration, expected_version: int) -> Integration:
        current = self.items.get(integration.id)
        if current is None:
            raise NotFoundError(f"no integration {integration.id!r}")
        if current.version != expected_version:
            raise PreconditionFailedError(f"integration {integration.id} is at version {current.version}")
        stored = replace(integration, version=expected_version + 1)
        self.items[integration.id] = stored
        return stored

    def delete(self, integration_id: str) -> bool:
        return self.items.pop(integration_id, None) is not None


class FakeMappings:
    """Mappings with the same 1:1 rule as the DynamoDB store, and recorded statuses."""

    def __init__(self, *mappings: Mapping) -> None:
        self.items: dict[tuple[str, ResourceKind, str], Mapping] = {}
        self.status: dict[tuple[str, ResourceKind, str], MappingStatus] = {}
        self.open: dict[tuple[str, ResourceKind, str, str], MappingStatus] = {}  # open problems, by subject
        for mapping in mappings:
            self.put(mapping)

    def mappings(self, integration_id: str) -> list[Mapping]:
        return [m for (i, _, _), m in self.items.items() if i == integration_id]

    def mapping_of(self, integration_id: str, mailbox: str) -> Mapping | None:
        return next((m for m in self.mappings(integration_id) if m.mailbox == mailbox), None)

    def put(self, mapping: Mapping) -> None:
        for key, other in self.items.items():
            if (
                other.mailbox == mapping.mailbox
                and other.integration_id == mapping.integration_id
                and key[1:] != (mapping.kind, mapping.jrni_id)
            ):
                raise ConflictError(f"{mapping.mailbox} is mapped to {other.kind.value} {other.jrni_id}")
        self.items[(mapping.integration_id, mapping.kind, mapping.jrni_id)] = mapping

    def remove(self, integration_id: str, kind: ResourceKind, jrni_id: str) -> bool:
        return self.items.pop((integration_id, kind, jrni_id), None) is not None

    def statuses(self, integration_id: str) -> list[MappingStatus]:
        return [s for (i, _, _), s in self.status.items() if i == integration_id]

    def record_status(self, *statuses: MappingStatus) -> None:
        for status in statuses:
            self.status[(status.integration_id, status.kind, status.jrni_id)] = status
            calendar = (status.integration_id, status.kind, status.jrni_id)
            if status.is_problem:
                self.open[(*calendar, status.subject)] = status
            for subject in status.settled:
                self.open.pop((*calendar, subject), None)

    def problems(self, integration_id: str) -> list[MappingStatus]:
        return [s for (i, _, _, _), s in self.open.items() if i == integration_id]

    def remove_integration(self, integration_id: str) -> int:
        return sum(_drop(table, integration_id) for table in (self.items, self.status, self.open))


class FakeSecrets:
    def __init__(self, **secrets: dict[str, str]) -> None:
        self.secrets = secrets

    def get(self, name: str) -> dict[str, str]:
        if name not in self.secrets:
            raise PermanentError(f"secret {name!r} does not exist")
        return self.secrets[name]


class FakeQueue:
    def __init__(self) -> None:
        self.sent: list[OutboundMessage] = []
        self.correlation_ids: list[str] = []  # one per message sent

    def send(self, messages: list[OutboundMessage], delivery_id: str = "", correlation_id: str = "") -> None:
        self.sent.extend(messages)
        self.correlation_ids.extend(correlation_id for _ in messages)


class FakeBookingSource:
    """JRNI as a dict of bookings; ``calendars`` for the admin API."""

    def __init__(self, *bookings: Booking, calendars: list[JrniCalendar] | None = None) -> None:
        self.bookings = {b.key: b for b in bookings}
        self.listed = calendars or []
        self.linked: dict[JrniKey, BookingRecords] = {}  # what ``records`` answers for a booking
        self.schedules: dict[tuple[ResourceKind, str], WorkingSchedule] = {}  # what ``schedule_of`` answers
        self.reads = 0

    def get_booking(self, company_id: str, booking_id: str) -> Booking | None:
        self.reads += 1
        return self.bookings.get(JrniKey(company_id, booking_id))

    def schedule_of(
        self, company_id: str, kind: ResourceKind, jrni_id: str, window: TimeWindow
    ) -> WorkingSchedule | None:
        return self.schedules.get((kind, jrni_id))

    def find_booking(self, booking_id: str) -> Booking | None:
        self.reads += 1
        return next((b for k, b in self.bookings.items() if k.booking_id == booking_id), None)

    def calendars(self) -> list[JrniCalendar]:
        return list(self.listed)

    def records(self, booking: Booking) -> BookingRecords:
        return self.linked.get(booking.key, BookingRecords())

    def changed_since(self, since: datetime) -> list[Booking]:
        self.reads += 1
        return [b for b in self.bookings.values() if b.updated_at is None or b.updated_at >= since]

    def bookings_of(
        self, company_id: str, kind: ResourceKind, jrni_id: str, window: TimeWindow
    ) -> list[Booking]:
        self.reads += 1
        return [
            b
            for b in self.bookings.values()
            if b.is_active and (kind, jrni_id) in b.calendar_ids() and b.window.overlaps(window)
        ]


class FakeFeed:
    """A mailbox change feed that hands out the changes it was given, once, with a cursor per read."""

    def __init__(self) -> None:
        self.pending: dict[str, list[MailboxChanges]] = {}
        self.reads: list[tuple[str, str | None]] = []

    def push(self, changes: MailboxChanges) -> None:
        self.pending.setdefault(changes.mailbox, []).append(changes)

    def changes(self, mailbox: str, cursor: str | None, window: TimeWindow) -> MailboxChanges:
        self.reads.append((mailbox, cursor))
        queued = self.pending.get(mailbox, [])
        if not queued:
            return MailboxChanges(mailbox, cursor=cursor)
        changes = queued[0]
        return replace(changes, cursor=f"{mailbox}#{len(self.reads)}")

    def acknowledge(self, mailbox: str) -> None:
        """The service stored the cursor: the next read starts after these changes."""
        self.pending[mailbox].pop(0)


class FakeWriter:
    """JRNI's write side on top of a FakeBookingSource (bookings) plus its own blocks."""

    def __init__(self, source: FakeBookingSource) -> None:
        self.source = source
        self.blocks: dict[str, dict[str, object]] = {}  # slot id → block
        self.writes: list[str] = []
        self.refuse_moves = False
        self.crash_after_create = False
        self._ids = itertools.count(900001)

    def create_block(
        self, company_id: str, kind: ResourceKind, jrni_id: str, window: TimeWindow, title: str, marker: str
    ) -> CreatedBlock:
        slot = str(next(self._ids))
        self.blocks[slot] = {
            "company": company_id,
            "kind": kind,
            "jrni_id": jrni_id,
            "window": window,
            "title": title,
            "marker": marker,
        }
        self.writes.append(f"create {title}")
        if self.crash_after_create:
            self.crash_after_create = False
            raise ConnectionError("crash after the JRNI create")
        return CreatedBlock(JrniKey(company_id, "b" + slot), slot)

    def find_block(
        self, company_id: str, kind: ResourceKind, jrni_id: str, window: TimeWindow, marker: str
    ) -> CreatedBlock | None:
        for slot, block in self.blocks.items():
            if block["marker"] == marker:
                return CreatedBlock(JrniKey(company_id, "b" + slot), slot)
        return None

    def move_block(self, company_id: str, slot_id: str, window: TimeWindow, title: str) -> None:
        self.blocks[slot_id].update(window=window, title=title)
        self.writes.append(f"move {title}")

    def remove_block(self, company_id: str, slot_id: str) -> None:
        self.blocks.pop(slot_id, None)
        self.writes.append("remove")

    def move_booking(self, key: JrniKey, window: TimeWindow) -> None:
        if self.refuse_moves:
            raise PermanentError("JRNI refused: the booking was made externally")
        self.source.bookings[key] = replace(self.source.bookings[key], window=window)
        self.writes.append(f"move booking {key}")

    def cancel_booking(self, key: JrniKey, reason: str) -> None:
        self.source.bookings[key] = replace(self.source.bookings[key], status=BookingStatus.CANCELLED)
        self.writes.append(f"cancel booking {key}")

    def confirm_reservation(self, key: JrniKey) -> None:
        self.source.bookings[key] = replace(self.source.bookings[key], status=BookingStatus.CONFIRMED)
        self.writes.append(f"confirm {key}")


class FakeBlockLinks:
    def __init__(self) -> None:
        self.links: dict[tuple[str, str, str], BlockLink] = {}

    def blocks(self, integration_id: str, mailbox: str) -> list[BlockLink]:
        return [b for (i, m, _), b in self.links.items() if i == integration_id and m == mailbox]

    def by_jrni_key(self, integration_id: str, jrni_key: JrniKey) -> BlockLink | None:
        return next(
            (b for b in self.links.values() if b.integration_id == integration_id and b.jrni_key == jrni_key),
            None,
        )

    def save(self, link: BlockLink) -> BlockLink:
        key = (link.integration_id, link.mailbox, link.remote_id)
        current = self.links.get(key)
        if (current.version_number if current else 0) != link.version_number:
            raise StaleStateError("block link changed since it was read")
        stored = replace(link, version_number=link.version_number + 1)
        self.links[key] = stored
        return stored

    def delete(self, link: BlockLink) -> None:
        self.links.pop((link.integration_id, link.mailbox, link.remote_id), None)

    def remove_integration(self, integration_id: str) -> int:
        return _drop(self.links, integration_id)


class FakeCursors:
    def __init__(self) -> None:
        self.cursors: dict[tuple[str, str], str] = {}

    def get(self, integration_id: str, mailbox: str) -> str | None:
        return self.cursors.get((integration_id, mailbox))

    def put(self, integration_id: str, mailbox: str, cursor: str) -> None:
        self.cursors[(integration_id, mailbox)] = cursor

    def remove_integration(self, integration_id: str) -> int:
        return _drop(self.cursors, integration_id)


class FakeEvents:
    def __init__(self) -> None:
        self.published: list[dict[str, object]] = []

    def publish(self, events: list[dict[str, object]]) -> None:
        self.published.extend(events)


class FakeExchange(FakeCalendar):
    """Mailboxes that are also their own change feed (as SyncFolderItems is): every write, calsync's or an
    adviser's, gives the item a new version and is read back once from a cursor, in its latest state.

    ``before_write``, when set, runs once just before calsync's next write: an adviser (or operator) acting while
    calsync is answering a change it read. ``before_read`` likewise, just before calsync's next read of the feed.
    """

    def __init__(self) -> None:
        super().__init__()
        self.meetings: dict[str, dict[str, CalendarEvent]] = {}  # the advisers' own items
        self.log: list[tuple[str, str]] = []  # (mailbox, item id), one entry per change
        self.before_write: Callable[[], None] | None = None
        self.before_read: Callable[[], None] | None = None
        self.writes = 0  # calsync's writes (create, update, delete)
        self._versions = itertools.count(1000)

    def _calsync_writes(self) -> None:
        self.writes += 1
        hook, self.before_write = self.before_write, None
        if hook is not None:
            hook()

    def _changed(self, mailbox: str, remote_id: str) -> None:
        self.log.append((mailbox, remote_id))

    def create_event(self, mailbox: str, content: EventContent) -> RemoteRef:
        self._calsync_writes()
        ref = super().create_event(mailbox, content)
        self._changed(mailbox, ref.remote_id)
        return ref

    def create_events(self, mailbox: str, contents: Sequence[EventContent]) -> list[RemoteRef | CalsyncError]:
        self._calsync_writes()
        made = super().create_events(mailbox, contents)
        for ref in made:
            if isinstance(ref, RemoteRef):
                self._changed(mailbox, ref.remote_id)
        return made

    def update_event(
        self, mailbox: str, remote_id: str, content: EventContent, *, if_version: str | None = None
    ) -> RemoteRef | None:
        self._calsync_writes()
        ref = super().update_event(mailbox, remote_id, content, if_version=if_version)
        if ref is None:
            return None
        # Versions are unique across every writer, as change keys are.
        item = self.mailboxes[mailbox][remote_id]
        item.version = f"v{next(self._versions)}"
        self._changed(mailbox, remote_id)
        return RemoteRef(remote_id, item.version)

    def delete_event(self, mailbox: str, remote_id: str) -> None:
        self._calsync_writes()
        super().delete_event(mailbox, remote_id)
        self._changed(mailbox, remote_id)

    # ---- the adviser, in Outlook

    def adviser_moves(self, mailbox: str, remote_id: str, window: TimeWindow) -> None:
        item = self.mailboxes[mailbox][remote_id]
        item.content = replace(item.content, window=window)
        item.version = f"v{next(self._versions)}"
        self._changed(mailbox, remote_id)

    def adviser_deletes(self, mailbox: str, remote_id: str) -> None:
        self.mailboxes.get(mailbox, {}).pop(remote_id, None)
        self.meetings.get(mailbox, {}).pop(remote_id, None)
        self._changed(mailbox, remote_id)

    def adviser_meeting(
        self, mailbox: str, remote_id: str, window: TimeWindow, subject: str = "Meeting"
    ) -> None:
        """An Outlook meeting of the adviser's own (made, or moved when ``remote_id`` exists)."""
        version = f"v{next(self._versions)}"
        self.meetings.setdefault(mailbox, {})[remote_id] = CalendarEvent(
            remote_id, version, window, FreeBusy.BUSY, subject
        )
        self._changed(mailbox, remote_id)

    # ---- CalendarFeed

    def changes(self, mailbox: str, cursor: str | None, window: TimeWindow) -> MailboxChanges:
        hook, self.before_read = self.before_read, None
        if hook is not None:
            hook()
        start = int(cursor) if cursor else 0
        touched = dict.fromkeys(rid for m, rid in self.log[start:] if m == mailbox)
        upserts: list[CalendarEvent] = []
        removed: list[str] = []
        for remote_id in touched:
            item = self.mailboxes.get(mailbox, {}).get(remote_id)
            meeting = self.meetings.get(mailbox, {}).get(remote_id)
            if item is not None:
                upserts.append(
                    CalendarEvent(
                        remote_id,
                        item.version,
                        item.content.window,
                        item.content.free_busy,
                        item.content.subject,
                        stamp=item.content.stamp,
                    )
                )
            elif meeting is not None:
                upserts.append(meeting)
            else:
                removed.append(remote_id)
        return MailboxChanges(mailbox, upserts, removed, cursor=str(len(self.log)))


class FakeRuns:
    """Reconcile runs in a dict, counted as the DynamoDB store counts them."""

    def __init__(self) -> None:
        self.runs: dict[tuple[str, str], ReconcileRun] = {}
        self.cursors: dict[str, datetime] = {}
        self.mappings: dict[tuple[str, str], MappingReconcile] = {}
        self.progress_seen: list[tuple[str, int, int]] = []

    def start(self, run: ReconcileRun) -> None:
        self.runs[(run.integration_id, run.run_id)] = run

    def get(self, integration_id: str, run_id: str) -> ReconcileRun | None:
        return self.runs.get((integration_id, run_id))

    def runs_of(self, integration_id: str) -> list[ReconcileRun]:
        return sorted(
            (run for (i, _), run in self.runs.items() if i == integration_id),
            key=lambda run: run.started_at,
            reverse=True,
        )

    def mapping_done(self, integration_id: str, run_id: str, repairs: Repairs) -> None:
        run = self.runs[(integration_id, run_id)]
        self.runs[(integration_id, run_id)] = replace(
            run, mappings_done=run.mappings_done + 1, repaired=run.repaired + repairs
        )

    def failed(self, integration_id: str, run_id: str, reason: str) -> None:
        self.runs[(integration_id, run_id)] = replace(self.runs[(integration_id, run_id)], error=reason)

    def jrni_cursor(self, integration_id: str) -> datetime | None:
        return self.cursors.get(integration_id)

    def set_jrni_cursor(self, integration_id: str, at: datetime) -> None:
        self.cursors[integration_id] = at

    def reconciled(self, integration_id: str, mailbox: str, at: datetime, repairs: Repairs) -> None:
        self.mappings[(integration_id, mailbox)] = MappingReconcile(integration_id, mailbox, at, repairs)

    def progress(self, integration_id: str, mailbox: str, total: int, done: int) -> None:
        state = self.mappings.get((integration_id, mailbox)) or MappingReconcile(integration_id, mailbox)
        self.mappings[(integration_id, mailbox)] = replace(state, backfill_total=total, backfill_done=done)
        self.progress_seen.append((mailbox, total, done))

    def mapping_states(self, integration_id: str) -> list[MappingReconcile]:
        return [m for (i, _), m in self.mappings.items() if i == integration_id]

    def remove_integration(self, integration_id: str) -> int:
        cursor = 1 if self.cursors.pop(integration_id, None) is not None else 0
        return _drop(self.runs, integration_id) + _drop(self.mappings, integration_id) + cursor


class FakeReconcileQueue:
    def __init__(self) -> None:
        self.sent: list[ReconcileMessage] = []

    def send(self, messages: list[ReconcileMessage]) -> None:
        self.sent.extend(messages)


def fake_admin_deps(integration: Integration, **changes: Any) -> AdminDeps:
    """The admin API's dependencies on fakes: ``integration`` stored, nothing mapped, no streaming task; ``changes``
    replace any of them (a ``mappings`` or ``runs`` given is also what deleting the integration empties)."""
    mappings = changes.pop("mappings", FakeMappings())
    runs = changes.pop("runs", FakeRuns())
    made: dict[str, Any] = {
        "integrations": FakeIntegrations(integration),
        "mappings": mappings,
        "bookings_for": lambda _: FakeBookingSource(),
        "clock": lambda: datetime(2025, 7, 1, tzinfo=UTC),
        "runs": runs,
        "reconcile_queue": FakeReconcileQueue(),
        "streaming": None,
        "integration_state": (mappings, FakeLinkStore(), FakeBlockLinks(), FakeCursors(), runs),
    }
    return AdminDeps(**{**made, **changes})


class FakeDirectory:
    """A copy of JRNI's directory per integration, paged in (kind, jrni_id) order as the DynamoDB store pages it."""

    def __init__(self) -> None:
        self.calendars: dict[str, list[JrniCalendar]] = {}
        self.at: dict[str, datetime] = {}
        self.replaced = 0

    def refreshed_at(self, integration_id: str) -> datetime | None:
        return self.at.get(integration_id)

    def page(
        self, integration_id: str, *, after: tuple[ResourceKind, str] | None, limit: int
    ) -> tuple[list[JrniCalendar], bool]:
        ordered = sorted(self.calendars.get(integration_id, []), key=lambda c: (c.kind.value, c.jrni_id))
        if after is not None:
            ordered = [c for c in ordered if (c.kind.value, c.jrni_id) > (after[0].value, after[1])]
        return ordered[:limit], len(ordered) > limit

    def replace(self, integration_id: str, calendars: Sequence[JrniCalendar], at: datetime) -> None:
        self.calendars[integration_id] = list(calendars)
        self.at[integration_id] = at
        self.replaced += 1


class FakeDeadLetterStore:
    def __init__(self) -> None:
        self.records: dict[tuple[str, str], DeadLetter] = {}

    def record(self, letter: DeadLetter) -> None:
        self.records[(letter.integration_id, letter.id)] = letter

    def letters(self, integration_id: str) -> list[DeadLetter]:
        return [letter for (i, _), letter in self.records.items() if i == integration_id]

    def forget(self, integration_id: str, letter_ids: Collection[str]) -> None:
        for letter_id in letter_ids:
            self.records.pop((integration_id, letter_id), None)

    def remove_integration(self, integration_id: str) -> int:
        return _drop(self.records, integration_id)


class FakeDeadLetterQueues:
    """Dead-letter queues shared by every integration: the letters they hold, and where a replay sent each one."""

    def __init__(self) -> None:
        self.held_letters: list[DeadLetter] = []
        self.replayed: list[DeadLetter] = []
        self.unreachable: str | None = None  # set: a replay stops before moving anything, saying this

    def held(self, integration_id: str) -> list[DeadLetter]:
        return [letter for letter in self.held_letters if letter.integration_id == integration_id]

    def replay(self, integration_id: str, letter_ids: Collection[str] | None) -> ReplayOutcome:
        if self.unreachable is not None:
            return ReplayOutcome([], self.unreachable)
        moved = [
            letter for letter in self.held(integration_id) if letter_ids is None or letter.id in letter_ids
        ]
        self.held_letters = [letter for letter in self.held_letters if letter not in moved]
        self.replayed += moved
        return ReplayOutcome(moved)
