"""The admin API's integrations: list, create."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from calsync.transport.admin.answers import json_answer, new_router
from calsync.transport.admin.models import IntegrationIn, integration_json, integration_of
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
        services = deps()
        # Without an id, a new one; the answer names the secrets to create for it.
        integration = integration_of(body, body.id or uuid.uuid4().hex[:12], services.secrets_prefix)
        admin.create_integration(services, integration)
        return json_answer(201, integration_json(integration))

    return router
