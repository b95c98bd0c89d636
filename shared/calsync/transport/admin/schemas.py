"""The admin API's answers as pydantic models: what the OpenAPI document shows for each route and status code.

Routes return these (or plain dicts of the same shape, validated against the route's return annotation); the
error body is always ``ErrorOut``. ``answers(...)`` builds a route's ``responses`` from the codes it can give.
"""

from __future__ import annotations

from typing import Any, Literal

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


# What each status code means when a route can answer it; the route's own summary says the rest.
_MEANING = {
    400: "the request is malformed (a path parameter, a mailbox, an endpoint): the message says which and why",
    404: "no such integration, mapping, run or dead letter",
    409: "in conflict with the integration's state (an id in use, a run in progress)",
    412: "the integration changed since it was read (If-Match): read it again",
    413: "the body is too large",
    422: "the body does not validate (fields, templates with line and column, rows with their line)",
    428: "If-Match is required: read the integration first (GET) and send its ETag",
    503: "JRNI, Exchange or AWS did not answer in time: try again shortly",
}


def answers(status: int, model: type[BaseModel] | None, description: str, *errors: int) -> dict[int, Any]:
    """A route's ``responses``: its success (``status`` with ``model``'s schema, or no body when ``model`` is None)
    and the error codes it can answer besides 400, 422 and 503, which every route can."""
    success: dict[str, Any] = {"description": description}
    if model is not None:
        success["content"] = {"application/json": {"model": model}}
    return {
        status: success,
        **{
            code: {"description": _MEANING[code], "content": {"application/json": {"model": ErrorOut}}}
            for code in sorted({400, 422, 503, *errors})
        },
    }


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


class OptionsOut(Out):
    include_buffers: bool
    sync_jrni_blocks: bool
    block_subject: str


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
    removed: int = 0
    blocked: int = 0
    moved: int = 0
    released: int = 0
    bookings_changed: int = 0


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


class MappingsOut(Out):
    mappings: list[MappingRowOut]


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
