"""Reconciliation with in-memory fakes: what a run reads and queues, what a mapping's reconcile repairs, and the
mass-delete guard."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from calsync.domain import BookingStatus, JrniKey, PermanentError, ResourceKind, SyncState
from calsync.domain.messages import ReconcileMessage, ReconcileStep
from calsync.domain.reconcile import Repairs
from calsync.engine.reconcile import MASS_DELETE_MIN, held_back
from calsync.ports import JrniCalendar, Metric
from calsync.usecases.admin import AdminDeps, update_integration
from calsync.usecases.reconcile import RECONCILE, ReconcileDeps, reconcile
from calsync.usecases.sync_booking import content_of
from tests.calsync.builders import ALICE, BOB, INTEGRATION, ROOM, at, booking
from tests.calsync.fakes import FakeQueue, FakeReconcileQueue, FakeRuns
from tests.calsync.world import NOW, World


def deps_of(world: World) -> ReconcileDeps:
    world.source.listed.append(
        JrniCalendar(ResourceKind.PERSON, "12", "100", "Bob")
    )  # every mapping's calendar
    return ReconcileDeps(
        mailbox=world.services, runs=FakeRuns(), queue=FakeReconcileQueue(), outbound_queue=FakeQueue()
    )


def run_all(deps: ReconcileDeps, *, deep: bool, run_id: str = "run-1") -> list[ReconcileMessage]:
    """A run of the integration, carried out step by step as the reconcile function would; the mapping steps."""
    reconcile(deps, ReconcileMessage(ReconcileStep.RUN, deep, INTEGRATION, run_id))
    queue = deps.queue
    assert isinstance(queue, FakeReconcileQueue)
    steps, queue.sent[:] = list(queue.sent), []
    for step in steps:
        reconcile(deps, step)
    return steps


def put_in_jrni(world: World, *bookings: object) -> None:
    for b in bookings:
        world.source.bookings[b.key] = b  # type: ignore[attr-defined]


def ours(world: World, mailbox: str = ALICE) -> dict[JrniKey, int]:
    found: dict[JrniKey, int] = {}
    for item in world.exchange.mailboxes.get(mailbox, {}).values():
        found[item.content.stamp.jrni_key] = found.get(item.content.stamp.jrni_key, 0) + 1
    return found


def test_a_deep_run_writes_every_booking_jrni_has_once_in_batches_then_a_second_run_writes_nothing() -> None:
    world = World()
    bookings = [booking(str(600 + n), start=at(7 + n // 8, 8 + n % 8)) for n in range(30)]
    put_in_jrni(world, *bookings)
    deps = deps_of(world)

    steps = run_all(deps, deep=True)

    assert {s.mailbox for s in steps} == {ALICE, BOB, ROOM}
    assert ours(world) == {b.key: 1 for b in bookings}
    assert world.services.booking.links.batches == 2  # type: ignore[attr-defined]  # pending, then synced
    run = deps.runs.get(INTEGRATION, "run-1")
    assert run is not None and run.state.value == "done" and run.repaired.created == 30
    writes = world.exchange.writes

    run_all(deps, deep=True, run_id="run-2")
    assert world.exchange.writes == writes  # nothing had drifted: nothing written
    assert deps.runs.get(INTEGRATION, "run-1").repaired.created == 30  # type: ignore[union-attr]


def test_a_deep_run_finds_an_item_of_ours_without_a_link_and_removes_a_second_one_and_an_orphan() -> None:
    world = World()
    kept, cancelled = booking("701"), booking("702", start=at(8, 9))
    put_in_jrni(world, kept)
    integration = world.integrations.items[INTEGRATION]
    for b in (kept, kept, cancelled):  # items of ours whose links were lost, one a second item, one an orphan
        world.exchange.create_event(ALICE, content_of(integration, b, world.source))
    put_in_jrni(world, replace(cancelled, status=BookingStatus.CANCELLED))
    deps = deps_of(world)

    run_all(deps, deep=True)

    assert ours(world) == {kept.key: 1}
    [link] = world.services.booking.links.links_for(INTEGRATION, kept.key)
    assert link.remote_id in world.exchange.mailboxes[ALICE]


def test_an_incremental_run_reads_jrni_once_and_queues_each_changed_booking_for_the_outbound_function() -> (
    None
):
    world = World()
    deps = deps_of(world)
    run_all(deps, deep=False, run_id="run-0")  # never read: the first run is deep and sets the cursor
    assert deps.runs.jrni_cursor(INTEGRATION) == NOW
    changed = replace(booking("801"), updated_at=NOW + timedelta(minutes=1))
    put_in_jrni(world, changed)
    reads = world.source.reads

    steps = run_all(deps, deep=False)

    assert world.source.reads == reads + 1  # one query for the integration, none per mapping
    assert [m.jrni_key for m in deps.outbound_queue.sent] == [changed.key]  # type: ignore[attr-defined]
    assert all(not s.deep for s in steps)
    run = deps.runs.get(INTEGRATION, "run-1")
    assert run is not None and run.bookings_queued == 1 and run.mappings_done == run.mappings_total == 3


def test_when_jrni_refuses_the_run_fails_with_the_reason_on_every_mapping() -> None:
    world = World()
    deps = deps_of(world)
    deps.runs.set_jrni_cursor(INTEGRATION, NOW)

    def refuse(since: object) -> list[object]:
        raise PermanentError("JRNI refused the credentials in secret 'jrni'")

    world.source.changed_since = refuse  # type: ignore[method-assign, assignment]
    deps.runs.start(  # as the admin API records a requested run
        __import__("calsync.domain.reconcile", fromlist=["ReconcileRun"]).ReconcileRun(
            INTEGRATION, "run-1", False, NOW
        )
    )
    with pytest.raises(PermanentError):
        reconcile(deps, ReconcileMessage(ReconcileStep.RUN, False, INTEGRATION, "run-1"))

    run = deps.runs.get(INTEGRATION, "run-1")
    assert run is not None and run.state.value == "error" and "credentials" in run.error
    statuses = [s for s in world.services.booking.mappings.problems(INTEGRATION) if s.subject == RECONCILE]
    assert {s.state for s in statuses} == {SyncState.ERROR} and len(statuses) == 3
    assert deps.queue.sent == []  # type: ignore[attr-defined]  # no mapping step: nothing to retry in a storm


def test_jrni_suddenly_listing_nothing_removes_nothing_until_forced() -> None:
    world = World()
    bookings = [booking(str(900 + n), start=at(7 + n, 9)) for n in range(8)]
    put_in_jrni(world, *bookings)
    deps = deps_of(world)
    run_all(deps, deep=True, run_id="run-0")
    assert len(ours(world)) == 8
    for b in bookings:  # the integration now points at an empty JRNI company: every booking "gone"
        del world.source.bookings[b.key]

    run_all(deps, deep=True)

    assert len(ours(world)) == 8  # nothing removed
    [problem] = [p for p in world.services.booking.mappings.problems(INTEGRATION) if p.subject == RECONCILE]
    assert problem.state is SyncState.NEEDS_ATTENTION and "force: true" in problem.detail

    reconcile(deps, ReconcileMessage(ReconcileStep.MAPPING, True, INTEGRATION, "run-1", ALICE, force=True))
    assert ours(world) == {}


@pytest.mark.parametrize(
    ("removals", "held", "refused"),
    [(0, 0, False), (4, 4, False), (MASS_DELETE_MIN, MASS_DELETE_MIN, True), (5, 10, False), (6, 10, True)],
)
def test_the_guard_refuses_most_of_a_calendar_at_once_not_a_few_cancellations(
    removals: int, held: int, refused: bool
) -> None:
    assert held_back(removals, held) is refused


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Counts:
    """Telemetry that keeps its counts."""

    def __init__(self) -> None:
        self.counts: dict[Metric, int] = {}

    def count(self, name: Metric, value: int = 1, *, integration_id: str = "") -> None:
        self.counts[name] = self.counts.get(name, 0) + value

    def lag(self, name: Metric, seconds: float, *, integration_id: str = "") -> None:
        return None


def test_after_a_template_change_the_next_scheduled_run_re_renders_the_items_still_to_come_and_counts_them() -> (
    None
):
    # Given items written two days ago, for bookings then all to come (one has ended since, one is under way)
    world = World()
    clock = Clock(NOW - timedelta(days=2))
    telemetry = Counts()
    booking_deps = replace(world.services.booking, clock=clock, telemetry=telemetry)
    world.services = replace(world.services, booking=booking_deps)
    ended = booking("951", start=NOW - timedelta(days=1))
    ongoing = booking("952", start=NOW - timedelta(minutes=30))
    coming = [booking(str(960 + n), start=at(2 + n, 9)) for n in range(6)]
    put_in_jrni(world, ended, ongoing, *coming)
    deps = deps_of(world)
    run_all(
        deps, deep=False, run_id="run-0"
    )  # the first run: deep, and sets where JRNI's changes are read from
    before = {i.content.stamp.jrni_key: i.content for i in world.exchange.mailboxes[ALICE].values()}
    assert len(before) == 8
    # When the operator changes the subject template (as the admin API does), and the schedule's run comes
    clock.now = NOW
    admin = AdminDeps(
        integrations=world.integrations,
        mappings=booking_deps.mappings,
        bookings_for=lambda _: world.source,
        clock=clock,
        runs=deps.runs,
        reconcile_queue=deps.queue,
        streaming=None,
        integration_state=(),
    )
    current = world.integrations.items[INTEGRATION]
    changed = update_integration(
        admin, replace(current, subject_template="Bank appointment"), current.version
    )
    assert changed.templates_changed_at == NOW
    clock.now = NOW + timedelta(minutes=5)
    writes = world.exchange.writes
    telemetry.counts.clear()

    run_all(deps, deep=False)

    # Then the run was deep, and every item still to come shows the new subject, at the same time
    run = deps.runs.get(INTEGRATION, "run-1")
    assert run is not None and run.deep and run.state.value == "done"
    after = {i.content.stamp.jrni_key: i.content for i in world.exchange.mailboxes[ALICE].values()}
    for b in (ongoing, *coming):
        assert after[b.key].subject == "Bank appointment" != before[b.key].subject
        assert after[b.key].body == before[b.key].body
        assert (after[b.key].window, after[b.key].free_busy) == (
            before[b.key].window,
            before[b.key].free_busy,
        )
    assert after[ended.key] == before[ended.key]  # what a past booking showed stays
    assert world.exchange.writes == writes + 7  # one update each, nothing else written
    assert run.repaired == Repairs(rerendered=7)
    # In batches, with the progress shown as they go
    assert [(done, total) for m, total, done in deps.runs.progress_seen if m == ALICE][-3:] == [
        (0, 7),
        (4, 7),
        (7, 7),
    ]
    [status] = [
        s for s in booking_deps.mappings.statuses(INTEGRATION) if s.jrni_id == "11" and s.subject == RECONCILE
    ]
    assert status.detail == "deep reconcile repaired: 7 rerendered"
    assert Metric.REPAIRED_BY_RECONCILE not in telemetry.counts  # no drift: the operator's own change
    # And the run after that is an ordinary one again, writing nothing
    clock.now = NOW + timedelta(minutes=10)
    run_all(deps, deep=False, run_id="run-2")
    second = deps.runs.get(INTEGRATION, "run-2")
    assert second is not None and not second.deep and world.exchange.writes == writes + 7
