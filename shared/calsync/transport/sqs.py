"""How an SQS-triggered function answers for one record: the one place where calsync's errors become SQS outcomes.

- a permanent failure: the record goes to the queue's dead-letter queue with its reason and attempts (recorded for
  its integration's operator), and counts as handled;
- a change held back (the mass-delete guard): handled; the status says why and what to do, and nothing is retried
  until an operator decides (retrying would only refuse again);
- a retryable one: the record stays in the queue, invisible for at least the delay the other side asked for
  (a Lambda must not sleep it off), and is reported as a batch item failure;
- anything else (a crash): reported as a failure, retried after the visibility timeout, dead-lettered by redrive.

Every log line of a record carries its correlation id (the ``correlation_id`` message attribute its sender set, else
the SQS message id); dead-lettered, postponed and throttled records are counted (``Telemetry``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from calsync.domain import HeldBackError, PermanentError, RetryableError, ThrottledError
from calsync.ports import NO_TELEMETRY, Metric, Telemetry

CORRELATION_ID = "correlation_id"  # the message attribute (calsync.adapters.aws.queues sets it)


class ControlledQueue(Protocol):
    def postpone(self, receipt_handle: str, seconds: float) -> None: ...

    def dead_letter(self, body: str, group: str, reason: str, message_id: str, attempts: int = 1) -> None: ...


def correlation_id_of(record: SQSRecord) -> str:
    """The id its sender gave the message (a webhook's request id, a reconcile's run id), else its SQS id."""
    attribute = record.message_attributes[CORRELATION_ID]  # None when the message has none
    return (attribute.string_value if attribute is not None else None) or record.message_id


def handle_record(
    record: SQSRecord,
    queue: ControlledQueue,
    work: Callable[[str], dict[str, Any]],
    logger: Any,
    telemetry: Telemetry = NO_TELEMETRY,
) -> None:
    """Run ``work(record.body)`` (which returns what to log on success) and map its errors to SQS outcomes."""
    logger.set_correlation_id(correlation_id_of(record))
    try:
        done = work(record.body)
    except HeldBackError as exc:
        logger.warning("changes held back", extra={"reason": str(exc), "message_id": record.message_id})
        return
    except PermanentError as exc:
        logger.error("message dead-lettered", extra={"reason": str(exc), "message_id": record.message_id})
        queue.dead_letter(
            record.body,
            record.attributes.message_group_id or "unknown",
            str(exc),
            record.message_id,
            _attempts(record),
        )
        telemetry.count(Metric.DEAD_LETTERED)
        return
    except RetryableError as exc:
        queue.postpone(record.receipt_handle, exc.delay_seconds)
        telemetry.count(Metric.POSTPONED)
        if isinstance(exc, ThrottledError):
            telemetry.count(Metric.THROTTLED)
        logger.warning("message postponed", extra={"reason": str(exc), "delay_seconds": exc.delay_seconds})
        raise
    except Exception:
        # A bug, not a condition calsync knows: said loudly, with its traceback; retried after the visibility timeout
        # and dead-lettered by the queue's redrive policy if it keeps failing.
        logger.exception("message failed unexpectedly", extra={"message_id": record.message_id})
        raise
    logger.info("message handled", extra=done)


def _attempts(record: SQSRecord) -> int:
    """How many times the message was received, this time included (SQS's ApproximateReceiveCount)."""
    try:
        return max(1, int(record.attributes.approximate_receive_count))
    except (TypeError, ValueError):
        return 1
