"""The admin REST API (IAM-authorised in AWS): integrations, mappings, status. API Gateway (REST proxy)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from calsync.bootstrap.functions import admin_deps, admin_idempotency
from calsync.transport.admin import build_admin_api

logger = Logger()
app = build_admin_api(admin_deps, admin_idempotency)


@logger.inject_lambda_context(clear_state=True, correlation_id_path="requestContext.requestId")
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.resolve(event, context)
