"""The inbound FIFO queue, as the streaming task writes to it: one message per mailbox to sync now."""

from __future__ import annotations

import json
import uuid
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from calsync.domain import PermanentError, RetryableError
from calsync.streaming.ports import MAX_NOTIFIED_ITEMS, InboundWake, NotifiedItem, WakeReason

_BATCH = 10  # SQS SendMessageBatch maximum


def encode(wake: InboundWake) -> str:
    """The message body. ``items`` (``[[item id, change key], ...]``) only when the wake names its notified items."""
    data: dict[str, Any] = {
        "integration": wake.integration_id,
        "mailbox": wake.mailbox,
        "reason": wake.reason.value,
    }
    if wake.notified is not None:
        data["items"] = [[item.item_id, item.change_key] for item in wake.notified]
    return json.dumps(data, sort_keys=True)


def decode(body: str) -> InboundWake:
    """Parse a message body; PermanentError for anything that is not one of ours (it can never succeed).

    A body without ``items`` (one written before they existed, or a resync) names no items: the mailbox is read; so
    does one naming more than ``MAX_NOTIFIED_ITEMS``."""
    try:
        data = json.loads(body)
        raw_items = data.get("items")
        notified: tuple[NotifiedItem, ...] | None = None
        if isinstance(raw_items, list) and 0 < len(raw_items) <= MAX_NOTIFIED_ITEMS:
            notified = tuple(NotifiedItem(str(item_id), str(change_key)) for item_id, change_key in raw_items)
        return InboundWake(
            str(data["integration"]), str(data["mailbox"]), WakeReason(data.get("reason", "timer")), notified
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise PermanentError(f"not an inbound message: {exc}") from exc


def group_of(wake: InboundWake) -> str:
    """One message group per mailbox: one mailbox is synced by one Lambda at a time, others are not held up."""
    return f"{wake.integration_id}/{wake.mailbox}"


class SqsInboundNotifier:
    """``InboundNotifier`` on the inbound SQS FIFO queue."""

    def __init__(self, client: Any, queue_url: str) -> None:
        self.client = client
        self.queue_url = queue_url

    def send(self, wakes: list[InboundWake]) -> None:
        """Enqueue, ten per request. Each message gets its own deduplication id, kept when the SDK retries a
        request, so a retried send is delivered once while a later wake of the same mailbox is never dropped as a
        duplicate (the task coalesces wakes itself)."""
        entries = [
            {
                "Id": str(index),
                "MessageBody": encode(wake),
                "MessageGroupId": group_of(wake),
                "MessageDeduplicationId": uuid.uuid4().hex,
            }
            for index, wake in enumerate(wakes)
        ]
        for start in range(0, len(entries), _BATCH):
            self._send(entries[start : start + _BATCH])

    def _send(self, entries: list[dict[str, str]], attempts: int = 2) -> None:
        try:
            answer = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
        except (BotoCoreError, ClientError) as exc:
            raise RetryableError(f"the inbound queue refused messages: {exc}", delay_seconds=1.0) from exc
        failed = {entry["Id"] for entry in answer.get("Failed", [])}
        if failed and attempts > 1:
            self._send([entry for entry in entries if entry["Id"] in failed], attempts - 1)
        elif failed:
            raise RetryableError(
                f"the inbound queue refused {len(failed)} message(s): {answer['Failed']}", delay_seconds=1.0
            )
