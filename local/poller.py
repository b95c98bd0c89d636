"""Lambda's SQS event source mapping, locally: long-poll a queue on moto, invoke a handler with real SQS events.

As Lambda does with ``ReportBatchItemFailures``: the records the handler did not report in ``batchItemFailures`` are
deleted; the reported ones stay and come back after their visibility timeout (or after the delay the handler set
with ``ChangeMessageVisibility``); a handler that raises fails the whole batch, and nothing is deleted.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable
from typing import Any

from local.events import LambdaContext, sqs_record

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
ContextFactory = Callable[[], LambdaContext]

log = logging.getLogger("local.poller")

# Short enough that stop() returns quickly; long enough that an idle queue costs ~1 request a second.
WAIT_SECONDS = 1


class SqsPoller:
    """``workers`` threads, each receiving batches of up to ``batch_size`` and invoking ``handler`` with them.

    As Lambda's event source does, a worker waits for its invocation to return before it receives again; give it a
    handler that runs each invocation in an environment of its own (``local.lambdas.FunctionEnvironments``) when
    the function keeps state in its module (a batch processor), as every worker may be invoking at the same time."""

    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        queue_arn: str,
        handler: Handler,
        context_factory: ContextFactory,
        *,
        batch_size: int = 10,
        workers: int = 2,
        name: str = "function",
    ) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.handler = handler
        self.context_factory = context_factory
        self.batch_size = batch_size
        self.name = name
        self.region = str(sqs.meta.region_name)
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, name=f"sqs-poller-{name}-{i}", daemon=True)
            for i in range(workers)
        ]
        self.invocations = 0
        self.deleted = 0
        self._counter_lock = threading.Lock()
        # moto's ReceiveMessage does not lock a FIFO queue's message groups against a concurrent receive (SQS does):
        # two at once could hand out messages of one group to two workers. The workers take turns to receive.
        self._receive_lock = threading.Lock()
        # pause(): no new receive starts, and pause() returns once the batches being handled are done.
        self._gate = threading.Condition()
        self._paused = False
        self._busy = 0

    def start(self) -> SqsPoller:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.resume()
        for thread in self._threads:
            thread.join(timeout=WAIT_SECONDS + 30)

    def pause(self, timeout: float = 60.0) -> None:
        """Stop receiving, and wait (up to ``timeout``) until the handler invocations under way have returned."""
        with self._gate:
            self._paused = True
            self._gate.wait_for(lambda: self._busy == 0, timeout)

    def resume(self) -> None:
        with self._gate:
            self._paused = False
            self._gate.notify_all()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._gate:
                if self._paused:
                    self._gate.wait(0.2)
                    continue
                self._busy += 1
            try:
                self.poll_once()
            except Exception:
                if self._stop.is_set():
                    return  # moto is going away with the rest of the stack
                log.error("polling %s failed:\n%s", self.queue_url, traceback.format_exc())
                self._stop.wait(1)
            finally:
                with self._gate:
                    self._busy -= 1
                    self._gate.notify_all()

    def poll_once(self) -> int:
        """Receive one batch (waiting up to a second) and hand it to the handler; the number of records."""
        with self._receive_lock:
            answer = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=self.batch_size,
                WaitTimeSeconds=WAIT_SECONDS,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
        messages = answer.get("Messages", [])
        if not messages:
            return 0
        records = [sqs_record(message, self.queue_arn, self.region) for message in messages]
        with self._counter_lock:
            self.invocations += 1
        try:
            response = self.handler({"Records": records}, self.context_factory())
        except Exception:
            # The whole batch failed: every message comes back after its visibility timeout.
            log.error(
                "the %s function raised; batch of %d not deleted:\n%s",
                self.name,
                len(records),
                traceback.format_exc(),
            )
            return len(records)
        failed = {item["itemIdentifier"] for item in (response or {}).get("batchItemFailures", [])}
        done = [r for r in records if r["messageId"] not in failed]
        for start in range(0, len(done), 10):
            chunk = done[start : start + 10]
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(chunk)],
            )
        with self._counter_lock:
            self.deleted += len(done)
        return len(records)
