"""The operator's queries and commands on integrations and their mappings: what the admin API (and an operator
CLI) calls. Each answer is plain data, ready to be shown as JSON; errors are domain errors, each trigger answers them
in its own terms.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from calsync.domain import (
    ConflictError,
    Integration,
    InvalidInputError,
    Mapping,
    MappingStatus,
    NotFoundError,
    PreconditionFailedError,
    ResourceKind,
    SyncState,
    validation,
)
from calsync.domain.inbound import MailboxStreamState, TaskHeartbeat
from calsync.domain.messages import ReconcileMessage, ReconcileStep
from calsync.domain.reconcile import MappingReconcile, ReconcileRun, RunState
from calsync.ports import (
    AvailabilityReader,
    BookingSource,
    ConnectionChecks,
    DeadLetterQueues,
    DeadLetterStore,
    DirectoryStore,
    IntegrationState,
    IntegrationStore,
    JrniCalendar,
    MappingStore,
    ReconcileQueue,
    RunStore,
    StreamingStates,
)
from calsync.rendering import templates_of
from calsync.usecases import reconcile


@dataclass(frozen=True)
class AdminDeps:
    """What the operator's queries and commands read and write."""

    integrations: IntegrationStore
    mappings: MappingStore
    bookings_for: Callable[[Integration], BookingSource]  # JRNI's staff and resources, to map
    clock: Callable[[], datetime]
    runs: RunStore  # reconcile runs: requested here, followed here
    reconcile_queue: ReconcileQueue
    streaming: StreamingStates | None  # how each mailbox is watched; None: no streaming task deployed
    # Every store keeping items for an integration (mappings first, so that nothing is synced while the rest goes):
    # what deleting an integration empties.
    integration_state: tuple[IntegrationState, ...]
    # The streaming task beats its heart this often; a watch shows as stale after 3 beats missed.
    streaming_heartbeat: timedelta = timedelta(seconds=30)
    streaming_service: str = ""  # the ECS service running the streaming task, named in a stale watch's detail
    # Tests the way to JRNI and Exchange (the connection test, automap); None: not available in this deployment.
    checks_for: Callable[[Integration], ConnectionChecks] | None = None
    # The stack's Secrets Manager prefix (e.g. "calsync/"): an integration's secrets are named
    # <prefix><integration id>/jrni|exchange|webhook, and no other.
    secrets_prefix: str = ""
    # A copy of JRNI's staff and resources, paged by GET .../mappings; None: JRNI is read on every request.
    directory: DirectoryStore | None = None
    # The dead letters: their records, and the dead-letter queues to find and replay them in.
    dead_letters: DeadLetterStore | None = None
    dead_letter_queues: DeadLetterQueues | None = None
    # A mailbox's busy time as Exchange publishes it, for the merged availability view; None: not available here.
    availability_for: Callable[[Integration], AvailabilityReader] | None = None


def find_integration(integrations: IntegrationStore, integration_id: str) -> Integration:
    """The integration, or NotFoundError."""
    integration = integrations.get(integration_id)
    if integration is None:
        raise NotFoundError(f"no integration {integration_id!r}")
    return integration


def integrations(deps: AdminDeps) -> list[Integration]:
    return deps.integrations.all()


def create_integration(deps: AdminDeps, integration: Integration) -> Integration:
    """Store a new integration, as stored; a template that would fail at sync time is refused now (TemplateError,
    with line and column). The same integration sent again (a retried request with its own id) is the one stored,
    not a second one; an id in use by another configuration is a ConflictError."""
    templates_of(integration).check()
    try:
        return deps.integrations.create(integration)
    except ConflictError:
        existing = deps.integrations.get(integration.id)
        if existing is not None and _same_configuration(existing, integration):
            return existing
        raise ConflictError(
            f"integration {integration.id!r} already exists with another configuration: to change it, PATCH "
            f"/admin/integrations/{integration.id} (with If-Match: its ETag); for another integration, choose "
            f"another id or send none"
        ) from None


def _same_configuration(stored: Integration, given: Integration) -> bool:
    """Whether ``given`` is what was stored, apart from what the store adds (its version, when it was made, when its
    templates last changed)."""
    same = replace(
        stored,
        version=given.version,
        created_at=given.created_at,
        templates_changed_at=given.templates_changed_at,
    )
    return same == given


def integration_at(deps: AdminDeps, integration_id: str, version: int) -> Integration:
    """The integration, if it is still at ``version`` (the one a change was made from); PreconditionFailedError
    otherwise, NotFoundError when there is none."""
    integration = find_integration(deps.integrations, integration_id)
    if integration.version != version:
        raise PreconditionFailedError(
            f"integration {integration_id!r} was changed by someone else: it is at version {integration.version}, "
            f"not {version}; read it again (GET, its ETag) and make the change to what it holds now"
        )
    return integration


def update_integration(deps: AdminDeps, integration: Integration, expected_version: int) -> Integration:
    """Store a changed integration over ``expected_version``, as stored (its new version); its templates are checked
    as at creation (TemplateError), a version that moved meanwhile is a PreconditionFailedError. A change of the
    subject or body template is dated (``templates_changed_at``): the next reconcile rewrites the items of bookings
    still to come with the new templates."""
    templates = templates_of(integration)
    templates.check()
    stored = find_integration(deps.integrations, integration.id)
    changed_at = stored.templates_changed_at
    if templates.fingerprint != templates_of(stored).fingerprint:
        changed_at = deps.clock()
    return deps.integrations.update(replace(integration, templates_changed_at=changed_at), expected_version)


# A run that has not finished a day after it started will not (a mapping's step was dead-lettered): it no longer
# holds back deleting its integration.
RUN_ABANDONED_AFTER = timedelta(days=1)


def delete_integration(deps: AdminDeps, integration_id: str) -> None:
    """Remove an integration and every item calsync keeps for it: mappings, statuses and problems, links, block
    links, change-feed cursors, how its mailboxes are watched, reconcile runs. Refused (ConflictError) while one of
    its reconcile runs is under way. The integration itself goes last, so a delete that failed half-way can be sent
    again. What calsync wrote into Outlook and JRNI stays there."""
    integration = find_integration(deps.integrations, integration_id)
    now = deps.clock()
    running = [
        run
        for run in deps.runs.runs_of(integration.id)
        if run.state is RunState.RUNNING and now - run.started_at < RUN_ABANDONED_AFTER
    ]
    if running:
        run = running[0]
        raise ConflictError(
            f"integration {integration.id!r} is being reconciled (run {run.run_id}, started "
            f"{run.started_at.isoformat()}): wait until it is done (GET /admin/integrations/{integration.id}/"
            f"reconcile/{run.run_id}) and delete it then"
        )
    for store in deps.integration_state:
        store.remove_integration(integration.id)
    deps.integrations.delete(integration.id)


def calendar_rows(deps: AdminDeps, integration_id: str) -> list[dict[str, Any]]:
    """Every JRNI staff member and resource, with its mailbox, its last outcome, its open problems and how its
    Outlook changes reach calsync (every page of ``calendar_page``)."""
    rows: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = calendar_page(deps, integration_id, limit=validation.MAX_PAGE, cursor=cursor)
        rows += page["mappings"]
        cursor = page["next_cursor"]
        if cursor is None:
            return rows


def calendar_page(
    deps: AdminDeps, integration_id: str, *, limit: int = 100, cursor: str | None = None
) -> dict[str, Any]:
    """One page of ``calendar_rows`` in (kind, jrni_id) order, from the stored copy of JRNI's directory (read from
    JRNI once when there is none yet); ``next_cursor`` names the next page, None after the last one."""
    integration = find_integration(deps.integrations, integration_id)
    after = _after(cursor)
    if deps.directory is None:
        listed = sorted(deps.bookings_for(integration).calendars(), key=lambda c: (c.kind.value, c.jrni_id))
        start = (
            0
            if after is None
            else next(
                (i for i, c in enumerate(listed) if (c.kind.value, c.jrni_id) > (after[0].value, after[1])),
                len(listed),
            )
        )
        calendars, more, refreshed = listed[start : start + limit], start + limit < len(listed), None
    else:
        refreshed = deps.directory.refreshed_at(integration.id)
        if refreshed is None:
            refreshed = refresh_directory(
                deps.directory, integration, deps.bookings_for(integration), deps.clock()
            )
        calendars, more = deps.directory.page(integration.id, after=after, limit=limit)
    last = calendars[-1] if calendars and more else None
    return {
        "mappings": _rows(deps, integration, calendars),
        "next_cursor": None if last is None else _cursor_of(last),
        "directory_refreshed_at": refreshed.isoformat() if refreshed else None,
    }


def refresh_directory(
    directory: DirectoryStore, integration: Integration, jrni: BookingSource, at: datetime
) -> datetime:
    """Read JRNI's staff and resources once and store them as the integration's directory; when it was read."""
    directory.replace(integration.id, jrni.calendars(), at)
    return at


def _cursor_of(calendar: JrniCalendar) -> str:
    raw = f"{calendar.kind.value}/{calendar.jrni_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _after(cursor: str | None) -> tuple[ResourceKind, str] | None:
    """The calendar a cursor says the page starts after; InvalidInputError for one this API did not give."""
    if cursor is None or cursor == "":
        return None
    try:
        kind, _, jrni_id = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().partition("/")
        return ResourceKind(kind), validation.jrni_id(jrni_id)
    except (ValueError, InvalidInputError):
        raise InvalidInputError(
            f"cursor {cursor[:80]!r} is not one this API gave: pass next_cursor from the previous page as it is, or "
            f"leave it out for the first page"
        ) from None


def _rows(deps: AdminDeps, integration: Integration, calendars: list[JrniCalendar]) -> list[dict[str, Any]]:
    mapped = {(m.kind, m.jrni_id): m.mailbox for m in deps.mappings.mappings(integration.id)}
    statuses = {(s.kind, s.jrni_id): s for s in deps.mappings.statuses(integration.id)}
    problems: dict[tuple[ResourceKind, str], list[dict[str, Any]]] = {}
    for problem in _newest_first(deps.mappings.problems(integration.id)):
        problems.setdefault((problem.kind, problem.jrni_id), []).append(_problem(problem))
    watched = {w.mailbox: w for w in deps.streaming.mailbox_states(integration.id)} if deps.streaming else {}
    reconciles = {r.mailbox: r for r in deps.runs.mapping_states(integration.id)}
    freshness = _Freshness.of(deps)
    rows = []
    for calendar in calendars:
        key = (calendar.kind, calendar.jrni_id)
        status = statuses.get(key)
        rows.append(
            {
                "kind": calendar.kind.value,
                "jrni_id": calendar.jrni_id,
                "company_id": calendar.company_id,
                "name": calendar.name,
                "jrni_ews_email": calendar.ews_email,
                "disabled": calendar.disabled,
                "mailbox": mapped.get(key),
                "status": None
                if status is None
                else {
                    "state": status.state.value,
                    "detail": status.detail,
                    "at": status.at.isoformat() if status.at else None,
                },
                "problems": problems.get(key, []),
                "outlook_changes": _watch(watched.get(mapped.get(key) or ""), freshness),
                **(_reconciled(reconciles.get(mapped[key])) if key in mapped else {}),
            }
        )
    return rows


def _reconciled(state: MappingReconcile | None) -> dict[str, Any]:
    """A mapping's last reconcile and a running backfill, as the status and the mappings rows show them."""
    if state is None:
        return {"last_reconciled_at": None, "repaired": None, "backfill": None}
    running = state.backfill_total is not None
    return {
        "last_reconciled_at": state.last_reconciled_at.isoformat() if state.last_reconciled_at else None,
        "repaired": state.repaired.as_dict() if state.last_reconciled_at else None,
        "backfill": {"total": state.backfill_total, "done": state.backfill_done} if running else None,
    }


def map_mailbox(
    deps: AdminDeps, integration_id: str, kind: ResourceKind, jrni_id: str, mailbox: str
) -> tuple[Mapping, ReconcileRun | None]:
    """Map a staff member or resource to a mailbox (replacing any mailbox it had); a new or changed mapping is
    backfilled at once (the run to follow), the same mapping again changes nothing."""
    integration = find_integration(deps.integrations, integration_id)
    mapping = Mapping(integration.id, kind, validation.jrni_id(jrni_id), validation.mailbox_address(mailbox))
    before = next(
        (m for m in deps.mappings.mappings(integration.id) if (m.kind, m.jrni_id) == (kind, jrni_id)), None
    )
    deps.mappings.put(mapping)
    if before is not None and before.mailbox == mapping.mailbox:
        return mapping, None
    return mapping, backfill(deps, mapping)


def backfill(deps: AdminDeps, mapping: Mapping) -> ReconcileRun:
    """Reconcile a new (or re-pointed) mapping deeply at once: every future booking in the window into Outlook,
    every busy Outlook item into JRNI; its progress shows in the status."""
    return reconcile.request_run(
        deps.runs, deps.reconcile_queue, deps.clock(), mapping.integration_id, deep=True, mapping=mapping
    )


def unmap(deps: AdminDeps, integration_id: str, kind: ResourceKind, jrni_id: str) -> None:
    """Remove a mapping; NotFoundError when there is none."""
    integration = find_integration(deps.integrations, integration_id)
    mailbox = next(
        (m.mailbox for m in deps.mappings.mappings(integration.id) if (m.kind, m.jrni_id) == (kind, jrni_id)),
        None,
    )
    if not deps.mappings.remove(integration.id, kind, jrni_id) or mailbox is None:
        raise NotFoundError(f"{kind.value} {jrni_id} is not mapped")
    # The mailbox's time-outside-working-hours items go with the mapping (the reconcile function removes them).
    step = ReconcileMessage(
        ReconcileStep.MAPPING,
        deep=True,
        integration_id=integration.id,
        run_id=f"unmap-{uuid.uuid4().hex[:12]}",  # a step of no run: counted in none
        mailbox=mailbox,
    )
    deps.reconcile_queue.send([step])


def integration_status(deps: AdminDeps, integration_id: str) -> dict[str, Any]:
    """How the integration's calendars stand, its open problems, and whether the streaming task is alive."""
    integration = find_integration(deps.integrations, integration_id)
    # A calendar counts as its worst open problem (an error before a skip); one without any, as its last outcome.
    shown = {(s.kind, s.jrni_id): s.state for s in deps.mappings.statuses(integration.id)}
    open_problems = _newest_first(deps.mappings.problems(integration.id))
    with_problems = {(p.kind, p.jrni_id) for p in open_problems}
    for key in with_problems:
        shown[key] = SyncState.SKIPPED
    for problem in open_problems:
        if problem.state is SyncState.ERROR:
            shown[(problem.kind, problem.jrni_id)] = SyncState.ERROR
    counts: dict[str, int] = {}
    for value in shown.values():
        counts[value.value] = counts.get(value.value, 0) + 1
    for problem in open_problems:
        if (
            problem.state is SyncState.NEEDS_ATTENTION
            and shown.get((problem.kind, problem.jrni_id)) is not SyncState.ERROR
        ):
            shown[(problem.kind, problem.jrni_id)] = SyncState.NEEDS_ATTENTION
    counts = {}
    for value in shown.values():
        counts[value.value] = counts.get(value.value, 0) + 1
    problems = [_problem(p) for p in open_problems]
    watching: dict[str, int] = {}
    freshness = _Freshness.of(deps)
    for state in deps.streaming.mailbox_states(integration.id) if deps.streaming else []:
        mode = freshness.mode(state) if freshness is not None else state.mode
        watching[mode] = watching.get(mode, 0) + 1
    mappings = deps.mappings.mappings(integration.id)
    reconciles = {r.mailbox: r for r in deps.runs.mapping_states(integration.id)}
    answer = {
        "integration_id": integration.id,
        "mapped": len(mappings),
        "states": counts,
        "outlook_changes": watching,
        "problems": problems,
        "reconcile": [
            {
                "kind": m.kind.value,
                "jrni_id": m.jrni_id,
                "mailbox": m.mailbox,
                **_reconciled(reconciles.get(m.mailbox)),
            }
            for m in mappings
        ],
    }
    if freshness is not None and (watching or freshness.last is not None):  # none without a streaming task
        answer["streaming_task"] = freshness.summary()
    return answer


def _newest_first(statuses: list[MappingStatus]) -> list[MappingStatus]:
    return sorted(statuses, key=lambda s: (s.at is not None, s.at or datetime.min), reverse=True)


def _problem(status: MappingStatus) -> dict[str, Any]:
    """An open problem: what it is about, what happened, and since when."""
    return {
        "kind": status.kind.value,
        "jrni_id": status.jrni_id,
        "state": status.state.value,
        "subject": status.subject,
        "detail": status.detail,
        "at": status.at.isoformat() if status.at else None,
    }


# A watch (streaming or timed) is stale once the streaming task has missed this many heartbeats: the task is gone
# (or cannot write), and nobody is watching. The same window in which a task's share lease runs out.
STALE_AFTER_HEARTBEATS = 3


@dataclass(frozen=True)
class _Freshness:
    """Whether the streaming task still watches: its last heartbeat, against 3 heartbeat intervals.

    The task's heartbeats do not say which mailboxes each watches, so with several tasks a watch is stale only when
    none of them is beating (one dead task among several live ones is not seen here)."""

    now: datetime
    interval: timedelta
    last: TaskHeartbeat | None  # the newest heartbeat of a task that was watching mailboxes
    service: str

    @classmethod
    def of(cls, deps: AdminDeps) -> _Freshness | None:
        if deps.streaming is None:
            return None
        watching = [beat for beat in deps.streaming.heartbeats() if beat.mailboxes > 0]
        last = max(watching, key=lambda beat: beat.at, default=None)
        return cls(
            deps.clock(), deps.streaming_heartbeat, last, deps.streaming_service or "of the streaming task"
        )

    @property
    def stale_after(self) -> timedelta:
        return STALE_AFTER_HEARTBEATS * self.interval

    @property
    def fresh(self) -> bool:
        return self.last is not None and self.now - self.last.at <= self.stale_after

    def mode(self, state: MailboxStreamState) -> str:
        return "stale" if state.mode in ("streaming", "timed") and not self.fresh else state.mode

    def detail(self) -> str:
        check = (
            f"check the ECS service {self.service}: its running tasks, their stopped reasons and logs; a new task "
            f"resyncs every mailbox when it starts"
        )
        if self.last is None:
            return f"no streaming task has reported watching mailboxes: Outlook changes are not reaching calsync; {check}"
        age = int((self.now - self.last.at).total_seconds())
        return (
            f"the streaming task last reported at {self.last.at.isoformat()} ({age} s ago; it reports every "
            f"{self.interval.total_seconds():g} s): Outlook changes are not reaching calsync; {check}"
        )

    def summary(self) -> dict[str, Any]:
        return {
            "state": "ok" if self.fresh else "stale",
            "last_heartbeat": self.last.at.isoformat() if self.last else None,
            "stale_after_seconds": self.stale_after.total_seconds(),
        }


def _watch(state: MailboxStreamState | None, freshness: _Freshness | None) -> dict[str, Any] | None:
    """How a mailbox's Outlook changes reach calsync: a streaming subscription, a timed sync (beyond the connections
    Exchange allows), not at all (an error, with why), or no longer (stale: the streaming task stopped reporting;
    ``watched_as`` says how it was watched then)."""
    if state is None:
        return None
    watch: dict[str, Any] = {"mode": state.mode, "detail": state.detail, "at": state.at.isoformat()}
    if freshness is not None and freshness.mode(state) == "stale":
        watch.update(
            mode="stale",
            detail=freshness.detail(),
            watched_as=state.mode,
            last_heartbeat=freshness.last.at.isoformat() if freshness.last else None,
        )
    return watch


# ---- reconciliation -------------------------------------------------------------------------------------------------


def request_reconcile(deps: AdminDeps, integration_id: str, *, deep: bool) -> ReconcileRun:
    """Reconcile every mapping of the integration now (deep: the whole window); the run to follow."""
    integration = find_integration(deps.integrations, integration_id)
    return reconcile.request_run(deps.runs, deps.reconcile_queue, deps.clock(), integration.id, deep=deep)


def resync_mapping(
    deps: AdminDeps, integration_id: str, kind: ResourceKind, jrni_id: str, *, force: bool
) -> ReconcileRun:
    """Reconcile one mapping deeply now; ``force`` applies removals the mass-delete guard held back."""
    integration = find_integration(deps.integrations, integration_id)
    mapping = next(
        (m for m in deps.mappings.mappings(integration.id) if (m.kind, m.jrni_id) == (kind, jrni_id)), None
    )
    if mapping is None:
        raise NotFoundError(f"{kind.value} {jrni_id} is not mapped in integration {integration_id!r}")
    return reconcile.request_run(
        deps.runs, deps.reconcile_queue, deps.clock(), integration.id, deep=True, mapping=mapping, force=force
    )


def reconcile_run(deps: AdminDeps, integration_id: str, run_id: str) -> dict[str, Any]:
    """How far a run has got, and what it repaired."""
    find_integration(deps.integrations, integration_id)
    run = deps.runs.get(integration_id, run_id)
    if run is None:
        raise NotFoundError(f"no reconcile run {run_id!r} in integration {integration_id!r}")
    return run_json(run)


def run_json(run: ReconcileRun) -> dict[str, Any]:
    view: dict[str, Any] = {
        "run_id": run.run_id,
        "state": run.state.value,
        "deep": run.deep,
        "started_at": run.started_at.isoformat(),
        "mappings_total": run.mappings_total,
        "mappings_done": run.mappings_done,
        "bookings_queued": run.bookings_queued,
        "repaired": run.repaired.as_dict(),
    }
    if run.error:
        view["error"] = run.error
    return view
