"""The admin API's answers as pydantic models: what the OpenAPI document shows for each route and status code.

Routes return these (or plain dicts of the same shape, validated against the route's return annotation); the
error body is always ``ErrorOut`` (or a model extending it). ``answers.answers(...)`` builds a route's ``responses``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from calsync.domain import ResourceKind


class Out(BaseModel):
    """An answer body: every field documented, nothing else sent."""

    model_config = ConfigDict(extra="forbid")


class ErrorOut(BaseModel):
    """Every 4xx and 5xx answer: what is wrong and what to do, in words; some errors add fields (``errors``: the
    rows or fields that are wrong; ``template``, ``detail``: a template that cannot be used)."""

    model_config = ConfigDict(extra="allow")

    message: str = Field(description="what is wrong and what to do")


# ---- integrations -----------------------------------------------------------------------------------------------


class JrniOut(Out):
    base_url: str
    company_id: str
    secret_name: str


class ExchangeOut(Out):
    endpoint: str
    secret_name: str
    auth: str
    access_type: str
    server_version: str
    verify_tls: bool
    token_url: str | None
    api: str


class ScheduleBusyOut(Out):
    enabled: bool
    subject: str
    free_busy: Literal["Busy", "OOF"]


class OptionsOut(Out):
    include_buffers: bool
    sync_jrni_blocks: bool
    block_subject: str
    plain_text_body: bool
    schedule_busy: ScheduleBusyOut


class IntegrationOut(Out):
    """An integration as the API shows it: the names of its secrets, never their values."""

    id: str
    name: str
    jrni: JrniOut
    exchange: ExchangeOut
    webhook_secret_name: str
    webhook_path: str = Field(description="where JRNI must post its webhooks, under the API's URL")
    options: OptionsOut
    subject_template: str | None
    body_template: str | None
    appointment_lock: bool
    auto_confirm: bool
    test_endpoints: bool = Field(
        description="a test integration: its endpoints may be plain http and on loopback"
    )
    # A default: an answer kept under an Idempotency-Key by an earlier version has no such field.
    templates_changed_at: str | None = Field(
        None,
        description="when the subject or body template last changed (ISO 8601; null: not since the integration was "
        "made): the next reconcile rewrites the items of bookings still to come with the new templates",
    )


class IntegrationsOut(Out):
    integrations: list[IntegrationOut]


# ---- mappings and status ----------------------------------------------------------------------------------------


class OutcomeOut(Out):
    state: str = Field(description="ok, skipped, error or needs_attention")
    detail: str | None
    at: str | None


class ProblemOut(Out):
    """An open problem: what it is about, what happened, since when."""

    kind: str
    jrni_id: str
    state: str
    subject: str | None
    detail: str | None
    at: str | None


class WatchOut(Out):
    """How a mailbox's Outlook changes reach calsync: streaming, timed, error, or stale (``watched_as``: before)."""

    mode: str
    detail: str | None
    at: str
    watched_as: str | None = None
    last_heartbeat: str | None = None


class BackfillOut(Out):
    total: int | None
    done: int | None


class RepairedOut(Out):
    created: int = 0
    updated: int = 0
    rerendered: int = Field(
        0, description="items of bookings still to come rewritten with the integration's new templates"
    )
    removed: int = 0
    blocked: int = 0
    moved: int = 0
    released: int = 0
    bookings_changed: int = 0
    schedule: int = Field(
        0,
        description="writes that brought the time outside working hours in line with the JRNI schedule (series, "
        "their exceptions, single items)",
    )


class MappingRowOut(Out):
    """A JRNI staff member or resource, its mailbox (or none), its last outcome and open problems."""

    kind: str
    jrni_id: str
    company_id: str
    name: str
    jrni_ews_email: str | None
    disabled: bool
    mailbox: str | None
    status: OutcomeOut | None
    problems: list[ProblemOut]
    outlook_changes: WatchOut | None
    last_reconciled_at: str | None = None
    repaired: RepairedOut | None = None
    backfill: BackfillOut | None = None


class MappingsPage(Out):
    mappings: list[MappingRowOut] = Field(
        description="staff members and resources in (kind, jrni_id) order, each with its mailbox and status"
    )
    next_cursor: str | None = Field(description="pass as cursor for the next page; null after the last page")
    directory_refreshed_at: str | None = Field(
        description="when JRNI's staff and resources were last read (each reconcile run reads them)"
    )


class RunRefOut(Out):
    run_id: str


class MappingOut(Out):
    kind: str
    jrni_id: str
    mailbox: str
    backfill: RunRefOut | None = Field(description="the backfill started for a new or re-pointed mapping")


class MappingReconcileOut(Out):
    kind: str
    jrni_id: str
    mailbox: str
    last_reconciled_at: str | None
    repaired: RepairedOut | None
    backfill: BackfillOut | None


class StreamingTaskOut(Out):
    state: str = Field(description="ok, or stale when the streaming task stopped reporting")
    last_heartbeat: str | None
    stale_after_seconds: float


class StatusOut(Out):
    integration_id: str
    mapped: int
    states: dict[str, int] = Field(
        description="calendars by their worst open problem, else their last outcome"
    )
    outlook_changes: dict[str, int] = Field(description="mailboxes by how their Outlook changes are watched")
    problems: list[ProblemOut]
    reconcile: list[MappingReconcileOut]
    streaming_task: StreamingTaskOut | None = None


# ---- reconcile runs ---------------------------------------------------------------------------------------------


class RunOut(Out):
    """A reconcile run: how far it has got and what it repaired."""

    run_id: str
    state: str = Field(description="running, done or error")
    deep: bool
    started_at: str
    mappings_total: int | None
    mappings_done: int
    bookings_queued: int
    repaired: RepairedOut
    error: str | None = None


# ---- the connection test, automap and import -------------------------------------------------------------------


class CheckOut(Out):
    name: str
    state: Literal["ok", "failed", "warning", "skipped"]
    detail: str = Field(description="what was found, in a sentence")
    fix: str | None = Field(description="what to change (None when nothing needs to)")


class ConnectionTestOut(Out):
    ok: bool = Field(description="no check failed (warnings and skipped checks do not count)")
    checks: list[CheckOut]


class PreviewOut(Out):
    subject: str = Field(description="the subject as Outlook would show it: one line, at most 255 characters")
    body: str
    body_type: Literal["html", "text"]
    booking: str = Field(
        description='what was rendered: "the sample booking" or "JRNI booking <company>/<id>"'
    )


class TemplateProblemOut(Out):
    template: Literal["subject", "body"]
    detail: str = Field(description="what is wrong, with line:col and the line with a caret under the fault")


class TemplatesRefusedOut(ErrorOut):
    template: Literal["subject", "body"] = Field(description="the first template that cannot be used")
    detail: str
    errors: list[TemplateProblemOut] = Field(description="every problem, the subject's first")


class AutomappedOut(Out):
    kind: ResourceKind
    jrni_id: str
    name: str
    mailbox: str


class NotAutomappedOut(Out):
    kind: ResourceKind
    jrni_id: str
    name: str
    reason: str


class AutomapOut(Out):
    mapped: list[AutomappedOut] = Field(description="mapped now; each new mapping's backfill has started")
    not_mapped: list[NotAutomappedOut] = Field(description="unmapped staff and resources left so, with why")


class ImportBackfillOut(Out):
    kind: ResourceKind
    jrni_id: str
    run_id: str = Field(description="the deep reconcile backfilling the mapping: GET .../reconcile/{run_id}")


class ImportOut(Out):
    applied: int = Field(description="mappings made or changed")
    unchanged: int = Field(description="rows that were mapped so already")
    backfills: list[ImportBackfillOut]


class RowErrorOut(Out):
    line: int = Field(
        description="the row's line (CSV: as a spreadsheet numbers it, the header is 1; JSON: 1 for the first)"
    )
    message: str


class ImportRefusedOut(ErrorOut):
    errors: list[RowErrorOut]


# ---- dead letters -----------------------------------------------------------------------------------------------


class DeadLetterOut(Out):
    id: str = Field(description="the message's id in its dead-letter queue; what replay takes")
    queue: Literal["outbound", "inbound", "reconcile"]
    about: dict[str, str] = Field(description="booking, mailbox, or reconcile step and run")
    reason: str = Field(description="why calsync gave up on it, and what to fix")
    at: str | None = Field(description="when it was dead-lettered (ISO 8601)")
    attempts: int = Field(description="how many times it was tried")


class DeadLettersOut(Out):
    dead_letters: list[DeadLetterOut]


class NotReplayedOut(Out):
    id: str
    reason: str


class ReplayOut(Out):
    replayed: int
    ids: list[str] = Field(description="the dead letters sent back to their queues, to be processed again")
    not_replayed: list[NotReplayedOut] = Field(description="listed, but not in their queue at this moment")


class AvailabilityIntervalOut(Out):
    start: str = Field(description="ISO 8601 with its offset (UTC)")
    end: str = Field(description="ISO 8601 with its offset (UTC)")
    source: Literal["jrni_booking", "jrni_block", "outlook", "working_hours"]
    label: str = Field(
        description='what it is: a booking\'s service and client, "Blocked", an Outlook subject (or "Busy", '
        '"Tentative", "Out of office" without details, "Private appointment"), "Working hours"'
    )
    detail: str | None = Field(
        description='what else is known: the JRNI id, "written by calsync …", why no subject is shown'
    )


class AvailabilityOut(Out):
    kind: ResourceKind
    jrni_id: str
    mailbox: str
    zone: str | None = Field(
        description="the JRNI company's IANA time zone (the schedule's, else a booking's); null when neither says"
    )
    start: str
    end: str
    intervals: list[AvailabilityIntervalOut] = Field(description="sorted by start")
