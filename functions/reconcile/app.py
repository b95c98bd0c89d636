"""Reconcile FIFO queue → the schedule's tick, one integration's run, or one mapping reconciled in both directions,
with partial batch responses. SQS source (the schedule, the admin API and this function itself send to it)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from calsync.adapters.aws.queues import decode_reconcile
from calsync.bootstrap.functions import function_metrics, reconcile_deps, reconcile_queue, telemetry
from calsync.transport.sqs import handle_record
from calsync.usecases.reconcile import reconcile

logger = Logger()
metrics = function_metrics("reconcile")
# JRNI and Exchange (requests) and AWS (botocore) calls show as subsegments: Tracer patches them.
tracer = Tracer()
# One mailbox (message group) at a time, and a stuck one does not hold up the others.
processor = SqsFifoPartialProcessor(skip_group_on_error=True)
processor.raise_on_entire_batch_failure = False


def step(body: str) -> dict[str, Any]:
    """Carry out one step of a reconcile."""
    message = decode_reconcile(body)
    return {"step": message.step.value, **reconcile(reconcile_deps(), message)}


def record_handler(record: SQSRecord) -> None:
    handle_record(record, reconcile_queue(), step, logger, telemetry())


@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
