"""The admin REST API (IAM-authorised in AWS): integrations, mappings, status. API Gateway (REST proxy)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.logging import correlation_paths

from calsync.bootstrap.functions import admin_deps, admin_idempotency, function_metrics
from calsync.transport.admin import build_admin_api

logger = Logger()
metrics = function_metrics("admin")
tracer = Tracer()
app = build_admin_api(admin_deps, admin_idempotency)


# Answers name mailboxes and integration settings: kept out of the traces (capture_response=False).
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context(clear_state=True, correlation_id_path=correlation_paths.API_GATEWAY_REST)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.resolve(event, context)
