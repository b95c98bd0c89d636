"""Accept a JRNI webhook: authenticate it, read which bookings it names, and queue one outbound message for each.

Nothing is queued on any error, and nothing else is done here: the outbound function reads each booking fresh.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping as ReadOnlyMap
from collections.abc import Sequence
from dataclasses import dataclass

from calsync.domain import AuthenticationError, InvalidInputError, NotFoundError, TooLargeError, validation
from calsync.domain.messages import OutboundMessage
from calsync.ports import IntegrationStore, OutboundQueue, SecretStore, WebhookFormat

# API Gateway accepts up to 10 MB; no JRNI webhook comes near this, and anything larger is refused unread.
MAX_WEBHOOK_BYTES = 256 * 1024


@dataclass(frozen=True)
class WebhookDeps:
    integrations: IntegrationStore
    secrets: SecretStore
    webhooks: WebhookFormat
    outbound_queue: OutboundQueue


def accept_webhook(
    deps: WebhookDeps,
    integration_id: str,
    headers: ReadOnlyMap[str, str | Sequence[str]],
    body: bytes,
    correlation_id: str = "",
) -> list[OutboundMessage]:
    """Authenticate and parse a JRNI webhook, then queue one message per booking it names (nothing on any error).

    ``headers``: each name's value, or all its values (API Gateway's ``multiValueHeaders``). ``correlation_id``
    (the request's id) goes with each message, into the log lines of the function that syncs it."""
    if len(body) > MAX_WEBHOOK_BYTES:
        raise TooLargeError(f"the body is {len(body)} bytes; webhooks are limited to {MAX_WEBHOOK_BYTES}")
    try:
        validation.integration_id(
            integration_id
        )  # nothing longer than a key, or with control characters, is looked up
    except InvalidInputError as exc:
        raise NotFoundError(f"no integration {integration_id[:80]!r}: {exc}") from exc
    integration = deps.integrations.get(integration_id)
    if integration is None:
        raise NotFoundError(f"no integration {integration_id!r}")
    if not deps.webhooks.authentic(headers, deps.secrets.get(integration.webhook_secret_name)):
        raise AuthenticationError("the webhook's credentials do not match this integration's")
    affected = deps.webhooks.bookings(body)  # InvalidInputError for anything that is not a JRNI webhook
    messages = list(dict.fromkeys(OutboundMessage(integration.id, key, trigger) for key, trigger in affected))
    if messages:
        # The delivery's own bytes identify it: JRNI's retries of one delivery collapse, new changes never do.
        deps.outbound_queue.send(
            messages, delivery_id=hashlib.sha256(body).hexdigest(), correlation_id=correlation_id
        )
    return messages
