"""Applies the engine's actions through the ports, recording links so that a crash at any point is recoverable.

Order matters: a link is saved as *pending* before an item is created, so a retry after a crash between the
remote write and the final link write finds our stamped item instead of creating a second one. The normal path
still costs exactly one remote request per created item.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from calsync import parallel
from calsync.domain import EventContent, Link, LinkState, PermanentError, Stamp
from calsync.engine import Action, CreateEvent, DeleteEvent, RecoverEvent, SkipUnmapped, UpdateEvent
from calsync.ports import CalendarProvider, LinkStore, RemoteRef


@dataclass
class ExecutionReport:
    """What was done, for the status of the mapping and for the logs."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # mailbox → why it refused us for good


class Executor:
    """Carries out outbound actions for one integration."""

    def __init__(
        self,
        integration_id: str,
        calendar: CalendarProvider,
        links: LinkStore,
    ) -> None:
        self.integration_id = integration_id
        self.calendar = calendar
        self.links = links

    def apply(self, actions: list[Action]) -> ExecutionReport:
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
        if len(writes) <= 1:
            outcomes = [self._outcome(action) for action in writes]
        else:
            outcomes = [
                done.result() for done in [parallel.start(self._outcome, action) for action in writes]
            ]
        for done in outcomes:  # in the actions' order, whatever order they finished in
            if isinstance(done, ExecutionReport):
                report.created += done.created
                report.updated += done.updated
                report.deleted += done.deleted
                report.recovered += done.recovered
                report.failed.update(done.failed)
        crashed = [done for done in outcomes if isinstance(done, BaseException)]
        if crashed:
            raise crashed[0]
        return report

    def _outcome(
        self, action: CreateEvent | RecoverEvent | UpdateEvent | DeleteEvent
    ) -> ExecutionReport | BaseException:
        """One mailbox's action applied: its report, or the exception it ended with (raised by ``apply`` later)."""
        report = ExecutionReport()
        try:
            self._apply_one(action, report)
        except PermanentError as exc:
            report.failed[action.mailbox] = str(exc)
        except Exception as exc:
            return exc
        return report

    def _apply_one(
        self, action: CreateEvent | RecoverEvent | UpdateEvent | DeleteEvent, report: ExecutionReport
    ) -> None:
        if isinstance(action, CreateEvent):
            self._create(action.mailbox, action.content, None)
            report.created.append(action.mailbox)
        elif isinstance(action, RecoverEvent):
            self._recover(action)
            report.recovered.append(action.mailbox)
        elif isinstance(action, UpdateEvent):
            self._update(action)
            report.updated.append(action.mailbox)
        else:
            self._delete(action)
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
        )
        return self.links.save(link)

    def _synced(self, pending: Link, ref: RemoteRef) -> Link:
        return self.links.save(
            replace(pending, state=LinkState.SYNCED, remote_id=ref.remote_id, version=ref.version)
        )

    def _create(self, mailbox: str, content: EventContent, previous: Link | None) -> Link:
        pending = self._pending(mailbox, content, previous)
        return self._synced(pending, self.calendar.create_event(mailbox, content))

    def _recover(self, action: RecoverEvent) -> None:
        found = self.calendar.find_stamped(action.mailbox, action.content.stamp)
        if not found:
            self._create(action.mailbox, action.content, action.link)
            return
        keep, *extra = found
        for duplicate in extra:  # heal, should a duplicate ever exist
            self.calendar.delete_event(action.mailbox, duplicate.remote_id)
        pending = self._pending(action.mailbox, action.content, action.link)
        ref = self.calendar.update_event(action.mailbox, keep.remote_id, action.content)
        if ref is None:
            self._create(action.mailbox, action.content, pending)
        else:
            self._synced(pending, ref)

    def _update(self, action: UpdateEvent) -> None:
        assert action.link.remote_id is not None
        ref = self.calendar.update_event(
            action.mailbox, action.link.remote_id, action.content, if_version=action.if_version
        )
        if ref is None:
            if action.recreate_if_gone:
                self._create(action.mailbox, action.content, action.link)
            # Else the link keeps naming the deleted item, so inbound recognises the deletion as ours to act on.
            return
        self.links.save(
            replace(
                action.link,
                fingerprint=action.content.fingerprint,
                remote_id=ref.remote_id,
                version=ref.version,
                state=LinkState.SYNCED,
            )
        )

    def _delete(self, action: DeleteEvent) -> None:
        link = action.link
        if link.remote_id is not None:
            self.calendar.delete_event(action.mailbox, link.remote_id)
        # A pending link may have an item we never heard back about: remove whatever carries our stamp.
        if link.state is LinkState.PENDING or link.remote_id is None:
            for ref in self.calendar.find_stamped(action.mailbox, Stamp(link.integration_id, link.jrni_key)):
                self.calendar.delete_event(action.mailbox, ref.remote_id)
        self.links.delete(link)
