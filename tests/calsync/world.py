"""JRNI, Exchange (a mailbox that is its own change feed) and calsync's state in memory, for tests that interleave
Outlook changes, JRNI changes and calsync's answers."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from calsync.domain import JrniKey, ResourceKind, TimeWindow
from calsync.domain.messages import InboundMessage, OutboundMessage, WakeReason
from calsync.ports import JrniCalendar
from calsync.usecases.sync_booking import BookingDeps, sync_booking
from calsync.usecases.sync_mailbox import MailboxDeps, sync_mailbox
from tests.calsync.builders import ALICE, INTEGRATION, MAPPINGS, ROOM, booking, integration
from tests.calsync.fakes import (
    FakeBlockLinks,
    FakeBookingSource,
    FakeCursors,
    FakeEvents,
    FakeExchange,
    FakeIntegrations,
    FakeLinkStore,
    FakeMappings,
    FakeWriter,
)

NOW = datetime(2025, 7, 1, 8, tzinfo=UTC)
CALENDARS = [
    JrniCalendar(ResourceKind.PERSON, "11", "100", "Alice"),
    JrniCalendar(ResourceKind.RESOURCE, "21", "100", "Room"),
]


class World:
    """JRNI, Exchange (a mailbox that is its own change feed) and calsync's state, in memory."""

    def __init__(self, **options: Any) -> None:
        self.source = FakeBookingSource(calendars=CALENDARS)
        self.exchange = FakeExchange()
        self.writer = FakeWriter(self.source)
        self.integrations = FakeIntegrations(integration(**options))
        self.services = MailboxDeps(
            booking=BookingDeps(
                integrations=self.integrations,
                mappings=FakeMappings(*MAPPINGS),
                links=FakeLinkStore(),
                block_links=FakeBlockLinks(),
                calendar_for=lambda _: self.exchange,
                bookings_for=lambda _: self.source,
                clock=lambda: NOW,
            ),
            feed_for=lambda _: self.exchange,
            writer_for=lambda _: self.writer,
            cursors=FakeCursors(),
            events=FakeEvents(),
        )

    def book(self, **fields: Any) -> JrniKey:
        made = booking(**fields)
        self.source.bookings[made.key] = made
        sync_booking(self.services.booking, OutboundMessage(INTEGRATION, made.key, "create"))
        self.notified(ALICE)
        self.notified(ROOM)  # calsync's own creates coming back
        return made.key

    def item_of(self, key: JrniKey, mailbox: str = ALICE) -> tuple[str, TimeWindow, str]:
        [(remote_id, item)] = [
            (rid, i) for rid, i in self.exchange.mailboxes[mailbox].items() if i.content.stamp.jrni_key == key
        ]
        return remote_id, item.content.window, item.version

    def notified(self, mailbox: str = ALICE) -> Any:
        return sync_mailbox(self.services, InboundMessage(INTEGRATION, mailbox, WakeReason.NOTIFICATION))

    def lock(self, on: bool) -> None:
        self.integrations.items[INTEGRATION] = replace(
            self.integrations.items[INTEGRATION], appointment_lock=on
        )


def later(window: TimeWindow, hours: int) -> TimeWindow:
    return TimeWindow(window.start + timedelta(hours=hours), window.end + timedelta(hours=hours))
