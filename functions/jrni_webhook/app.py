"""JRNI webhook → one outbound message per booking it names. API Gateway (REST proxy). Never imports exchangelib."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from calsync.bootstrap.functions import webhook_deps
from calsync.transport.webhook import handle_webhook

logger = Logger()


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    logger.append_keys(integration_id=(event.get("pathParameters") or {}).get("integration_id", ""))
    return handle_webhook(webhook_deps(), event, logger)
