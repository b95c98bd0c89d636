"""``DeadLetterQueues`` on the three SQS FIFO dead-letter queues, which every integration shares.

Reading a dead-letter queue means receiving its messages: each walk receives with a short visibility timeout (so a
crash mid-walk hides nothing for long), keeps what it saw invisible until the walk ends (a FIFO queue would otherwise
hand the same messages out again), then makes every message it did not move visible again at once.

A replay sends each of the integration's messages to its source queue with a new deduplication id, in its own message
group, and deletes it from the dead-letter queue only once that send succeeded: a crash in between leaves one copy in
each, and the second run of it finds nothing to do (each message only says what to look at). SQS's own
``StartMessageMoveTask`` is not used: it moves every message of a dead-letter queue, whichever integration it belongs
to, and does not say which ones it moved.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from calsync.adapters.aws.queues import described
from calsync.domain import RetryableError
from calsync.domain.dead_letters import REDRIVEN, DeadLetter, DeadLetterQueue
from calsync.ports import ReplayOutcome

# A message received by a walk stays hidden this long at most, should the walk never finish.
WALK_VISIBILITY_SECONDS = 30
# A walk of one queue stops after this long: a replay may walk each of the three queues twice (looking for an id,
# then moving), and the admin API answers within API Gateway's 29 s.
WALK_SECONDS = 4.0
_BATCH = 10  # SQS ReceiveMessage and ChangeMessageVisibilityBatch maximum


@dataclass(frozen=True)
class QueuePair:
    """A work queue and its dead-letter queue."""

    source_url: str
    dead_letter_url: str


@dataclass(frozen=True)
class _Held:
    letter: DeadLetter | None  # None: another integration's message (or no integration's)
    receipt: str
    body: str
    group: str


class SqsDeadLetterQueues:
    """``DeadLetterQueues`` on SQS: ``queues`` names each queue's URL and its dead-letter queue's."""

    def __init__(
        self, client: Any, queues: Mapping[DeadLetterQueue, QueuePair], *, walk_seconds: float = WALK_SECONDS
    ) -> None:
        self.client = client
        self.queues = dict(queues)
        self.walk_seconds = walk_seconds

    def held(self, integration_id: str) -> list[DeadLetter]:
        found: list[DeadLetter] = []
        for kind, pair in self.queues.items():
            if not self._holds_any(pair.dead_letter_url, kind):
                continue  # nothing there: no walk at all
            with self._walk(kind, pair, integration_id) as walk:
                found += [held.letter for held in walk.messages() if held.letter is not None]
        return found

    def replay(self, integration_id: str, letter_ids: Collection[str] | None) -> ReplayOutcome:
        wanted = None if letter_ids is None else set(letter_ids)
        moved: list[DeadLetter] = []
        try:
            for kind, pair in self.queues.items():
                if wanted is not None and not wanted - {m.id for m in moved}:
                    break
                if not self._holds_any(pair.dead_letter_url, kind):
                    continue
                with self._walk(kind, pair, integration_id, stop_when_found=wanted) as walk:
                    for held in walk.messages():
                        letter = held.letter
                        if letter is None or (wanted is not None and letter.id not in wanted):
                            continue
                        self._send_back(kind, pair, held)
                        self._call(
                            kind, "delete_message", QueueUrl=pair.dead_letter_url, ReceiptHandle=held.receipt
                        )
                        walk.receipts.remove(held.receipt)  # gone: nothing to make visible again
                        moved.append(letter)
        except RetryableError as exc:
            # What was moved stays moved (and is reported); the rest is still in its dead-letter queue.
            return ReplayOutcome(moved, str(exc))
        return ReplayOutcome(moved)

    # ---- one walk of one dead-letter queue

    def _holds_any(self, url: str, kind: DeadLetterQueue) -> bool:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        counts = self._call(kind, "get_queue_attributes", QueueUrl=url, AttributeNames=names)["Attributes"]
        return any(int(counts.get(name, 0)) for name in names)

    def _walk(
        self,
        kind: DeadLetterQueue,
        pair: QueuePair,
        integration_id: str,
        stop_when_found: set[str] | None = None,
    ) -> _Messages:
        return _Messages(self, kind, pair, integration_id, stop_when_found)

    def _receive(self, kind: DeadLetterQueue, url: str, wait_seconds: int = 0) -> list[dict[str, Any]]:
        answer = self._call(
            kind,
            "receive_message",
            QueueUrl=url,
            MaxNumberOfMessages=_BATCH,
            VisibilityTimeout=WALK_VISIBILITY_SECONDS,
            WaitTimeSeconds=wait_seconds,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return list(answer.get("Messages", []))

    def _release(self, kind: DeadLetterQueue, url: str, receipts: list[str]) -> None:
        """Make what a walk saw and left in place visible again now (best effort: its visibility runs out anyway)."""
        for start in range(0, len(receipts), _BATCH):
            chunk = receipts[start : start + _BATCH]
            try:
                self.client.change_message_visibility_batch(
                    QueueUrl=url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": receipt, "VisibilityTimeout": 0}
                        for i, receipt in enumerate(chunk)
                    ],
                )
            except (BotoCoreError, ClientError):
                return

    def _send_back(self, kind: DeadLetterQueue, pair: QueuePair, held: _Held) -> None:
        self._call(
            kind,
            "send_message",
            QueueUrl=pair.source_url,
            MessageBody=held.body,
            MessageGroupId=held.group,
            # A new id: the first delivery's, or the dead-lettering's, may still be in SQS's 5-minute window.
            MessageDeduplicationId=uuid.uuid4().hex,
        )

    def _call(self, kind: DeadLetterQueue, operation: str, **arguments: Any) -> Any:
        pair = self.queues[kind]
        which = "queue" if arguments.get("QueueUrl") == pair.source_url else "dead-letter queue"
        try:
            return getattr(self.client, operation)(**arguments)
        except (BotoCoreError, ClientError) as exc:
            raise RetryableError(
                f"the {kind.value} {which} ({arguments.get('QueueUrl')}) refused {operation}: {exc}; check that it "
                f"exists and that the admin function may use it, then try again",
                delay_seconds=1.0,
            ) from exc


class _Messages:
    """A walk as a context: iterate over what the queue holds (each message once); on leaving, whatever was not
    deleted is made visible again."""

    def __init__(
        self,
        owner: SqsDeadLetterQueues,
        kind: DeadLetterQueue,
        pair: QueuePair,
        integration_id: str,
        stop_when_found: set[str] | None,
    ) -> None:
        self.owner, self.kind, self.pair = owner, kind, pair
        self.integration_id = integration_id
        self.stop_when_found = stop_when_found
        self.receipts: list[str] = []

    def __enter__(self) -> _Messages:
        return self

    def __exit__(self, *exc: object) -> None:
        self.owner._release(self.kind, self.pair.dead_letter_url, self.receipts)

    def messages(self) -> Iterator[_Held]:
        """Each message the queue holds, once (until the walk's time is up, or every id looked for was seen)."""
        deadline = time.monotonic() + self.owner.walk_seconds
        seen_ids: set[str] = set()
        found: set[str] = set()
        while time.monotonic() < deadline:
            messages = self.owner._receive(self.kind, self.pair.dead_letter_url)
            if not messages:
                # A short poll may miss messages SQS holds on servers it did not ask; a long poll asks them all.
                messages = self.owner._receive(self.kind, self.pair.dead_letter_url, wait_seconds=1)
            fresh = [m for m in messages if m["MessageId"] not in seen_ids]
            if not fresh:
                return
            for message in fresh:
                seen_ids.add(message["MessageId"])
                held = self._held(message)
                self.receipts.append(held.receipt)
                yield held
                if held.letter is not None:
                    found.add(held.letter.id)
            if self.stop_when_found is not None and self.stop_when_found <= found:
                return

    def _held(self, message: dict[str, Any]) -> _Held:
        attributes = message.get("Attributes", {})
        about = described(self.kind, message["Body"])
        letter = None
        if about is not None and about[0] == self.integration_id:
            letter = _letter(self.kind, self.integration_id, message, about[1])
        return _Held(
            letter, message["ReceiptHandle"], message["Body"], str(attributes.get("MessageGroupId", ""))
        )


def _letter(
    kind: DeadLetterQueue, integration_id: str, message: dict[str, Any], about: dict[str, str]
) -> DeadLetter:
    """A dead letter as its message shows it: calsync's reason and attempts when it dead-lettered it itself; when the
    queue's redrive moved it (crashes or timeouts, each time), a sentence saying so and where to look."""
    attributes = message.get("Attributes", {})
    values = message.get("MessageAttributes", {})
    sent = attributes.get("SentTimestamp")
    at = datetime.fromtimestamp(int(sent) / 1000, UTC) if sent else None
    reason = str(values.get("reason", {}).get("StringValue", ""))
    if reason:
        attempts = int(values.get("attempts", {}).get("StringValue", "1"))
    else:
        # Received once more by this walk: the attempts in the source queue are one fewer.
        attempts = max(1, int(attributes.get("ApproximateReceiveCount", "2")) - 1)
        reason = (
            f"{REDRIVEN}: the {kind.value} function failed on it {attempts} times without handling it (a crash or "
            f"a timeout each time) and the queue's redrive moved it here; the function's logs name message "
            f"{message['MessageId']}. Fix the cause, then replay it"
        )
    return DeadLetter(integration_id, str(message["MessageId"]), kind, about, reason, at, attempts)
