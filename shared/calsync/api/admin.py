"""The admin REST API: integrations and the mapping of JRNI staff and resources to mailboxes.

Built on Powertools' ``APIGatewayRestResolver`` with validation on, so the OpenAPI document is generated from these
routes (``resolver.get_openapi_json_schema()``). Domain errors become HTTP statuses here, in one place.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Path
from pydantic import BaseModel, ConfigDict, Field

from calsync.domain import (
    AccessType,
    ConflictError,
    ExchangeAuth,
    ExchangeConnection,
    Integration,
    InvalidInputError,
    JrniConnection,
    Mapping,
    MappingStatus,
    NotFoundError,
    PermanentError,
    RequestError,
    ResourceKind,
    RetryableError,
    SyncOptions,
    SyncState,
)
from calsync.domain.inbound import MailboxStreamState, TaskHeartbeat
from calsync.rendering import TemplateError, Templates
from calsync.service import Services, integration_or_404

_MAILBOX = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JrniIn(_Strict):
    base_url: str = Field(pattern=r"^https?://", description="JRNI API root, e.g. https://example.jrni.com")
    company_id: str = Field(min_length=1, description="the parent company")
    secret_name: str = Field(
        min_length=1, description='Secrets Manager name of {"app_id","app_key","email","password"}'
    )


class ExchangeIn(_Strict):
    endpoint: str = Field(
        pattern=r"^https?://", description="the EWS URL, e.g. https://mail.example.com/EWS/Exchange.asmx"
    )
    secret_name: str = Field(min_length=1, description="Secrets Manager name of the Exchange credentials")
    auth: ExchangeAuth = ExchangeAuth.BASIC
    access_type: AccessType = AccessType.IMPERSONATION
    server_version: str = "Exchange2016"
    verify_tls: bool = True
    token_url: str | None = None


class OptionsIn(_Strict):
    include_buffers: bool = True
    sync_jrni_blocks: bool = True
    block_subject: str = Field(default="Unavailable", min_length=1, max_length=255)


class IntegrationIn(_Strict):
    id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    name: str = Field(min_length=1, max_length=200)
    jrni: JrniIn
    exchange: ExchangeIn
    webhook_secret_name: str = Field(
        min_length=1, description='Secrets Manager name of {"username","password"} or {"token"}'
    )
    options: OptionsIn = OptionsIn()
    subject_template: str | None = None
    body_template: str | None = None
    appointment_lock: bool = True
    auto_confirm: bool = False


class MailboxIn(_Strict):
    mailbox: str = Field(min_length=3, max_length=320)


def integration_json(integration: Integration) -> dict[str, Any]:
    """An integration as the API shows it: names of secrets only, never their values."""
    return {
        "id": integration.id,
        "name": integration.name,
        "jrni": {
            "base_url": integration.jrni.base_url,
            "company_id": integration.jrni.company_id,
            "secret_name": integration.jrni.secret_name,
        },
        "exchange": {
            "endpoint": integration.exchange.endpoint,
            "secret_name": integration.exchange.secret_name,
            "auth": integration.exchange.auth.value,
            "access_type": integration.exchange.access_type.value,
            "server_version": integration.exchange.server_version,
            "verify_tls": integration.exchange.verify_tls,
            "token_url": integration.exchange.token_url,
        },
        "webhook_secret_name": integration.webhook_secret_name,
        "webhook_path": f"/webhooks/jrni/{integration.id}",
        "options": {
            "include_buffers": integration.options.include_buffers,
            "sync_jrni_blocks": integration.options.sync_jrni_blocks,
            "block_subject": integration.options.block_subject,
        },
        "subject_template": integration.subject_template,
        "body_template": integration.body_template,
        "appointment_lock": integration.appointment_lock,
        "auto_confirm": integration.auto_confirm,
    }


def _error(status: int, message: str, **extra: Any) -> Response[dict[str, Any]]:
    return Response(
        status_code=status, content_type=content_types.APPLICATION_JSON, body={"message": message, **extra}
    )


def build_admin_api(services: Callable[[], Services]) -> APIGatewayRestResolver:
    """The admin API's routes; ``services`` is called per request (built once per cold start by the caller)."""
    app = APIGatewayRestResolver(enable_validation=True)
    # The OpenAPI document, generated from the routes below: GET /admin/openapi (UI) or ?format=json.
    app.enable_swagger(
        path="/admin/openapi",
        title="calsync admin API",
        version="1",
        description="Integrations between JRNI and Exchange, and staff and resources mapped to mailboxes.",
    )

    @app.exception_handler(RequestError)
    def request_error(exc: RequestError) -> Response[dict[str, Any]]:
        return _error(exc.status, str(exc))

    @app.exception_handler(ConflictError)
    def conflict(exc: ConflictError) -> Response[dict[str, Any]]:
        return _error(409, str(exc))

    @app.exception_handler(TemplateError)
    def bad_template(exc: TemplateError) -> Response[dict[str, Any]]:
        return _error(422, f"the {exc.which} template cannot be used", template=exc.which, detail=exc.detail)

    @app.exception_handler(RetryableError)
    def unavailable(exc: RetryableError) -> Response[dict[str, Any]]:
        return _error(503, f"try again shortly: {exc}")

    @app.exception_handler(PermanentError)
    def upstream(exc: PermanentError) -> Response[dict[str, Any]]:
        return _error(502, str(exc))

    @app.get("/admin/integrations", summary="List integrations")
    def list_integrations() -> dict[str, Any]:
        return {"integrations": [integration_json(i) for i in services().integrations.all()]}

    @app.post("/admin/integrations", summary="Create an integration")
    def create_integration(body: IntegrationIn) -> Response[dict[str, Any]]:
        _check_templates(body)
        integration = Integration(
            id=body.id or uuid.uuid4().hex[:12],
            name=body.name,
            jrni=JrniConnection(body.jrni.base_url.rstrip("/"), body.jrni.company_id, body.jrni.secret_name),
            exchange=ExchangeConnection(**body.exchange.model_dump()),
            webhook_secret_name=body.webhook_secret_name,
            options=SyncOptions(**body.options.model_dump()),
            subject_template=body.subject_template,
            body_template=body.body_template,
            appointment_lock=body.appointment_lock,
            auto_confirm=body.auto_confirm,
        )
        services().integrations.create(integration)
        return Response(
            status_code=201, content_type=content_types.APPLICATION_JSON, body=integration_json(integration)
        )

    @app.get(
        "/admin/integrations/<integration_id>/mappings",
        summary="JRNI staff and resources with their mailboxes",
    )
    def list_mappings(integration_id: Annotated[str, Path()]) -> dict[str, Any]:
        svc = services()
        integration = integration_or_404(svc, integration_id)
        mapped = {(m.kind, m.jrni_id): m.mailbox for m in svc.mappings.mappings(integration.id)}
        statuses = {(s.kind, s.jrni_id): s for s in svc.mappings.statuses(integration.id)}
        problems: dict[tuple[ResourceKind, str], list[dict[str, Any]]] = {}
        for problem in _newest_first(svc.mappings.problems(integration.id)):
            problems.setdefault((problem.kind, problem.jrni_id), []).append(_problem(problem))
        watched = (
            {w.mailbox: w for w in svc.streaming.mailbox_states(integration.id)} if svc.streaming else {}
        )
        freshness = _Freshness.of(svc)
        rows = []
        for calendar in svc.bookings_for(integration).calendars():
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
                }
            )
        return {"mappings": rows}

    @app.put("/admin/integrations/<integration_id>/mappings/<kind>/<jrni_id>", summary="Map to a mailbox")
    def put_mapping(
        integration_id: Annotated[str, Path()],
        kind: Annotated[ResourceKind, Path()],
        jrni_id: Annotated[str, Path()],
        body: MailboxIn,
    ) -> dict[str, Any]:
        svc = services()
        integration = integration_or_404(svc, integration_id)
        mailbox = body.mailbox.strip().lower()
        if not _MAILBOX.match(mailbox):
            raise InvalidInputError(f"{body.mailbox!r} is not an e-mail address")
        svc.mappings.put(Mapping(integration.id, kind, jrni_id, mailbox))
        return {"kind": kind.value, "jrni_id": jrni_id, "mailbox": mailbox}

    @app.delete("/admin/integrations/<integration_id>/mappings/<kind>/<jrni_id>", summary="Unmap")
    def delete_mapping(
        integration_id: Annotated[str, Path()],
        kind: Annotated[ResourceKind, Path()],
        jrni_id: Annotated[str, Path()],
    ) -> Response[None]:
        svc = services()
        integration = integration_or_404(svc, integration_id)
        if not svc.mappings.remove(integration.id, kind, jrni_id):
            raise NotFoundError(f"{kind.value} {jrni_id} is not mapped")
        return Response(status_code=204, content_type=content_types.APPLICATION_JSON, body=None)

    @app.get("/admin/integrations/<integration_id>/status", summary="Sync status of an integration")
    def status(integration_id: Annotated[str, Path()]) -> dict[str, Any]:
        svc = services()
        integration = integration_or_404(svc, integration_id)
        # A calendar counts as its worst open problem (an error before a skip); one without any, as its last outcome.
        shown = {(s.kind, s.jrni_id): s.state for s in svc.mappings.statuses(integration.id)}
        open_problems = _newest_first(svc.mappings.problems(integration.id))
        with_problems = {(p.kind, p.jrni_id) for p in open_problems}
        for key in with_problems:
            shown[key] = SyncState.SKIPPED
        for problem in open_problems:
            if problem.state is SyncState.ERROR:
                shown[(problem.kind, problem.jrni_id)] = SyncState.ERROR
        counts: dict[str, int] = {}
        for value in shown.values():
            counts[value.value] = counts.get(value.value, 0) + 1
        problems = [_problem(p) for p in open_problems]
        watching: dict[str, int] = {}
        freshness = _Freshness.of(svc)
        for state in svc.streaming.mailbox_states(integration.id) if svc.streaming else []:
            mode = freshness.mode(state) if freshness is not None else state.mode
            watching[mode] = watching.get(mode, 0) + 1
        answer = {
            "integration_id": integration.id,
            "mapped": len(svc.mappings.mappings(integration.id)),
            "states": counts,
            "outlook_changes": watching,
            "problems": problems,
        }
        if freshness is not None and (
            watching or freshness.last is not None
        ):  # none without a streaming task
            answer["streaming_task"] = freshness.summary()
        return answer

    return app


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
    def of(cls, svc: Services) -> _Freshness | None:
        if svc.streaming is None:
            return None
        watching = [beat for beat in svc.streaming.heartbeats() if beat.mailboxes > 0]
        last = max(watching, key=lambda beat: beat.at, default=None)
        return cls(
            svc.clock(), svc.streaming_heartbeat, last, svc.streaming_service or "of the streaming task"
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


def _check_templates(body: IntegrationIn) -> None:
    """A template that would fail at sync time is refused now, with line and column (TemplateError → 422)."""
    from calsync.rendering import DEFAULT_BODY, DEFAULT_SUBJECT

    Templates(body.subject_template or DEFAULT_SUBJECT, body.body_template or DEFAULT_BODY)
