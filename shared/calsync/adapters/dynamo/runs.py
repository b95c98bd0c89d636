"""``RunStore`` on the runs table: reconcile runs, their progress, and each integration's JRNI cursor.

A mapping's completion is one atomic update (ADD), so mappings reconciled side by side never lose a count.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime, timedelta

from pynamodb.exceptions import DoesNotExist, PynamoDBException
from pynamodb.expressions.update import Action

from calsync.adapters.dynamo.models import RunRecord, TableSettings, run_model
from calsync.adapters.dynamo.stores import _translate, remove_partition
from calsync.domain.reconcile import MappingReconcile, ReconcileRun, Repairs

# A run stays readable this long after it started (DynamoDB's TTL then removes it).
RUN_KEPT = timedelta(days=7)
_CURSOR = "jrni-cursor"
_REPAIRS = [f.name for f in fields(Repairs)]


def _run_key(run_id: str) -> str:
    return f"run#{run_id}"


class DynamoRunStore:
    def __init__(
        self, table_name: str, *, region: str | None = None, endpoint_url: str | None = None
    ) -> None:
        self._table = TableSettings(table_name, region, endpoint_url)
        self._model = run_model(self._table)

    def start(self, run: ReconcileRun) -> None:
        record = self._model(
            run.integration_id,
            _run_key(run.run_id),
            deep=run.deep,
            started_at=run.started_at,
            mappings_total=run.mappings_total,
            mappings_done=run.mappings_done,
            bookings_queued=run.bookings_queued,
            error=run.error or None,
            expires_at=run.started_at + RUN_KEPT,
            **{f"repaired_{name}": getattr(run.repaired, name) for name in _REPAIRS},
        )
        try:
            record.save()
        except PynamoDBException as exc:
            raise _translate(exc, f"recording reconcile run {run.run_id}") from exc

    def get(self, integration_id: str, run_id: str) -> ReconcileRun | None:
        try:
            record = self._model.get(integration_id, _run_key(run_id), consistent_read=True)
        except DoesNotExist:
            return None
        except PynamoDBException as exc:
            raise _translate(exc, f"reading reconcile run {run_id}") from exc
        return _run(record, run_id)

    def runs_of(self, integration_id: str) -> list[ReconcileRun]:
        """The integration's runs still kept, newest first (one Query of its partition's ``run#`` items)."""
        model = self._model
        try:
            records = list(model.query(integration_id, model.sk.startswith("run#"), consistent_read=True))
        except PynamoDBException as exc:
            raise _translate(exc, f"listing the reconcile runs of {integration_id}") from exc
        runs = [_run(record, record.sk.removeprefix("run#")) for record in records if record.started_at]
        return sorted(runs, key=lambda run: run.started_at, reverse=True)

    def remove_integration(self, integration_id: str) -> int:
        """Remove the integration's runs, its JRNI cursor and its mappings' reconcile states (its one partition)."""
        return remove_partition(
            self._table, integration_id, f"the reconcile runs of integration {integration_id}"
        )

    def mapping_done(self, integration_id: str, run_id: str, repairs: Repairs) -> None:
        model = self._model
        actions: list[Action] = [model.mappings_done.add(1)]
        for name in _REPAIRS:
            count = getattr(repairs, name)
            if count:
                actions.append(getattr(model, f"repaired_{name}").add(count))
        try:
            model(integration_id, _run_key(run_id)).update(actions=actions)
        except PynamoDBException as exc:
            raise _translate(exc, f"counting a mapping of reconcile run {run_id}") from exc

    def failed(self, integration_id: str, run_id: str, reason: str) -> None:
        model = self._model
        try:
            model(integration_id, _run_key(run_id)).update(actions=[model.error.set(reason[:2000])])
        except PynamoDBException as exc:
            raise _translate(exc, f"recording the failure of reconcile run {run_id}") from exc

    def jrni_cursor(self, integration_id: str) -> datetime | None:
        try:
            return self._model.get(integration_id, _CURSOR, consistent_read=True).cursor
        except DoesNotExist:
            return None
        except PynamoDBException as exc:
            raise _translate(exc, "reading where JRNI's changes were last read") from exc

    def set_jrni_cursor(self, integration_id: str, at: datetime) -> None:
        try:
            self._model(integration_id, _CURSOR, cursor=at).save()
        except PynamoDBException as exc:
            raise _translate(exc, "recording where JRNI's changes were read to") from exc

    def reconciled(self, integration_id: str, mailbox: str, at: datetime, repairs: Repairs) -> None:
        model = self._model
        actions: list[Action] = [
            model.mailbox.set(mailbox),
            model.reconciled_at.set(at),
            model.backfill_total.remove(),
            model.backfill_done.remove(),
        ]
        actions += [getattr(model, f"repaired_{name}").set(getattr(repairs, name)) for name in _REPAIRS]
        try:
            model(integration_id, _mapping_key(mailbox)).update(actions=actions)
        except PynamoDBException as exc:
            raise _translate(exc, f"recording the reconcile of {mailbox}") from exc

    def progress(self, integration_id: str, mailbox: str, total: int, done: int) -> None:
        model = self._model
        actions: list[Action] = [
            model.mailbox.set(mailbox),
            model.backfill_total.set(total),
            model.backfill_done.set(done),
        ]
        try:
            model(integration_id, _mapping_key(mailbox)).update(actions=actions)
        except PynamoDBException as exc:
            raise _translate(exc, f"recording the backfill progress of {mailbox}") from exc

    def mapping_states(self, integration_id: str) -> list[MappingReconcile]:
        try:
            records = list(self._model.query(integration_id, self._model.sk.startswith("mapping#")))
        except PynamoDBException as exc:
            raise _translate(exc, "reading the mappings' reconciles") from exc
        return [
            MappingReconcile(
                integration_id,
                str(record.mailbox),
                record.reconciled_at,
                _repairs(record),
                None if record.backfill_total is None else int(record.backfill_total),
                int(record.backfill_done or 0),
            )
            for record in records
        ]


def _mapping_key(mailbox: str) -> str:
    return f"mapping#{mailbox}"


def _repairs(record: RunRecord) -> Repairs:
    return Repairs(**{name: int(getattr(record, f"repaired_{name}") or 0) for name in _REPAIRS})


def _run(record: RunRecord, run_id: str) -> ReconcileRun:
    assert record.started_at is not None
    return ReconcileRun(
        integration_id=record.pk,
        run_id=run_id,
        deep=bool(record.deep),
        started_at=record.started_at,
        mappings_total=None if record.mappings_total is None else int(record.mappings_total),
        mappings_done=int(record.mappings_done or 0),
        repaired=_repairs(record),
        bookings_queued=int(record.bookings_queued or 0),
        error=record.error or "",
    )
