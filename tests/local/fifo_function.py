"""A Lambda function shaped like functions/outbound and functions/inbound (a module-level FIFO batch processor and
Powertools Logger), for the local stack's environments and pollers to run: a record whose body says ``fail``
postpones itself and raises, as ``calsync.transport.sqs.handle_record`` does with a RetryableError.

The test sets ``ledger`` (what ran, shared by every copy of the module) and ``queue`` (an SQS client and URL).
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

logger = Logger()
processor = SqsFifoPartialProcessor(skip_group_on_error=True)
processor.raise_on_entire_batch_failure = False

ledger: Any = None  # tests.local.test_environments.Ledger
queue: tuple[Any, str] | None = None
POSTPONE_SECONDS = 3


class Postponed(Exception):
    pass


def record_handler(record: SQSRecord) -> None:
    body = json.loads(record.body)
    ledger.started(record.message_id, body["group"])
    try:
        time.sleep(0.002)  # long enough for the other worker's batch to run meanwhile
        if body.get("fail"):
            assert queue is not None
            sqs, url = queue
            sqs.change_message_visibility(
                QueueUrl=url, ReceiptHandle=record.receipt_handle, VisibilityTimeout=POSTPONE_SECONDS
            )
            logger.warning("message postponed", extra={"n": body["n"]})
            ledger.failed(record.message_id)
            raise Postponed(body["n"])
        logger.info("message handled", extra={"n": body["n"]})
        ledger.succeeded(record.message_id)
    finally:
        ledger.ended(body["group"])


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    logger.append_keys(worker=threading.current_thread().name)
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
