"""The outbound FIFO queue on SQS: one message group per booking, a dead-letter queue that says why."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from calsync.domain import JrniKey, PermanentError, RetryableError
from calsync.ports import OutboundMessage

# SQS caps a visibility change at 12 hours; a back-off beyond that is not a back-off any more.
MAX_DELAY_SECONDS = 12 * 60 * 60
_BATCH = 10


def encode(message: OutboundMessage) -> str:
    return json.dumps(
        {
            "integration_id": message.integration_id,
            "company_id": message.jrni_key.company_id,
            "booking_id": message.jrni_key.booking_id,
            "trigger": message.trigger,
        },
        sort_keys=True,
    )


def decode(body: str) -> OutboundMessage:
    """Parse a message body; PermanentError for anything that is not one of ours (it can never succeed)."""
    try:
        data = json.loads(body)
        return OutboundMessage(
            str(data["integration_id"]),
            JrniKey(str(data["company_id"]), str(data["booking_id"])),
            str(data.get("trigger", "")),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise PermanentError(f"not an outbound message: {exc}") from exc


def group_of(message: OutboundMessage) -> str:
    """One message group per booking: its changes stay in order, other bookings are not held up."""
    return f"{message.integration_id}/{message.jrni_key}"


class SqsOutboundQueue:
    """``OutboundQueue`` on an SQS FIFO queue (with its FIFO dead-letter queue)."""

    def __init__(self, client: Any, queue_url: str, dead_letter_url: str | None = None) -> None:
        self.client = client
        self.queue_url = queue_url
        self.dead_letter_url = dead_letter_url

    def send(self, messages: list[OutboundMessage], delivery_id: str = "") -> None:
        """Enqueue in order. ``delivery_id`` identifies the webhook delivery: an exact redelivery is deduplicated by
        SQS, while a new change to the same booking (a different delivery) is always queued."""
        entries = []
        for index, message in enumerate(messages):
            body = encode(message)
            dedup = hashlib.sha256(f"{delivery_id}|{body}".encode()).hexdigest()
            entries.append(
                {
                    "Id": str(index),
                    "MessageBody": body,
                    "MessageGroupId": group_of(message),
                    "MessageDeduplicationId": dedup,
                }
            )
        for start in range(0, len(entries), _BATCH):
            chunk = entries[start : start + _BATCH]
            try:
                answer = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=chunk)
            except (BotoCoreError, ClientError) as exc:
                raise RetryableError(f"the outbound queue refused messages: {exc}") from exc
            if answer.get("Failed"):
                raise RetryableError(
                    f"the outbound queue refused {len(answer['Failed'])} message(s): {answer['Failed']}"
                )

    def postpone(self, receipt_handle: str, seconds: float) -> None:
        """Keep a received message invisible for ``seconds`` (a server's back-off), instead of retrying at once."""
        delay = min(MAX_DELAY_SECONDS, max(1, int(seconds + 0.999)))
        self.client.change_message_visibility(
            QueueUrl=self.queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=delay
        )

    def dead_letter(self, body: str, group: str, reason: str, message_id: str) -> None:
        """Move a message that can never succeed to the dead-letter queue, with the reason beside it."""
        if not self.dead_letter_url:
            raise PermanentError(reason)
        self.client.send_message(
            QueueUrl=self.dead_letter_url,
            MessageBody=body,
            MessageGroupId=group,
            MessageDeduplicationId=hashlib.sha256(f"{message_id}|dead".encode()).hexdigest(),
            MessageAttributes={"reason": {"DataType": "String", "StringValue": reason[:1000]}},
        )
