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


class ReplayIn(_Strict):
    ids: list[str] | None = Field(
        default=None, description="the dead letters to replay (their ids as listed); left out: all of them"
    )


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
