"""The admin API's request bodies (pydantic, validated by Powertools' event handler) and how an integration is shown."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from calsync.domain import (
    AccessType,
    ExchangeApi,
    ExchangeAuth,
    ExchangeConnection,
    Integration,
    JrniConnection,
    ResourceKind,
    SyncOptions,
)


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


class _Shown(BaseModel):
    # Answers may carry fields added after this model was written: shown as they are, never dropped.
    model_config = ConfigDict(extra="allow")


class ErrorOut(_Shown):
    message: str = Field(description="what is wrong and what to do")


class JrniOut(_Shown):
    base_url: str
    company_id: str
    secret_name: str


class ExchangeOut(_Shown):
    endpoint: str
    secret_name: str
    auth: ExchangeAuth
    access_type: AccessType
    server_version: str
    verify_tls: bool
    token_url: str | None
    api: ExchangeApi


class OptionsOut(_Shown):
    include_buffers: bool
    sync_jrni_blocks: bool
    block_subject: str


class IntegrationOut(_Shown):
    """An integration as the API shows it (the POST body's fields, and where JRNI's webhooks go)."""

    id: str
    name: str
    jrni: JrniOut
    exchange: ExchangeOut
    webhook_secret_name: str
    webhook_path: str = Field(description="where JRNI sends this integration's webhooks, below the API's URL")
    options: OptionsOut
    subject_template: str | None
    body_template: str | None
    appointment_lock: bool
    auto_confirm: bool


class BackfillOut(_Shown):
    kind: ResourceKind
    jrni_id: str
    run_id: str = Field(description="the deep reconcile backfilling the mapping: GET .../reconcile/{run_id}")


class ImportOut(_Shown):
    applied: int = Field(description="mappings made or changed")
    unchanged: int = Field(description="rows that were mapped so already")
    backfills: list[BackfillOut]


class RowErrorOut(_Shown):
    line: int = Field(
        description="the row's line (CSV: as a spreadsheet numbers it, the header is 1; JSON: 1 for the first)"
    )
    message: str


class ImportRefusedOut(ErrorOut):
    errors: list[RowErrorOut]


def integration_of(body: IntegrationIn, integration_id: str) -> Integration:
    """The integration a validated request body describes (POST, and PATCH after its merge)."""
    return Integration(
        id=integration_id,
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


def integration_body(integration: Integration) -> dict[str, Any]:
    """An integration as the POST body that would make it (what a PATCH is merged into)."""
    shown = integration_json(integration)
    return {name: shown[name] for name in IntegrationIn.model_fields if name in shown}
