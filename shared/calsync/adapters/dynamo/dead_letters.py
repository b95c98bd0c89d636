"""``DeadLetterStore`` on the dead-letters table; ``DirectoryStore`` in the mappings table.

Dead letters (their own table: pk the integration id, sk the letter's SQS message id): one item per message calsync
dead-lettered, written by the function that gave up on it, removed when it is replayed, and expired by TTL when SQS
drops the message (14 days). The list for one integration is one query of its partition.

The directory (in each integration's partition of the mappings table, beside its mappings and statuses):
``directory#<kind>#<jrni id>`` per staff member or resource and ``directory`` for when it was refreshed; pages are
queries of the ``directory#`` range, in (kind, jrni id) order.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Collection, Sequence
from datetime import datetime

from pynamodb.attributes import (
    BooleanAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.exceptions import DoesNotExist, PynamoDBException
from pynamodb.models import Model

from calsync.adapters.dynamo.models import TableSettings, _bind
from calsync.adapters.dynamo.stores import _translate, remove_items, remove_partition
from calsync.domain import ResourceKind
from calsync.domain.dead_letters import DEAD_LETTER_KEPT, DeadLetter, DeadLetterQueue
from calsync.ports import JrniCalendar


class DeadLetterRecord(Model):
    pk = UnicodeAttribute(hash_key=True)  # the integration id
    sk = UnicodeAttribute(range_key=True)  # the message's id in its dead-letter queue
    queue = UnicodeAttribute()
    about = UnicodeAttribute()  # JSON object of strings: booking, mailbox, step, run
    reason = UnicodeAttribute()
    at = UTCDateTimeAttribute(null=True)
    attempts = NumberAttribute()
    expires_at = TTLAttribute(null=True)


@functools.cache
def dead_letter_model(table: TableSettings) -> type[DeadLetterRecord]:
    return _bind(DeadLetterRecord, table)


class DynamoDeadLetterStore:
    """``DeadLetterStore`` on the dead-letters table."""

    def __init__(
        self, table_name: str, *, region: str | None = None, endpoint_url: str | None = None
    ) -> None:
        self._table = TableSettings(table_name, region, endpoint_url)
        self._model = dead_letter_model(self._table)

    def remove_integration(self, integration_id: str) -> int:
        """Forget every dead letter of the integration (its one partition); the messages themselves stay in their
        dead-letter queues until SQS drops them."""
        return remove_partition(
            self._table, integration_id, f"the dead letters of integration {integration_id}"
        )

    def record(self, letter: DeadLetter) -> None:
        record = self._model(
            letter.integration_id,
            letter.id,
            queue=letter.queue.value,
            about=json.dumps(dict(letter.about), sort_keys=True),
            reason=letter.reason[:2000],
            at=letter.at,
            attempts=letter.attempts,
            expires_at=letter.at + DEAD_LETTER_KEPT if letter.at else None,
        )
        try:
            record.save()
        except PynamoDBException as exc:
            raise _translate(exc, f"recording dead letter {letter.id}") from exc

    def letters(self, integration_id: str) -> list[DeadLetter]:
        try:
            return [
                DeadLetter(
                    integration_id,
                    record.sk,
                    DeadLetterQueue(record.queue),
                    {str(k): str(v) for k, v in json.loads(record.about).items()},
                    record.reason,
                    record.at,
                    int(record.attempts),
                )
                for record in self._model.query(integration_id, consistent_read=True)
            ]
        except PynamoDBException as exc:
            raise _translate(exc, f"listing the dead letters of {integration_id}") from exc

    def forget(self, integration_id: str, letter_ids: Collection[str]) -> None:
        keys = [(integration_id, letter_id) for letter_id in letter_ids]
        remove_items(self._model, keys, f"{len(keys)} dead letter record(s) of {integration_id}")


# ---------------------------------------------------------------- the JRNI directory (mappings table)

_DIRECTORY = "directory"


class DirectoryRecord(Model):
    pk = UnicodeAttribute(hash_key=True)  # the integration id
    sk = UnicodeAttribute(
        range_key=True
    )  # "directory#<kind>#<jrni id>", or "directory" (when it was refreshed)
    kind = UnicodeAttribute(null=True)
    jrni_id = UnicodeAttribute(null=True)
    company_id = UnicodeAttribute(null=True)
    name = UnicodeAttribute(null=True)
    email = UnicodeAttribute(null=True)
    ews_email = UnicodeAttribute(null=True)
    disabled = BooleanAttribute(null=True)
    refreshed_at = UTCDateTimeAttribute(null=True)


@functools.cache
def directory_model(table: TableSettings) -> type[DirectoryRecord]:
    return _bind(DirectoryRecord, table)


def _entry_key(kind: ResourceKind, jrni_id: str) -> str:
    return f"{_DIRECTORY}#{kind.value}#{jrni_id}"


class DynamoDirectoryStore:
    """``DirectoryStore`` in the mappings table (each integration's partition)."""

    def __init__(
        self, table_name: str, *, region: str | None = None, endpoint_url: str | None = None
    ) -> None:
        self._model = directory_model(TableSettings(table_name, region, endpoint_url))

    def refreshed_at(self, integration_id: str) -> datetime | None:
        try:
            return self._model.get(integration_id, _DIRECTORY, consistent_read=True).refreshed_at
        except DoesNotExist:
            return None
        except PynamoDBException as exc:
            raise _translate(exc, f"reading the JRNI directory of {integration_id}") from exc

    def page(
        self, integration_id: str, *, after: tuple[ResourceKind, str] | None, limit: int
    ) -> tuple[list[JrniCalendar], bool]:
        model = self._model
        start = None if after is None else {"pk": {"S": integration_id}, "sk": {"S": _entry_key(*after)}}
        try:
            # One more than asked: whether another page follows, without an empty last page.
            records = list(
                model.query(
                    integration_id,
                    model.sk.startswith(f"{_DIRECTORY}#"),
                    limit=limit + 1,
                    last_evaluated_key=start,
                    consistent_read=True,
                )
            )
        except PynamoDBException as exc:
            raise _translate(exc, f"reading the JRNI directory of {integration_id}") from exc
        return [_calendar(r) for r in records[:limit]], len(records) > limit

    def replace(self, integration_id: str, calendars: Sequence[JrniCalendar], at: datetime) -> None:
        """Write what changed since the last refresh only (a run every 15 minutes mostly finds nothing new), remove
        who left, and record when JRNI was read."""
        model = self._model
        wanted = {_entry_key(c.kind, c.jrni_id): c for c in calendars}
        try:
            stored = {
                r.sk: _calendar(r)
                for r in model.query(
                    integration_id, model.sk.startswith(f"{_DIRECTORY}#"), consistent_read=True
                )
            }
            with model.batch_write() as batch:
                for key, calendar in wanted.items():
                    if stored.get(key) == calendar:
                        continue
                    batch.save(
                        model(
                            integration_id,
                            key,
                            kind=calendar.kind.value,
                            jrni_id=calendar.jrni_id,
                            company_id=calendar.company_id,
                            name=calendar.name,
                            email=calendar.email,
                            ews_email=calendar.ews_email,
                            disabled=calendar.disabled,
                        )
                    )
                for key in stored.keys() - wanted.keys():
                    batch.delete(model(integration_id, key))
                batch.save(model(integration_id, _DIRECTORY, refreshed_at=at))
        except PynamoDBException as exc:
            raise _translate(exc, f"storing the JRNI directory of {integration_id}") from exc


def _calendar(record: DirectoryRecord) -> JrniCalendar:
    return JrniCalendar(
        ResourceKind(record.kind or ""),
        record.jrni_id or "",
        record.company_id or "",
        record.name or "",
        record.email,
        record.ews_email,
        bool(record.disabled),
    )
