"""Inbound FIFO queue → one mailbox's Outlook changes applied to JRNI, with partial batch responses. SQS source."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from calsync.domain import PermanentError, RetryableError
from calsync.inbound_service import InboundMessage, sync_mailbox
from calsync.streaming.sqs import decode
from calsync.wiring import inbound_queue, inbound_services

logger = Logger()
# One mailbox (message group) at a time, and a stuck mailbox does not hold up the others.
processor = SqsFifoPartialProcessor(skip_group_on_error=True)
processor.raise_on_entire_batch_failure = False


def record_handler(record: SQSRecord) -> None:
    """Sync one mailbox; SQS outcomes are decided here and only here, as for outbound."""
    try:
        wake = decode(record.body)
        report = sync_mailbox(inbound_services(), InboundMessage(wake.integration_id, wake.mailbox, wake.reason.value))
    except PermanentError as exc:
        logger.error("inbound message dead-lettered", extra={"reason": str(exc), "message_id": record.message_id})
        inbound_queue().dead_letter(record.body, record.attributes.message_group_id or "unknown", str(exc),
                                    record.message_id)  # fmt: skip
        return
    except RetryableError as exc:
        inbound_queue().postpone(record.receipt_handle, exc.delay_seconds)
        logger.warning("inbound message postponed", extra={"reason": str(exc), "delay_seconds": exc.delay_seconds})
        raise
    logger.info("mailbox synced", extra={"mailbox": wake.mailbox, "reason": wake.reason.value,
                                         "jrni_writes": report.jrni_writes, "reverted": len(report.reverted)})  # fmt: skip


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
