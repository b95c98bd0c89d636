"""Applies the engine's actions through the ports, recording links so that a crash at any point is recoverable.

Order matters: a link is saved as *pending* before an item is created, so a retry after a crash between the
remote write and the final link write finds our stamped item instead of creating a second one. The normal path
still costs exactly one remote request per created item.

At most one item per booking and mailbox, whatever the timing: a retry trusts an empty search for our stamp only once
an earlier write can no longer land (``RecoverEvent.create_after``), and every update or removal also looks for our
stamped items (at the same time as the write, so it costs no waiting) and removes any extra one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from datetime import datetime

from calsync import parallel
from calsync.domain import (
    EventContent,
    Link,
    LinkState,
    PermanentError,
    RetryableError,
    Stamp,
    UnknownOutcomeError,
)
from calsync.engine import Action, CreateEvent, DeleteEvent, RecoverEvent, SkipUnmapped, UpdateEvent
from calsync.ports import NO_TELEMETRY, CalendarProvider, LinkStore, Metric, RemoteRef, Telemetry

logger = logging.getLogger(__name__)

Search = Future[list[RemoteRef]]

# Links saved in one transaction (DynamoDB's TransactWriteItems takes 100 items).
MAX_LINKS_AT_ONCE = 100


def _stamp_of(action: UpdateEvent | DeleteEvent) -> Stamp:
    if isinstance(action, UpdateEvent):
        return action.content.stamp
    return Stamp(action.link.integration_id, action.link.jrni_key)


@dataclass
class ExecutionReport:
    """What was done, for the status of the mapping and for the logs."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # mailbox → why it refused us for good
    extras_removed: list[str] = field(
        default_factory=list
    )  # mailboxes where a second item of ours was removed


class Executor:
    """Carries out outbound actions for one integration."""

    def __init__(
        self,
        integration_id: str,
        calendar: CalendarProvider,
        links: LinkStore,
        clock: Callable[[], datetime],
        telemetry: Telemetry = NO_TELEMETRY,
    ) -> None:
        self.integration_id = integration_id
        self.calendar = calendar
        self.links = links
        self.clock = clock
        self.telemetry = telemetry

    def apply(self, actions: Sequence[Action]) -> ExecutionReport:
        """Apply ``actions``: one per mailbox, the mailboxes at the same time (a booking in an adviser's and a room's
        calendar costs one Exchange round trip, not two; a booking is in a handful of calendars at most). A mailbox
        that refuses us for good (PermanentError) does not stop the others: its reason is kept in ``report.failed``.
        Any other exception is raised once every mailbox is done, each one's outcome recorded in its link."""
        report = ExecutionReport()
        writes: list[CreateEvent | RecoverEvent | UpdateEvent | DeleteEvent] = []
        for action in actions:
            if isinstance(action, SkipUnmapped):
                report.skipped.append(f"{action.kind.value}:{action.jrni_id}")
            else:
                writes.append(action)
        # Our stamped items in each mailbox an update or a removal touches, looked up while the writes are under way
        # (started first, so that no write waits on a search queued behind it).
        searches = [
            parallel.start(self.calendar.find_stamped, action.mailbox, _stamp_of(action))
            if isinstance(action, UpdateEvent | DeleteEvent)
            else None
            for action in writes
        ]
        if len(writes) <= 1:
            outcomes = [
                self._outcome(action, search) for action, search in zip(writes, searches, strict=True)
            ]
        else:
            outcomes = [
                done.result()
                for done in [
                    parallel.start(self._outcome, action, search)
                    for action, search in zip(writes, searches, strict=True)
                ]
            ]
        for done in outcomes:  # in the actions' order, whatever order they finished in
            if isinstance(done, ExecutionReport):
                report.created += done.created
                report.updated += done.updated
                report.deleted += done.deleted
                report.recovered += done.recovered
                report.failed.update(done.failed)
                report.extras_removed += done.extras_removed
        self._count(report)  # what was written, even when another mailbox crashed
        crashed = [done for done in outcomes if isinstance(done, BaseException)]
        if crashed:
            raise crashed[0]
        return report

    def _count(self, report: ExecutionReport) -> None:
        written = len(report.created) + len(report.updated) + len(report.recovered)
        for name, value in (
            (Metric.ITEMS_WRITTEN, written),
            (Metric.ITEMS_REMOVED, len(report.deleted)),
            (Metric.EXTRAS_REMOVED, len(report.extras_removed)),
        ):
            if value:
                self.telemetry.count(name, value, integration_id=self.integration_id)

    def create_all(
        self,
        mailbox: str,
        actions: Sequence[CreateEvent],
        on_progress: Callable[[int], None] = lambda done: None,
    ) -> ExecutionReport:
        """Create many items in one mailbox (a backfill), ``calendar.MAX_BATCH`` per remote request, as crash-safe as
        one at a time: the batch's links are saved as pending first (one transaction), then the items are written
        (one request), then the links say synced (one transaction). A retry after a crash finds each item by its
        stamp. ``on_progress``: told how many items are done after each batch."""
        report = ExecutionReport()
        size = max(1, min(self.calendar.MAX_BATCH, MAX_LINKS_AT_ONCE))
        done = 0
        for start in range(0, len(actions), size):
            chunk = list(actions[start : start + size])
            now = self.clock()
            pending = self.links.save_all(
                [
                    Link(
                        integration_id=self.integration_id,
                        jrni_key=action.content.stamp.jrni_key,
                        mailbox=mailbox,
                        state=LinkState.PENDING,
                        fingerprint=action.content.fingerprint,
                        provider=self.calendar.name,
                        written_at=now,
                        templates=action.content.templates,
                        placement=action.content.placement,
                    )
                    for action in chunk
                ]
            )
            results = self.calendar.create_events(mailbox, [action.content for action in chunk])
            synced, refused = [], []
            for link, result in zip(pending, results, strict=True):
                if isinstance(result, RemoteRef):
                    synced.append(
                        replace(
                            link, state=LinkState.SYNCED, remote_id=result.remote_id, version=result.version
                        )
                    )
                else:
                    # Exchange answered for this item, and did not write it: the next run may create it at once.
                    refused.append(replace(link, written_at=None))
                    report.failed.setdefault(mailbox, str(result))
            self.links.save_all(synced + refused)
            report.created += [mailbox] * len(synced)
            if synced:
                self.telemetry.count(Metric.ITEMS_WRITTEN, len(synced), integration_id=self.integration_id)
            done += len(chunk)
            on_progress(done)
        return report

    def _outcome(
        self, action: CreateEvent | RecoverEvent | UpdateEvent | DeleteEvent, search: Search | None
    ) -> ExecutionReport | BaseException:
        """One mailbox's action applied: its report, or the exception it ended with (raised by ``apply`` later)."""
        report = ExecutionReport()
        try:
            self._apply_one(action, report, search)
        except PermanentError as exc:
            report.failed[action.mailbox] = str(exc)
        except Exception as exc:
            return exc
        return report

    def _apply_one(
        self,
        action: CreateEvent | RecoverEvent | UpdateEvent | DeleteEvent,
        report: ExecutionReport,
        search: Search | None,
    ) -> None:
        if isinstance(action, CreateEvent):
            self._create(action.mailbox, action.content, None)
            report.created.append(action.mailbox)
        elif isinstance(action, RecoverEvent):
            self._recover(action)
            report.recovered.append(action.mailbox)
        elif isinstance(action, UpdateEvent):
            assert search is not None
            self._update(action, report, search)
            report.updated.append(action.mailbox)
        else:
            assert search is not None
            self._delete(action, search)
            report.deleted.append(action.mailbox)

    def _pending(self, mailbox: str, content: EventContent, previous: Link | None) -> Link:
        link = Link(
            integration_id=self.integration_id,
            jrni_key=content.stamp.jrni_key,
            mailbox=mailbox,
            state=LinkState.PENDING,
            fingerprint=content.fingerprint,
            provider=self.calendar.name,
            version_number=previous.version_number if previous else 0,
            written_at=self.clock(),
            templates=content.templates,
            placement=content.placement,
        )
        return self.links.save(link)

    def _synced(self, pending: Link, ref: RemoteRef) -> Link:
        return self.links.save(
            replace(pending, state=LinkState.SYNCED, remote_id=ref.remote_id, version=ref.version)
        )

    def _create(self, mailbox: str, content: EventContent, previous: Link | None) -> Link:
        pending = self._pending(mailbox, content, previous)
        try:
            ref = self.calendar.create_event(mailbox, content)
        except UnknownOutcomeError:
            raise  # the write may still land: the pending link keeps when it was sent
        except Exception:
            # Exchange answered, and nothing was written: a retry may trust an empty search at once.
            self.links.save(replace(pending, written_at=None))
            raise
        return self._synced(pending, ref)

    def _recover(self, action: RecoverEvent) -> None:
        found = self.calendar.find_stamped(action.mailbox, action.content.stamp)
        if not found:
            now = self.clock()
            if action.create_after is not None and now < action.create_after:
                wait = (action.create_after - now).total_seconds()
                raise RetryableError(
                    f"booking {action.content.stamp.jrni_key}: an earlier write to {action.mailbox} has not shown up "
                    f"yet and may still land (Exchange finishes what it started); looking again in {wait:.0f} s",
                    delay_seconds=wait,
                )
            self._create(action.mailbox, action.content, action.link)
            return
        keep, *extra = found
        self._remove_extras(action.mailbox, action.content.stamp, extra)
        pending = self._pending(action.mailbox, action.content, action.link)
        ref = self.calendar.update_event(action.mailbox, keep.remote_id, action.content)
        if ref is None:
            self._create(action.mailbox, action.content, pending)
        else:
            self._synced(pending, ref)

    def _update(self, action: UpdateEvent, report: ExecutionReport, search: Search) -> None:
        assert action.link.remote_id is not None
        # Pending while the write is out: should no answer come (a crash, a timeout), the link no longer claims the
        # item shows what it showed, and the next sync of the booking brings the item to JRNI's version whatever it
        # is by then (even the version it had before).
        link = self.links.save(replace(action.link, state=LinkState.PENDING, written_at=self.clock()))
        try:
            ref = self.calendar.update_event(
                action.mailbox, action.link.remote_id, action.content, if_version=action.if_version
            )
        except UnknownOutcomeError:
            raise
        except Exception:
            self.links.save(replace(link, state=LinkState.SYNCED))  # Exchange answered: the item is as it was
            raise
        kept = action.link.remote_id if ref is None else ref.remote_id
        if ref is None and action.recreate_if_gone:
            kept = self._create(action.mailbox, action.content, link).remote_id or kept
        elif ref is None:
            link = self.links.save(replace(link, state=LinkState.SYNCED))
        extra = [found for found in search.result() if found.remote_id != kept]
        if self._remove_extras(action.mailbox, action.content.stamp, extra):
            report.extras_removed.append(action.mailbox)
        if ref is None:
            # Else (not re-created) the link keeps naming the deleted item, so inbound recognises the deletion as
            # ours to act on.
            return
        self.links.save(
            replace(
                link,
                fingerprint=action.content.fingerprint,
                templates=action.content.templates,
                placement=action.content.placement,
                remote_id=ref.remote_id,
                version=ref.version,
                state=LinkState.SYNCED,
            )
        )

    def _remove_extras(self, mailbox: str, stamp: Stamp, extra: list[RemoteRef]) -> bool:
        for duplicate in extra:
            logger.warning(
                "removing a second item of one booking",
                extra={"mailbox": mailbox, "booking": str(stamp.jrni_key), "item": duplicate.remote_id},
            )
            self.calendar.delete_event(mailbox, duplicate.remote_id)
        return bool(extra)

    def _delete(self, action: DeleteEvent, search: Search) -> None:
        link = action.link
        if link.state is LinkState.SYNCED:
            # Pending while the removal is out: should it end without an answer, the link no longer claims the item
            # is there, and a booking that comes back to this calendar is written again.
            link = self.links.save(replace(link, state=LinkState.PENDING, written_at=self.clock()))
        if link.remote_id is not None:
            self.calendar.delete_event(action.mailbox, link.remote_id)
        # Whatever carries our stamp goes too: a pending link's item we never heard back about, or a second item.
        for ref in search.result():
            if ref.remote_id != link.remote_id:
                self.calendar.delete_event(action.mailbox, ref.remote_id)
        self.links.delete(link)
