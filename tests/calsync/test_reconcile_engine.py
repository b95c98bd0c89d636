"""The deep reconcile's planning of one mailbox (``plan_mailbox``): re-rendering the items of bookings still to come
after the integration's templates changed, and nothing else."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from calsync.domain import Booking, BookingKind, EventContent, Link, LinkState, TimeWindow
from calsync.engine import UpdateEvent
from calsync.engine.reconcile import Listed, MailboxPlan, plan_mailbox
from calsync.rendering import templates_of
from calsync.usecases.sync_booking import content_of as rendered_content
from tests.calsync.builders import ALICE, INTEGRATION, MAPPINGS, at, booking, integration
from tests.calsync.fakes import FakeBookingSource

NOW = at(1, 8)
WINDOW = TimeWindow(NOW, NOW + timedelta(days=90))
MAPPING = MAPPINGS[0]  # Alice's
BEFORE = integration(subject_template="Appointment")
AFTER = integration(subject_template="Appointment with the bank")


def content_of(integration: object, b: Booking) -> EventContent:
    """The item the booking's templates make (JRNI's records unavailable: the booking's own fields)."""
    return rendered_content(integration, b, FakeBookingSource())  # type: ignore[arg-type]


def written(content: EventContent) -> tuple[Link, Listed]:
    """The link and the listed item of ``content`` as the executor wrote it into Alice's mailbox."""
    link = Link(
        INTEGRATION,
        content.stamp.jrni_key,
        ALICE,
        LinkState.SYNCED,
        content.fingerprint,
        "ews",
        remote_id=f"item-{content.stamp.jrni_key.booking_id}",
        version="ck-1",
        templates=content.templates,
        placement=content.placement,
    )
    return link, Listed(content.stamp.jrni_key, f"item-{content.stamp.jrni_key.booking_id}", content.window)


def plan(b: Booking, link: Link, item: Listed) -> MailboxPlan:
    return plan_mailbox(
        MAPPING, {b.key: (b, content_of(AFTER, b))}, [link], [item], WINDOW, now=NOW, appointment_lock=True
    )


def test_after_a_template_change_the_item_of_a_booking_to_come_is_re_rendered_in_place() -> None:
    coming = booking("601", start=at(8, 10))
    link, item = written(content_of(BEFORE, coming))

    result = plan(coming, link, item)

    [update] = result.actions
    assert isinstance(update, UpdateEvent) and update.rerender
    assert update.link == link and update.content.subject == "Appointment with the bank"
    assert update.content.window == item.window  # the item keeps its time: never a move
    assert update.content.free_busy == content_of(BEFORE, coming).free_busy
    assert update.content.templates == templates_of(AFTER).fingerprint != link.templates


def test_a_booking_under_way_is_re_rendered_too_as_it_has_not_ended() -> None:
    ongoing = booking("602", start=NOW - timedelta(minutes=30), minutes=60)
    link, item = written(content_of(BEFORE, ongoing))

    [update] = plan(ongoing, link, item).actions

    assert isinstance(update, UpdateEvent) and update.rerender


def test_the_item_of_a_booking_that_has_ended_keeps_the_words_it_was_written_with() -> None:
    ended = booking("603", start=NOW - timedelta(hours=3), minutes=60)
    link, item = written(content_of(BEFORE, ended))

    assert plan(ended, link, item).actions == []


def test_nothing_is_re_rendered_when_the_templates_are_the_ones_it_was_written_with() -> None:
    coming = booking("604", start=at(9, 10))
    link, item = written(content_of(AFTER, coming))

    assert plan(coming, link, item).actions == []


def test_a_booking_moved_in_jrni_with_new_templates_is_an_ordinary_update_not_a_re_render() -> None:
    coming = booking("605", start=at(9, 10))
    link, item = written(content_of(BEFORE, coming))
    moved = replace(coming, window=TimeWindow(at(9, 14), at(9, 15)))

    [update] = plan(moved, link, item).actions

    assert isinstance(update, UpdateEvent) and not update.rerender
    assert update.content.window == moved.window  # an update may move the item; a re-render never does


def test_words_changed_in_jrni_with_the_same_templates_are_an_ordinary_update() -> None:
    coming = booking("606", start=at(9, 10))
    link, item = written(content_of(AFTER, coming))
    renamed = replace(link, fingerprint="an-older-rendering")  # e.g. the client's name changed in JRNI since

    [update] = plan(coming, renamed, item).actions

    assert isinstance(update, UpdateEvent) and not update.rerender


def test_a_link_written_before_templates_were_recorded_is_updated_as_before() -> None:
    ended = booking("607", start=NOW - timedelta(hours=3), minutes=60)
    link, item = written(content_of(BEFORE, ended))
    old = replace(link, templates="", placement="")

    [update] = plan(ended, old, item).actions

    assert isinstance(update, UpdateEvent) and not update.rerender


def test_an_item_from_other_templates_that_shows_the_same_words_is_not_rewritten() -> None:
    coming = booking("608", start=at(9, 10))
    link, item = written(content_of(AFTER, coming))
    other = replace(link, templates="0123456789abcdef")  # other templates, which rendered the very same words

    assert plan(coming, other, item).actions == []


def test_a_jrni_block_is_re_rendered_with_the_new_templates_like_any_booking() -> None:
    # A block's subject and body come from the templates too (calsync.kind is "block").
    block = booking("609", start=at(9, 10), kind=BookingKind.BLOCK)
    link, item = written(content_of(BEFORE, block))
    (update,) = plan(block, link, item).actions
    assert isinstance(update, UpdateEvent) and update.rerender
    assert update.content.window == content_of(BEFORE, block).window
