"""calsync's three SQS FIFO queues, each with its one codec and a dead-letter queue that says why.

- the outbound queue (``OutboundMessage``): one message group per booking, sent by the webhook function (and by a
  reconcile, for bookings JRNI changed behind a missed webhook);
- the inbound queue (``InboundMessage``): one message group per mailbox, sent by the streaming task;
- the reconcile queue (``ReconcileMessage``): sent by the schedule, the admin API and the reconcile function itself;
  one message group per integration for its runs, one per mailbox for a mapping's reconcile.

Every SQS-triggered function can postpone a message (a server's back-off) and dead-letter one that can never
succeed, with its reason and attempts, recorded for its integration (``calsync.adapters.aws.dead_letters`` lists
and replays them).

Each message sent carries a ``correlation_id`` message attribute (the webhook's request id, a reconcile's run id, or
an id of the inbound wake's own), which the function handling it puts in every log line of that message.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from calsync.domain import JrniKey, PermanentError, RetryableError
from calsync.domain.dead_letters import DeadLetter, DeadLetterQueue
from calsync.domain.messages import (
    MAX_NOTIFIED_ITEMS,
    InboundMessage,
    NotifiedItem,
    OutboundMessage,
    ReconcileMessage,
    ReconcileStep,
    WakeReason,
)
from calsync.ports import DeadLetterStore

# SQS caps a visibility change at 12 hours; a back-off beyond that is not a back-off any more.
MAX_DELAY_SECONDS = 12 * 60 * 60
_BATCH = 10  # SQS SendMessageBatch maximum
CORRELATION_ID = "correlation_id"  # the message attribute naming where a message comes from


def correlated(correlation_id: str) -> dict[str, Any]:
    """The message attributes of an entry carrying ``correlation_id`` (none when it is empty: SQS refuses an empty
    attribute value)."""
    if not correlation_id:
        return {}
    return {
        "MessageAttributes": {CORRELATION_ID: {"DataType": "String", "StringValue": correlation_id[:256]}}
    }


# ---------------------------------------------------------------------------------------------------- codecs


def encode_outbound(message: OutboundMessage) -> str:
    return json.dumps(
        {
            "integration_id": message.integration_id,
            "company_id": message.jrni_key.company_id,
            "booking_id": message.jrni_key.booking_id,
            "trigger": message.trigger,
        },
        sort_keys=True,
    )


def decode_outbound(body: str) -> OutboundMessage:
    """Parse an outbound message body; PermanentError for anything that is not one of ours (it can never succeed)."""
    try:
        data = json.loads(body)
        return OutboundMessage(
            str(data["integration_id"]),
            JrniKey(str(data["company_id"]), str(data["booking_id"])),
            str(data.get("trigger", "")),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise PermanentError(f"not an outbound message: {exc}") from exc


def outbound_group(message: OutboundMessage) -> str:
    """One message group per booking: its changes stay in order, other bookings are not held up."""
    return f"{message.integration_id}/{message.jrni_key}"


def encode_inbound(message: InboundMessage) -> str:
    """The body. ``items`` (``[[item id, change key], ...]``) only when the message names its notified items."""
    data: dict[str, Any] = {
        "integration": message.integration_id,
        "mailbox": message.mailbox,
        "reason": message.reason.value,
    }
    if message.notified is not None:
        data["items"] = [[item.item_id, item.change_key] for item in message.notified]
    return json.dumps(data, sort_keys=True)


def decode_inbound(body: str) -> InboundMessage:
    """Parse an inbound message body; PermanentError for anything that is not one of ours (it can never succeed).

    A body without ``items`` (one written before they existed, or a resync) names no items: the mailbox is read; so
    does one naming more than ``MAX_NOTIFIED_ITEMS``."""
    try:
        data = json.loads(body)
        raw_items = data.get("items")
        notified: tuple[NotifiedItem, ...] | None = None
        if isinstance(raw_items, list) and 0 < len(raw_items) <= MAX_NOTIFIED_ITEMS:
            notified = tuple(NotifiedItem(str(item_id), str(change_key)) for item_id, change_key in raw_items)
        return InboundMessage(
            str(data["integration"]), str(data["mailbox"]), WakeReason(data.get("reason", "timer")), notified
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise PermanentError(f"not an inbound message: {exc}") from exc


def inbound_group(message: InboundMessage) -> str:
    """One message group per mailbox: one mailbox is synced by one Lambda at a time, others are not held up."""
    return f"{message.integration_id}/{message.mailbox}"


def encode_reconcile(message: ReconcileMessage) -> str:
    data: dict[str, Any] = {"kind": message.step.value, "deep": message.deep}
    if message.integration_id:
        data["integration"] = message.integration_id
    if message.run_id:
        data["run"] = message.run_id
    if message.mailbox:
        data["mailbox"] = message.mailbox
    if message.force:
        data["force"] = True
    return json.dumps(data, sort_keys=True)


def decode_reconcile(body: str) -> ReconcileMessage:
    """Parse a reconcile message body (the schedule's is ``{"kind": "schedule", "deep": ...}``); PermanentError for
    anything else."""
    try:
        data = json.loads(body)
        step = ReconcileStep(data["kind"])
        message = ReconcileMessage(
            step,
            data.get("deep", False) is True,
            str(data.get("integration", "")),
            str(data.get("run", "")),
            str(data.get("mailbox", "")),
            data.get("force", False) is True,
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise PermanentError(f"not a reconcile message: {exc}") from exc
    if step is not ReconcileStep.SCHEDULE and not (message.integration_id and message.run_id):
        raise PermanentError(f"a {step.value} reconcile message names no integration and run")
    if step is ReconcileStep.MAPPING and not message.mailbox:
        raise PermanentError("a mapping reconcile message names no mailbox")
    return message


def reconcile_group(message: ReconcileMessage) -> str:
    """A mailbox is reconciled by one Lambda at a time; an integration's runs start one after the other."""
    if message.step is ReconcileStep.MAPPING:
        return f"{message.integration_id}/{message.mailbox}"
    if message.step is ReconcileStep.RUN:
        return f"run/{message.integration_id}"
    return "schedule"


def _outbound_about(body: str) -> tuple[str, dict[str, str]]:
    message = decode_outbound(body)
    return message.integration_id, {"booking": str(message.jrni_key)}


def _inbound_about(body: str) -> tuple[str, dict[str, str]]:
    message = decode_inbound(body)
    return message.integration_id, {"mailbox": message.mailbox}


def _reconcile_about(body: str) -> tuple[str, dict[str, str]]:
    message = decode_reconcile(body)
    about = {"step": message.step.value}
    if message.run_id:
        about["run"] = message.run_id
    if message.mailbox:
        about["mailbox"] = message.mailbox
    return message.integration_id, about


_ABOUT: dict[DeadLetterQueue, Callable[[str], tuple[str, dict[str, str]]]] = {
    DeadLetterQueue.OUTBOUND: _outbound_about,
    DeadLetterQueue.INBOUND: _inbound_about,
    DeadLetterQueue.RECONCILE: _reconcile_about,
}


def described(queue: DeadLetterQueue, body: str) -> tuple[str, dict[str, str]] | None:
    """The integration a message of ``queue`` belongs to and what it is about (its booking, its mailbox, its run);
    None for a message that is no integration's (the schedule's tick, or not one of ours)."""
    try:
        integration_id, about = _ABOUT[queue](body)
    except PermanentError:
        return None
    return (integration_id, about) if integration_id else None


# ---------------------------------------------------------------------------------------------------- queues


class _FifoQueue:
    """What both queues share: sending in batches of ten, postponing, dead-lettering."""

    name = "queue"
    kind = DeadLetterQueue.OUTBOUND

    def __init__(
        self,
        client: Any,
        queue_url: str,
        dead_letter_url: str | None = None,
        dead_letters: DeadLetterStore | None = None,
    ) -> None:
        self.client = client
        self.queue_url = queue_url
        self.dead_letter_url = dead_letter_url
        self.dead_letters = dead_letters  # where each dead letter is recorded for its integration's operator

    def _send_entries(self, entries: list[dict[str, Any]], *, delay: float = 0.0, attempts: int = 1) -> None:
        for start in range(0, len(entries), _BATCH):
            chunk = entries[start : start + _BATCH]
            for attempt in range(attempts, 0, -1):
                try:
                    answer = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=chunk)
                except (BotoCoreError, ClientError) as exc:
                    raise RetryableError(
                        f"the {self.name} refused messages: {exc}", delay_seconds=delay
                    ) from exc
                failed = {entry["Id"] for entry in answer.get("Failed", [])}
                if not failed:
                    break
                if attempt == 1:
                    raise RetryableError(
                        f"the {self.name} refused {len(failed)} message(s): {answer['Failed']}",
                        delay_seconds=delay,
                    )
                chunk = [entry for entry in chunk if entry["Id"] in failed]

    def _send_each_once(self, bodies: list[tuple[str, str, str]]) -> None:
        """(body, group, correlation id) triples, each with a deduplication id of its own (and, with no correlation
        id, that id as its correlation id); entries a batch refused sent once more."""
        entries = []
        for index, (body, group, correlation_id) in enumerate(bodies):
            unique = uuid.uuid4().hex
            entries.append(
                {
                    "Id": str(index),
                    "MessageBody": body,
                    "MessageGroupId": group,
                    "MessageDeduplicationId": unique,
                    **correlated(correlation_id or unique),
                }
            )
        self._send_entries(entries, delay=1.0, attempts=2)

    def postpone(self, receipt_handle: str, seconds: float) -> None:
        """Keep a received message invisible for ``seconds`` (a server's back-off), instead of retrying at once."""
        delay = min(MAX_DELAY_SECONDS, max(1, int(seconds + 0.999)))
        self.client.change_message_visibility(
            QueueUrl=self.queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=delay
        )

    def dead_letter(self, body: str, group: str, reason: str, message_id: str, attempts: int = 1) -> None:
        """Move a message that can never succeed to the dead-letter queue, with the reason and the number of attempts
        beside it, and record it for its integration (``GET /admin/integrations/{id}/dead-letters``).

        Sent first, recorded second: when the record cannot be written, the error is raised, the message comes back
        after its visibility timeout and is dead-lettered again (the same deduplication id: SQS keeps one copy)."""
        if not self.dead_letter_url:
            raise PermanentError(reason)
        answer = self.client.send_message(
            QueueUrl=self.dead_letter_url,
            MessageBody=body,
            MessageGroupId=group,
            MessageDeduplicationId=hashlib.sha256(f"{message_id}|dead".encode()).hexdigest(),
            MessageAttributes={
                "reason": {"DataType": "String", "StringValue": reason[:1000]},
                "attempts": {"DataType": "Number", "StringValue": str(attempts)},
            },
        )
        about = described(self.kind, body)
        if self.dead_letters is None or about is None:
            return
        integration_id, what = about
        self.dead_letters.record(
            DeadLetter(
                integration_id,
                str(answer["MessageId"]),
                self.kind,
                what,
                reason,
                datetime.now(UTC),
                attempts,
            )
        )


class SqsOutboundQueue(_FifoQueue):
    """``OutboundQueue`` on the outbound SQS FIFO queue (with its FIFO dead-letter queue)."""

    name = "outbound queue"
    kind = DeadLetterQueue.OUTBOUND

    def send(self, messages: list[OutboundMessage], delivery_id: str = "", correlation_id: str = "") -> None:
        """Enqueue in order. ``delivery_id`` identifies the webhook delivery: an exact redelivery is deduplicated by
        SQS, while a new change to the same booking (a different delivery) is always queued. ``correlation_id``
        goes with each message (a message attribute)."""
        entries: list[dict[str, Any]] = []
        for index, message in enumerate(messages):
            body = encode_outbound(message)
            entries.append(
                {
                    "Id": str(index),
                    "MessageBody": body,
                    "MessageGroupId": outbound_group(message),
                    "MessageDeduplicationId": hashlib.sha256(f"{delivery_id}|{body}".encode()).hexdigest(),
                    **correlated(correlation_id),
                }
            )
        self._send_entries(entries)


class SqsInboundQueue(_FifoQueue):
    """``InboundNotifier`` on the inbound SQS FIFO queue (with its FIFO dead-letter queue)."""

    name = "inbound queue"
    kind = DeadLetterQueue.INBOUND

    def send(self, messages: list[InboundMessage]) -> None:
        """Enqueue, ten per request. Each message gets its own deduplication id, kept when the SDK retries a
        request, so a retried send is delivered once while a later wake of the same mailbox is never dropped as a
        duplicate (the streaming task coalesces wakes itself). Entries a batch refused are sent once more. Each wake's
        correlation id is its deduplication id: the inbound function's log lines for it carry that id."""
        self._send_each_once([(encode_inbound(m), inbound_group(m), "") for m in messages])


class SqsReconcileQueue(_FifoQueue):
    """``ReconcileQueue`` on the reconcile SQS FIFO queue (with its FIFO dead-letter queue)."""

    name = "reconcile queue"
    kind = DeadLetterQueue.RECONCILE

    def send(self, messages: list[ReconcileMessage]) -> None:
        """Enqueue, ten per request, each with its own deduplication id (a retried send is delivered once). A run's
        messages carry its run id as their correlation id."""
        self._send_each_once([(encode_reconcile(m), reconcile_group(m), m.run_id) for m in messages])
