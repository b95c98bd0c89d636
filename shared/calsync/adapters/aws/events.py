"""The customer's event bus on EventBridge: what calsync did, for the customer's own rules and notifications.

Each event is a flat JSON object with a ``kind`` (``booking.updated``, ``booking.confirmed`` ...). It is sent as
``Source`` = the publisher's source (``calsync``), ``DetailType`` = its kind, ``Detail`` = the whole object (kind
included, so a target that only sees the detail still knows what happened). A customer's rule matches e.g.
``{"source": ["calsync"], "detail-type": ["booking.confirmed"]}``.

Delivery is at least once: when the bus refuses part of them, the message that carried them is retried and its
events are published again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from calsync.domain import PermanentError, RetryableError

log = logging.getLogger(__name__)

BATCH = 10  # PutEvents takes at most ten entries
# Refusals retrying cannot fix: the bus, the role's permissions or the event itself must change first.
_PERMANENT = {
    "AccessDenied",
    "AccessDeniedException",
    "ResourceNotFoundException",
    "NotAuthorizedForSourceException",
    "ValidationException",
    "InvalidArgument",
    "MalformedDetail",
    "UnrecognizedClientException",
    "InvalidSignatureException",
}


class EventBridgePublisher:
    """``EventPublisher`` on one EventBridge bus (``bus_name`` is its name or ARN)."""

    def __init__(self, client: Any, bus_name: str, source: str = "calsync") -> None:
        self.client = client
        self.bus_name = bus_name
        self.source = source

    def publish(self, events: list[dict[str, object]]) -> None:
        """Put every event on the bus, ten to a call; RetryableError / PermanentError when the bus refuses some."""
        entries = [self._entry(event) for event in events]
        for start in range(0, len(entries), BATCH):
            self._put(entries[start : start + BATCH])
        if entries:
            log.info("published %d event(s) on %s", len(entries), self.bus_name)

    def _entry(self, event: Mapping[str, object]) -> dict[str, str]:
        kind = event.get("kind")
        if not isinstance(kind, str) or not kind:
            raise PermanentError(f"an event for the bus has no kind: {sorted(event)}")
        return {
            "EventBusName": self.bus_name,
            "Source": self.source,
            "DetailType": kind,
            "Detail": json.dumps(event, sort_keys=True, default=str),
        }

    def _put(self, entries: list[dict[str, str]]) -> None:
        try:
            answer = self.client.put_events(Entries=entries)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            said = f"EventBridge refused events for bus {self.bus_name!r} ({code})"
            if code in _PERMANENT:
                raise PermanentError(
                    f"{said}: does the bus exist, and may calsync's role put events on it?"
                ) from exc
            raise RetryableError(said) from exc
        except NoCredentialsError as exc:
            raise PermanentError("no AWS credentials to put events on the bus with") from exc
        except BotoCoreError as exc:
            raise RetryableError(f"EventBridge could not be reached: {type(exc).__name__}") from exc
        failed = [
            (entry, result)
            for entry, result in zip(entries, answer.get("Entries", []), strict=False)
            if result.get("ErrorCode")
        ]
        if not failed and int(answer.get("FailedEntryCount", 0)) == 0:
            return
        codes = sorted({str(result.get("ErrorCode")) for _, result in failed}) or ["unknown"]
        said = (
            f"EventBridge refused {len(failed) or answer.get('FailedEntryCount')} of {len(entries)} event(s) "
            f"on bus {self.bus_name!r}: {', '.join(codes)}"
        )
        if any(code in _PERMANENT for code in codes):
            raise PermanentError(said)
        raise RetryableError(said)
