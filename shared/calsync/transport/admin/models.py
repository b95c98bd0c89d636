"""The admin API's request bodies (pydantic, validated by Powertools' event handler) and how an integration is shown."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from calsync.domain import (
    AccessType,
    ExchangeApi,
    ExchangeAuth,
    ExchangeConnection,
    FreeBusy,
    Integration,
    InvalidInputError,
    JrniConnection,
    ScheduleBusy,
    SyncOptions,
    validation,
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


_SECRET_NAME = (
    "Secrets Manager name of the secret; optional: an integration reads only its own secrets, named "
    "<prefix><integration id>/{part} (the answer shows the name to create)"
)


class JrniIn(_Strict):
    base_url: str = Field(
        max_length=2048,
        description="JRNI API root, e.g. https://example.jrni.com (https, unless test_endpoints)",
    )
    company_id: str = Field(min_length=1, max_length=64, description="the parent company")
    secret_name: str | None = Field(
        default=None,
        max_length=512,
        description=_SECRET_NAME.format(part="jrni") + ': {"app_id","app_key","email","password"}',
    )


class ExchangeIn(_Strict):
    endpoint: str = Field(
        max_length=2048,
        description="the EWS URL, e.g. https://mail.example.com/EWS/Exchange.asmx (https, unless test_endpoints)",
    )
    secret_name: str | None = Field(
        default=None,
        max_length=512,
        description=_SECRET_NAME.format(part="exchange")
        + ': {"username","password"} or {"tenant_id","client_id","client_secret"}',
    )
    auth: ExchangeAuth = ExchangeAuth.BASIC
    access_type: AccessType = AccessType.IMPERSONATION
    server_version: str = "Exchange2016"
    verify_tls: bool = True
    token_url: str | None = Field(
        default=None, max_length=2048, description="OAuth2 token endpoint; none: Microsoft Entra ID's"
    )
    api: ExchangeApi = ExchangeApi.EWS


class ScheduleBusyIn(_Strict):
    enabled: bool = Field(
        default=False,
        description="show the time outside each mapped staff member's or resource's JRNI working schedule as busy "
        "items in their calendar",
    )
    subject: str = Field(default="Outside working hours", min_length=1, max_length=255)
    free_busy: Literal["Busy", "OOF"] = "Busy"


class OptionsIn(_Strict):
    include_buffers: bool = True
    sync_jrni_blocks: bool = True
    block_subject: str = Field(default="Unavailable", min_length=1, max_length=255)
    plain_text_body: bool = Field(default=False, description="the body template writes plain text, not HTML")
    schedule_busy: ScheduleBusyIn = ScheduleBusyIn()


class IntegrationIn(_Strict):
    id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    name: str = Field(min_length=1, max_length=200)
    jrni: JrniIn
    exchange: ExchangeIn
    webhook_secret_name: str | None = Field(
        default=None,
        max_length=512,
        description=_SECRET_NAME.format(part="webhook") + ': {"username","password"} or {"token"}',
    )
    options: OptionsIn = OptionsIn()
    subject_template: str | None = Field(
        default=None,
        max_length=2_000,
        description="Liquid; none: the default (README, Subject and body templates)",
    )
    body_template: str | None = Field(
        default=None,
        max_length=16_000,
        description="Liquid; none: the default (README, Subject and body templates)",
    )
    appointment_lock: bool = True
    auto_confirm: bool = False
    test_endpoints: bool = Field(
        default=False,
        description="a test integration (an emulator, a staging server): its endpoints may be plain http, "
        "and on this machine",
    )


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


class ConnectionTestIn(_Strict):
    mailbox: str | None = Field(
        default=None,
        max_length=320,
        description="check this mailbox (mapped or not) instead of the mapped ones (the first 50)",
    )
    write: bool = Field(
        default=False,
        description="also create a private probe item in each mailbox's calendar and delete it at once",
    )


class PreviewIn(_Strict):
    subject_template: str | None = Field(
        default=None, max_length=2_000, description="Liquid to try; none: the integration's subject template"
    )
    body_template: str | None = Field(
        default=None, max_length=16_000, description="Liquid to try; none: the integration's body template"
    )
    plain_text_body: bool | None = Field(default=None, description="none: as the integration's options say")
    booking_id: str | None = Field(
        default=None,
        pattern=r"^[0-9]{1,18}$",
        description="a JRNI booking of the integration's company or a child company; none: the sample booking",
    )


class AutomapIn(_Strict):
    pass


class ReplayIn(_Strict):
    ids: list[str] | None = Field(
        default=None, description="the dead letters to replay (their ids as listed); left out: all of them"
    )


class InvalidIntegrationError(InvalidInputError):
    """An integration's body that is well-formed but cannot be used (an endpoint, a secret name): answered 422, as
    the body's other checks are."""


def integration_of(body: IntegrationIn, integration_id: str, secrets_prefix: str = "") -> Integration:
    """The integration a validated request body describes (POST, and PATCH after its merge): its endpoints must be
    remote https servers (unless ``test_endpoints``), its secrets its own (``secrets_prefix``: the stack's);
    InvalidIntegrationError saying which field is wrong and why."""
    try:
        return _integration_of(body, integration_id, secrets_prefix)
    except InvalidIntegrationError:
        raise
    except InvalidInputError as exc:
        raise InvalidIntegrationError(str(exc)) from exc


def _integration_of(body: IntegrationIn, integration_id: str, secrets_prefix: str) -> Integration:
    own = validation.integration_id(integration_id)
    test = body.test_endpoints
    jrni, exchange = body.jrni, body.exchange
    token_url = exchange.token_url
    return Integration(
        id=own,
        name=body.name,
        jrni=JrniConnection(
            validation.endpoint_url(jrni.base_url, what="JRNI base_url", test_endpoint=test),
            validation.jrni_id(jrni.company_id),  # part of every JRNI path calsync calls
            validation.secret_name(own, "jrni", jrni.secret_name, secrets_prefix),
        ),
        exchange=ExchangeConnection(
            **{
                **exchange.model_dump(),
                "endpoint": validation.endpoint_url(
                    exchange.endpoint, what="Exchange endpoint", test_endpoint=test
                ),
                "secret_name": validation.secret_name(own, "exchange", exchange.secret_name, secrets_prefix),
                "token_url": None
                if token_url is None
                else validation.endpoint_url(token_url, what="Exchange token_url", test_endpoint=test),
            }
        ),
        webhook_secret_name=validation.secret_name(own, "webhook", body.webhook_secret_name, secrets_prefix),
        options=SyncOptions(
            **body.options.model_dump(exclude={"schedule_busy"}),
            schedule_busy=ScheduleBusy(
                enabled=body.options.schedule_busy.enabled,
                subject=body.options.schedule_busy.subject,
                free_busy=FreeBusy(body.options.schedule_busy.free_busy),
            ),
        ),
        subject_template=body.subject_template,
        body_template=body.body_template,
        appointment_lock=body.appointment_lock,
        auto_confirm=body.auto_confirm,
        test_endpoints=test,
    )


def integration_json(integration: Integration) -> dict[str, Any]:
    """An integration as the API shows it: names of secrets only, never their values."""
    changed = integration.templates_changed_at
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
            "plain_text_body": integration.options.plain_text_body,
            "schedule_busy": {
                "enabled": integration.options.schedule_busy.enabled,
                "subject": integration.options.schedule_busy.subject,
                "free_busy": integration.options.schedule_busy.free_busy.value,
            },
        },
        "subject_template": integration.subject_template,
        "body_template": integration.body_template,
        "appointment_lock": integration.appointment_lock,
        "auto_confirm": integration.auto_confirm,
        "test_endpoints": integration.test_endpoints,
        "templates_changed_at": changed.isoformat() if changed else None,
    }


def integration_body(integration: Integration) -> dict[str, Any]:
    """An integration as the POST body that would make it (what a PATCH is merged into)."""
    shown = integration_json(integration)
    return {name: shown[name] for name in IntegrationIn.model_fields if name in shown}
