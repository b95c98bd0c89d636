"""JRNI webhook → one outbound message per booking it names. API Gateway (REST proxy). Never imports exchangelib."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.logging import correlation_paths

from calsync.bootstrap.functions import function_metrics, webhook_deps
from calsync.transport.webhook import handle_webhook

logger = Logger()
metrics = function_metrics("webhook")
tracer = Tracer()


# The request's id is the correlation id: it goes with each booking's message into the outbound function's log.
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context(clear_state=True, correlation_id_path=correlation_paths.API_GATEWAY_REST)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    logger.append_keys(integration_id=(event.get("pathParameters") or {}).get("integration_id", ""))
    return handle_webhook(webhook_deps(), event, logger)
