"""Outbound FIFO queue → bookings synced to Exchange, with partial batch responses. SQS event source."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from calsync.adapters.aws.queues import decode_outbound
from calsync.bootstrap.functions import function_metrics, outbound_deps, outbound_queue, telemetry
from calsync.transport.sqs import handle_record
from calsync.usecases.sync_booking import sync_booking

logger = Logger()
metrics = function_metrics("outbound")
# JRNI and Exchange (requests) and AWS (botocore) calls show as subsegments: Tracer patches them.
tracer = Tracer()
# One stuck booking (message group) must not hold up the others; its later messages wait for it.
processor = SqsFifoPartialProcessor(skip_group_on_error=True)
# A whole batch failing (e.g. Exchange throttling every mailbox) is reported record by record like a partial one, not
# raised: the messages come back just the same, without counting as a function error (and alarming).
processor.raise_on_entire_batch_failure = False


def sync(body: str) -> dict[str, Any]:
    """Sync one booking; a permanent failure is already recorded in the status of the staff or resources concerned."""
    message = decode_outbound(body)
    result = sync_booking(outbound_deps(), message)
    return {"booking": str(message.jrni_key), "actions": [type(a).__name__ for a in result.actions]}


def record_handler(record: SQSRecord) -> None:
    handle_record(record, outbound_queue(), sync, logger, telemetry())


@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
