"""A JRNI webhook delivery over API Gateway (REST proxy) → its answer: queued (202), refused (4xx, nothing queued),
or "try again later" (503, JRNI retries its delivery)."""

from __future__ import annotations

import base64
import json
from typing import Any

from calsync.domain import RequestError, RetryableError
from calsync.transport.http import status_of
from calsync.usecases.accept_webhook import WebhookDeps, accept_webhook


def handle_webhook(deps: WebhookDeps, event: dict[str, Any], logger: Any) -> dict[str, Any]:
    integration_id = (event.get("pathParameters") or {}).get("integration_id", "")
    raw = event.get("body") or ""
    body = base64.b64decode(raw) if event.get("isBase64Encoded") else raw.encode()
    try:
        # Every value of every header: a request carrying two Authorization headers is refused, not judged by one.
        headers = event.get("multiValueHeaders") or event.get("headers") or {}
        # API Gateway's id of the request: the outbound function's log lines for each booking carry it too.
        request_id = str((event.get("requestContext") or {}).get("requestId") or "")
        queued = accept_webhook(deps, integration_id, headers, body, correlation_id=request_id)
    except RequestError as exc:  # bad input: a 4xx, nothing queued
        status = status_of(exc)
        logger.warning("webhook refused", extra={"status": status, "reason": str(exc)})
        return _answer(status, {"message": str(exc)})
    except RetryableError as exc:  # our side is briefly unavailable: JRNI retries its delivery
        logger.warning("webhook not queued, retry later", extra={"reason": str(exc)})
        return _answer(503, {"message": "try again later"})
    logger.info("webhook queued", extra={"bookings": [str(m.jrni_key) for m in queued]})
    return _answer(202, {"queued": len(queued)})


def _answer(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"Content-Type": "application/json"}, "body": json.dumps(body)}
