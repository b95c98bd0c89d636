"""Outbound FIFO queue → bookings synced to Exchange, with partial batch responses. SQS event source."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from calsync.adapters.sqs import decode, group_of
from calsync.domain import PermanentError, RetryableError
from calsync.service import sync_outbound
from calsync.wiring import outbound_queue, outbound_services

logger = Logger()
# One stuck booking (message group) must not hold up the others; its later messages wait for it.
processor = SqsFifoPartialProcessor(skip_group_on_error=True)
# A whole batch failing (e.g. Exchange throttling every mailbox) is reported record by record like a partial one, not
# raised: the messages come back just the same, without counting as a function error (and alarming).
processor.raise_on_entire_batch_failure = False


def record_handler(record: SQSRecord) -> None:
    """Sync one booking; SQS errors are decided here and only here (see the README's failure table)."""
    try:
        message = decode(record.body)
        result = sync_outbound(outbound_services(), message)
    except PermanentError as exc:
        # It will never succeed: to the dead-letter queue with its reason, shown in the mapping's status.
        logger.error("outbound message dead-lettered", extra={"reason": str(exc), "message_id": record.message_id})
        # The service has already recorded it in the status of the staff or resources concerned.
        outbound_queue().dead_letter(record.body, record.attributes.message_group_id or "unknown", str(exc),
                                     record.message_id)  # fmt: skip
        return
    except RetryableError as exc:
        # Back to the queue, invisible for at least the server's back-off (a Lambda must not sleep it off).
        outbound_queue().postpone(record.receipt_handle, exc.delay_seconds)
        logger.warning("outbound message postponed", extra={"reason": str(exc), "delay_seconds": exc.delay_seconds})
        raise
    logger.info("booking synced", extra={"booking": str(message.jrni_key), "group": group_of(message),
                                         "actions": [type(a).__name__ for a in result.actions]})  # fmt: skip


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
