"""Inbound FIFO queue → one mailbox's Outlook changes applied to JRNI, with partial batch responses. SQS source."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from calsync.adapters.aws.queues import decode_inbound
from calsync.bootstrap.functions import function_metrics, inbound_deps, inbound_queue, telemetry
from calsync.transport.sqs import handle_record
from calsync.usecases.sync_mailbox import sync_mailbox

logger = Logger()
metrics = function_metrics("inbound")
# JRNI and Exchange (requests) and AWS (botocore) calls show as subsegments: Tracer patches them.
tracer = Tracer()
# One mailbox (message group) at a time, and a stuck mailbox does not hold up the others.
processor = SqsFifoPartialProcessor(skip_group_on_error=True)
processor.raise_on_entire_batch_failure = False


def sync(body: str) -> dict[str, Any]:
    """Sync one mailbox's Outlook changes into JRNI."""
    message = decode_inbound(body)
    report = sync_mailbox(inbound_deps(), message)
    return {
        "mailbox": message.mailbox,
        "reason": message.reason.value,
        "jrni_writes": report.jrni_writes,
        "reverted": len(report.reverted),
    }


def record_handler(record: SQSRecord) -> None:
    handle_record(record, inbound_queue(), sync, logger, telemetry())


@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
