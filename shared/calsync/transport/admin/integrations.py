"""The admin API's integrations: list, create."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from calsync.domain import ExchangeConnection, Integration, JrniConnection, SyncOptions
from calsync.transport.admin.answers import json_answer, new_router
from calsync.transport.admin.models import IntegrationIn, integration_json
from calsync.usecases import admin
from calsync.usecases.admin import AdminDeps


def routes(deps: Callable[[], AdminDeps]) -> Router:
    """The integrations' routes; ``deps`` is called per request."""
    router = new_router()

    @router.get("/admin/integrations", summary="List integrations")
    def list_integrations() -> dict[str, Any]:
        return {"integrations": [integration_json(i) for i in admin.integrations(deps())]}

    @router.post("/admin/integrations", summary="Create an integration")
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
        return json_answer(201, integration_json(integration))

    return router
