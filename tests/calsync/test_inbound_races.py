"""Outlook changes racing calsync's answers to them: a revert is written only over the version it was decided on,
its own write coming back is no change, and an answer never overwrites a newer Outlook change (in-memory fakes)."""

from __future__ import annotations

from tests.calsync.builders import ALICE, INTEGRATION, ROOM, booking
from tests.calsync.world import World, later


def test_with_the_lock_on_a_move_is_put_back_with_one_write_and_its_echo_costs_nothing() -> None:
    world = World(appointment_lock=True)
    key = world.book()
    remote_id, jrni_time, _ = world.item_of(key)
    writes = world.exchange.writes

    world.exchange.adviser_moves(ALICE, remote_id, later(jrni_time, 2))
    world.notified()
    assert world.item_of(key)[1] == jrni_time
    assert world.exchange.writes == writes + 1  # one UpdateItem, in Alice's mailbox only

    world.notified()  # the revert's own write coming back (and the notification delivered twice)
    world.notified()
    assert world.exchange.writes == writes + 1 and world.writer.writes == []


def test_a_revert_touches_only_the_item_changed_in_outlook() -> None:
    world = World(appointment_lock=True)
    key = world.book(resource="21")
    room_before = world.item_of(key, ROOM)
    remote_id, jrni_time, _ = world.item_of(key)

    world.exchange.adviser_moves(ALICE, remote_id, later(jrni_time, 1))
    world.notified()

    assert world.item_of(key)[1] == jrni_time
    assert world.item_of(key, ROOM) == room_before  # same version: the room's item was not written


def test_a_revert_never_overwrites_an_outlook_change_made_after_the_one_it_answers() -> None:
    world = World(appointment_lock=True)
    key = world.book()
    remote_id, jrni_time, _ = world.item_of(key)
    world.exchange.adviser_moves(ALICE, remote_id, later(jrni_time, 1))
    # The adviser moves it again while calsync is about to put it back: the write is refused, the mailbox is read
    # again, and the newer change is what gets answered.
    world.exchange.before_write = lambda: world.exchange.adviser_moves(ALICE, remote_id, later(jrni_time, 3))

    world.notified()

    _, now, version = world.item_of(key)
    assert now == jrni_time and world.source.bookings[key].window == booking().window
    [link] = world.services.booking.links.links_for(INTEGRATION, key)
    assert link.version == version  # so the revert's echo is recognised


def test_the_lock_switched_off_between_a_revert_and_the_next_move_loses_no_move() -> None:
    """make demo's steps 17-18: moved with the lock on, put back; the lock goes off and the adviser moves it again
    while calsync is still answering the first move: JRNI follows the second move, and nothing puts it back."""
    world = World(appointment_lock=True)
    key = world.book()
    remote_id, jrni_time, _ = world.item_of(key)
    world.exchange.adviser_moves(ALICE, remote_id, later(jrni_time, 1))
    target = later(jrni_time, 2)

    def operator_then_adviser() -> None:
        world.lock(False)
        world.exchange.adviser_moves(ALICE, remote_id, target)

    world.exchange.before_write = operator_then_adviser
    world.notified()
    world.notified()  # every notification of the above, delivered late

    assert world.source.bookings[key].window == target
    assert world.item_of(key)[1] == target
    assert world.writer.writes == [f"move booking {key}"]


def test_a_change_read_after_the_lock_went_off_is_never_answered_with_the_lock_on() -> None:
    """The integration is read after the mailbox: a switch made before an Outlook change is seen with it."""
    world = World(appointment_lock=True)
    key = world.book()
    remote_id, jrni_time, _ = world.item_of(key)
    world.exchange.adviser_moves(ALICE, remote_id, later(jrni_time, 1))

    def operator_then_adviser() -> (
        None
    ):  # just after calsync picked up the message, before it reads the mailbox
        world.lock(False)
        world.exchange.adviser_moves(ALICE, remote_id, later(jrni_time, 2))

    world.exchange.before_read = operator_then_adviser
    world.notified()
    assert world.source.bookings[key].window == later(jrni_time, 2)
