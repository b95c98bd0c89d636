"""Applies inbound actions to JRNI, recording block links so that a crash at any point is recoverable.

As outbound: a block link is saved as *pending* before JRNI is asked to create the block, and the block carries our
marker in its private note, so a retry after a crash finds the block instead of making a second one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from calsync.domain import Integration, JrniKey, LinkState, Mapping, PermanentError
from calsync.domain.inbound import BlockLink
from calsync.engine.inbound import (
    CancelBooking,
    ConfirmReservation,
    CreateBlock,
    InboundAction,
    MoveBlock,
    MoveBooking,
    Notify,
    RemoveBlock,
    RemoveStrayItem,
    RevertItem,
)
from calsync.ports import BlockLinkStore, BookingWriter


@dataclass
class InboundReport:
    created: int = 0
    moved: int = 0
    removed: int = 0
    bookings_changed: list[JrniKey] = field(default_factory=list)
    reverted: list[RevertItem] = field(default_factory=list)  # items to put back as JRNI has them
    strays: list[RemoveStrayItem] = field(
        default_factory=list
    )  # items of ours no booking owns here: to remove
    notifications: list[Notify] = field(default_factory=list)
    refused: dict[JrniKey, str] = field(default_factory=dict)  # JRNI refused a booking change (reverted): why

    @property
    def jrni_writes(self) -> int:
        return self.created + self.moved + self.removed + len(self.bookings_changed)


class InboundExecutor:
    """Carries out inbound actions for one integration and one mailbox."""

    def __init__(
        self,
        integration: Integration,
        mapping: Mapping,
        company_id: str,
        writer: BookingWriter,
        blocks: BlockLinkStore,
        marker_of: Callable[[str], str],
    ) -> None:
        self.integration = integration
        self.mapping = mapping
        self.company_id = company_id  # the JRNI company the mapped staff member or resource belongs to
        self.writer = writer
        self.blocks = blocks
        self.marker_of = marker_of

    def apply(self, actions: list[InboundAction]) -> InboundReport:
        """Apply in order; what goes back to Outlook (RevertItem, RemoveStrayItem) is returned in the report for the
        caller to write."""
        report = InboundReport()
        for action in actions:
            if isinstance(action, CreateBlock):
                self._create(action)
                report.created += 1
            elif isinstance(action, MoveBlock):
                self._move(action)
                report.moved += 1
            elif isinstance(action, RemoveBlock):
                self._remove(action.link)
                report.removed += 1
            elif isinstance(action, RevertItem):
                report.reverted.append(action)
            elif isinstance(action, RemoveStrayItem):
                report.strays.append(action)
            elif isinstance(action, MoveBooking | CancelBooking | ConfirmReservation):
                self._booking_change(report, action)
            elif isinstance(action, Notify):
                report.notifications.append(action)
        return report

    def _booking_change(
        self, report: InboundReport, action: MoveBooking | CancelBooking | ConfirmReservation
    ) -> None:
        try:
            if isinstance(action, MoveBooking):
                self.writer.move_booking(action.jrni_key, action.window)
            elif isinstance(action, CancelBooking):
                self.writer.cancel_booking(action.jrni_key, "Deleted in Outlook")
            else:
                self.writer.confirm_reservation(action.jrni_key)
        except PermanentError as exc:
            # JRNI refuses (a cancelled booking, or one made externally): JRNI's version goes back to Outlook.
            report.refused[action.jrni_key] = str(exc)
            version = None if isinstance(action, CancelBooking) else action.item_version
            report.reverted.append(
                RevertItem(action.jrni_key, self.mapping.mailbox, f"JRNI refused: {exc}", version)
            )
            return
        report.bookings_changed.append(action.jrni_key)

    def _create(self, action: CreateBlock) -> None:
        event, mapping = action.event, action.mapping
        pending = self.blocks.save(
            BlockLink(
                integration_id=self.integration.id,
                mailbox=mapping.mailbox,
                remote_id=event.remote_id,
                jrni_key=None,
                slot_id="",
                window=action.window,
                title=action.title,
                version=event.version,
                series_id=event.series_id,
                state=LinkState.PENDING,
            )
        )
        created = self.writer.create_block(
            self.company_id,
            mapping.kind,
            mapping.jrni_id,
            action.window,
            action.title,
            self.marker_of(event.remote_id),
        )
        self.blocks.save(
            replace(pending, jrni_key=created.jrni_key, slot_id=created.slot_id, state=LinkState.SYNCED)
        )

    def _move(self, action: MoveBlock) -> None:
        link = self._resolved(action.link)
        if link is None:  # never created after all: make it now
            self._create(CreateBlock(self.mapping, action.event, action.window, action.title))
            return
        self.writer.move_block(self._company(link), link.slot_id, action.window, action.title)
        self.blocks.save(
            replace(link, window=action.window, title=action.title, version=action.event.version)
        )

    def _remove(self, link: BlockLink) -> None:
        resolved = self._resolved(link)
        if resolved is not None and resolved.slot_id:
            self.writer.remove_block(self._company(resolved), resolved.slot_id)
        self.blocks.delete(resolved or link)

    def _resolved(self, link: BlockLink) -> BlockLink | None:
        """A pending link completed from JRNI (the block made before a crash), or None when there is no block."""
        if link.state is LinkState.SYNCED:
            return link
        found = self.writer.find_block(
            self.company_id,
            self.mapping.kind,
            self.mapping.jrni_id,
            link.window,
            self.marker_of(link.remote_id),
        )
        if found is None:
            self.blocks.delete(link)
            return None
        return self.blocks.save(
            replace(link, jrni_key=found.jrni_key, slot_id=found.slot_id, state=LinkState.SYNCED)
        )

    def _company(self, link: BlockLink) -> str:
        return link.jrni_key.company_id if link.jrni_key is not None else self.company_id
