"""JRNI webhook → one outbound message per booking it names. API Gateway (REST proxy). Never imports exchangelib."""

from __future__ import annotations

import base64
import json
from typing import Any

from aws_lambda_powertools import Logger

from calsync.domain import RequestError, RetryableError
from calsync.service import accept_jrni_webhook
from calsync.wiring import webhook_services

logger = Logger()


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    integration_id = (event.get("pathParameters") or {}).get("integration_id", "")
    logger.append_keys(integration_id=integration_id)
    raw = event.get("body") or ""
    body = base64.b64decode(raw) if event.get("isBase64Encoded") else raw.encode()
    try:
        # Every value of every header: a request carrying two Authorization headers is refused, not judged by one.
        headers = event.get("multiValueHeaders") or event.get("headers") or {}
        queued = accept_jrni_webhook(webhook_services(), integration_id, headers, body)
    except RequestError as exc:  # bad input: a 4xx, nothing queued
        logger.warning("webhook refused", extra={"status": exc.status, "reason": str(exc)})
        return _answer(exc.status, {"message": str(exc)})
    except RetryableError as exc:  # our side is briefly unavailable: JRNI retries its delivery
        logger.warning("webhook not queued, retry later", extra={"reason": str(exc)})
        return _answer(503, {"message": "try again later"})
    logger.info("webhook queued", extra={"bookings": [str(m.jrni_key) for m in queued]})
    return _answer(202, {"queued": len(queued)})


def _answer(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"Content-Type": "application/json"}, "body": json.dumps(body)}
