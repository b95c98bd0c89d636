"""The admin REST API: integrations and the mapping of JRNI staff and resources to mailboxes.

Built on Powertools' ``APIGatewayRestResolver`` with validation on, so the OpenAPI document is generated from these
routes (``resolver.get_openapi_json_schema()``). Domain errors become HTTP statuses here, in one place.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Path
from pydantic import BaseModel, ConfigDict, Field

from calsync.domain import (
    AccessType,
    ConflictError,
    ExchangeApi,
    ExchangeAuth,
    ExchangeConnection,
    Integration,
    JrniConnection,
    PermanentError,
    RequestError,
    ResourceKind,
    RetryableError,
    SyncOptions,
    TemplateError,
)
from calsync.transport.http import status_of
from calsync.usecases import admin
from calsync.usecases.admin import AdminDeps


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
    api: ExchangeApi = ExchangeApi.EWS


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


class ReconcileIn(_Strict):
    deep: bool = Field(
        default=False, description="the whole sync window, not only what changed since the last run"
    )


class ResyncIn(_Strict):
    force: bool = Field(
        default=False, description="apply the removals the mass-delete guard held back (after checking JRNI)"
    )


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
            "api": integration.exchange.api.value,
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


def _accepted(body: dict[str, Any]) -> Response[dict[str, Any]]:
    return Response(status_code=202, content_type=content_types.APPLICATION_JSON, body=body)


def build_admin_api(deps: Callable[[], AdminDeps]) -> APIGatewayRestResolver:
    """The admin API's routes; ``deps`` is called per request (built once per cold start by the caller)."""
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
        return _error(status_of(exc), str(exc))

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
        return {"integrations": [integration_json(i) for i in admin.integrations(deps())]}

    @app.post("/admin/integrations", summary="Create an integration")
    def create_integration(body: IntegrationIn) -> Response[dict[str, Any]]:
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
        admin.create_integration(deps(), integration)
        return Response(
            status_code=201, content_type=content_types.APPLICATION_JSON, body=integration_json(integration)
        )

    @app.get(
        "/admin/integrations/<integration_id>/mappings",
        summary="JRNI staff and resources with their mailboxes",
    )
    def list_mappings(integration_id: Annotated[str, Path()]) -> dict[str, Any]:
        return {"mappings": admin.calendar_rows(deps(), integration_id)}

    @app.put("/admin/integrations/<integration_id>/mappings/<kind>/<jrni_id>", summary="Map to a mailbox")
    def put_mapping(
        integration_id: Annotated[str, Path()],
        kind: Annotated[ResourceKind, Path()],
        jrni_id: Annotated[str, Path()],
        body: MailboxIn,
    ) -> dict[str, Any]:
        mapping, backfill = admin.map_mailbox(deps(), integration_id, kind, jrni_id, body.mailbox)
        return {
            "kind": kind.value,
            "jrni_id": jrni_id,
            "mailbox": mapping.mailbox,
            "backfill": None if backfill is None else {"run_id": backfill.run_id},
        }

    @app.delete("/admin/integrations/<integration_id>/mappings/<kind>/<jrni_id>", summary="Unmap")
    def delete_mapping(
        integration_id: Annotated[str, Path()],
        kind: Annotated[ResourceKind, Path()],
        jrni_id: Annotated[str, Path()],
    ) -> Response[None]:
        admin.unmap(deps(), integration_id, kind, jrni_id)
        return Response(status_code=204, content_type=content_types.APPLICATION_JSON, body=None)

    @app.post("/admin/integrations/<integration_id>/reconcile", summary="Reconcile every mapping now")
    def reconcile(integration_id: Annotated[str, Path()], body: ReconcileIn) -> Response[dict[str, Any]]:
        run = admin.request_reconcile(deps(), integration_id, deep=body.deep)
        return _accepted(admin.run_json(run))

    @app.get("/admin/integrations/<integration_id>/reconcile/<run_id>", summary="Progress of a reconcile run")
    def reconcile_run(
        integration_id: Annotated[str, Path()], run_id: Annotated[str, Path()]
    ) -> dict[str, Any]:
        return admin.reconcile_run(deps(), integration_id, run_id)

    @app.post(
        "/admin/integrations/<integration_id>/mappings/<kind>/<jrni_id>/resync",
        summary="Reconcile one mapping deeply now",
    )
    def resync(
        integration_id: Annotated[str, Path()],
        kind: Annotated[ResourceKind, Path()],
        jrni_id: Annotated[str, Path()],
        body: ResyncIn,
    ) -> Response[dict[str, Any]]:
        run = admin.resync_mapping(deps(), integration_id, kind, jrni_id, force=body.force)
        return _accepted(admin.run_json(run))

    @app.get("/admin/integrations/<integration_id>/status", summary="Sync status of an integration")
    def status(integration_id: Annotated[str, Path()]) -> dict[str, Any]:
        return admin.integration_status(deps(), integration_id)

    return app
