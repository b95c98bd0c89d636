"""The outbound use case with in-memory fakes: read fresh, plan, apply, record what the operator will see."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from calsync.domain import BookingStatus, JrniKey, Mapping, PermanentError, ResourceKind, SyncState
from calsync.domain.messages import OutboundMessage
from calsync.usecases.sync_booking import BookingDeps, sync_booking
from tests.calsync.builders import ALICE, INTEGRATION, MAPPINGS, ROOM, booking, integration
from tests.calsync.fakes import (
    FakeBlockLinks,
    FakeBookingSource,
    FakeCalendar,
    FakeIntegrations,
    FakeLinkStore,
    FakeMappings,
)

NOW = datetime(2025, 7, 1, 12, tzinfo=UTC)


def services(source: FakeBookingSource, calendar: FakeCalendar | None = None) -> BookingDeps:
    return BookingDeps(
        integrations=FakeIntegrations(integration()),
        mappings=FakeMappings(*MAPPINGS),
        links=FakeLinkStore(),
        block_links=FakeBlockLinks(),
        calendar_for=lambda _: calendar or FakeCalendar(),
        bookings_for=lambda _: source,
        clock=lambda: NOW,
    )


def message(booking_id: str = "501", trigger: str = "create") -> OutboundMessage:
    return OutboundMessage(INTEGRATION, JrniKey("100", booking_id), trigger)


def test_a_booking_is_read_fresh_rendered_and_written_to_each_mapped_calendar() -> None:
    details = {"service_name": "Mortgage advice", "client_name": "Sam Sample", "company_name": "High Street"}
    fresh = replace(booking(resource="21"), details=details)
    calendar = FakeCalendar()
    svc = services(FakeBookingSource(fresh), calendar)

    sync_booking(svc, message(trigger="modify"))  # the trigger does not matter: JRNI's current state does

    contents = calendar.contents()
    assert sorted(contents) == [ALICE, ROOM]
    [item] = contents[ALICE]
    assert item.subject == "Mortgage advice: Sam Sample"
    assert "High Street" in item.body and item.free_busy.value == "Busy"
    statuses = {(s.kind, s.jrni_id): s for s in svc.mappings.statuses(INTEGRATION)}
    assert statuses[(ResourceKind.PERSON, "11")].state is SyncState.OK
    assert statuses[(ResourceKind.RESOURCE, "21")].detail == f"booking 100/501 created in {ROOM}"


def test_a_booking_for_an_unmapped_adviser_is_skipped_and_shows_in_the_status() -> None:
    calendar = FakeCalendar()
    svc = services(FakeBookingSource(booking(person="99")), calendar)

    sync_booking(svc, message())

    assert calendar.contents() == {}
    [status] = svc.mappings.statuses(INTEGRATION)
    assert (status.kind, status.jrni_id, status.state) == (ResourceKind.PERSON, "99", SyncState.SKIPPED)
    assert "no mailbox is mapped" in status.detail and status.at == NOW


def test_a_booking_gone_from_jrni_is_removed_from_outlook() -> None:
    source, calendar = FakeBookingSource(booking()), FakeCalendar()
    svc = services(source, calendar)
    sync_booking(svc, message())
    source.bookings.clear()

    sync_booking(svc, message(trigger="cancelled"))

    assert calendar.contents() == {}
    assert svc.links.links_for(INTEGRATION, JrniKey("100", "501")) == []


def test_a_permanent_failure_is_recorded_against_the_mapping_and_raised() -> None:
    class Refusing(FakeCalendar):
        def create_event(self, mailbox, content):  # type: ignore[no-untyped-def]
            raise PermanentError(f"the service account may not impersonate {mailbox}")

    svc = services(FakeBookingSource(booking(status=BookingStatus.RESERVATION)), Refusing())
    with pytest.raises(PermanentError):
        sync_booking(svc, message())
    [status] = svc.mappings.statuses(INTEGRATION)
    assert status.state is SyncState.ERROR and "may not impersonate alice@example.com" in status.detail


def test_a_template_that_cannot_render_fails_the_booking_for_good_and_says_why() -> None:
    # Given an integration whose subject template names a field no booking has (stored before templates were checked)
    svc = services(FakeBookingSource(booking()))
    svc.integrations.create(replace(integration(), id="int-2", subject_template="{{ colour }}"))
    svc.mappings.put(Mapping("int-2", ResourceKind.PERSON, "11", ALICE))
    # When the booking is synced, it fails for good (dead-lettered, not retried)
    with pytest.raises(PermanentError, match="subject template"):
        sync_booking(svc, OutboundMessage("int-2", JrniKey("100", "501"), "create"))
    # Then the staff member's status says which template is wrong, and nothing was written to Outlook
    [status] = svc.mappings.statuses("int-2")
    assert (
        status.state is SyncState.ERROR and "subject template" in status.detail and "colour" in status.detail
    )
    assert svc.links.links_for("int-2", JrniKey("100", "501")) == []


def test_an_unknown_integration_can_never_succeed() -> None:
    svc = services(FakeBookingSource(booking()))
    with pytest.raises(PermanentError, match="no integration"):
        sync_booking(svc, OutboundMessage("gone", JrniKey("100", "501"), "create"))


def test_a_jrni_block_another_integration_made_is_never_mirrored_back_to_outlook() -> None:
    """Two integrations on one JRNI company sharing a mailbox: one's Outlook item is the other's block, which must
    not come back as an item of the first (and so on, for ever)."""
    from calsync.domain import BookingKind

    block = replace(
        booking(kind=BookingKind.BLOCK),
        details={"private_note": "Team meeting\ncalsync:other-integration:1a2b3c"},
    )
    calendar = FakeCalendar()
    sync_booking(services(FakeBookingSource(block), calendar), message())
    assert calendar.contents() == {}
