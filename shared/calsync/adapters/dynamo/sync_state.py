"""The inbound (Exchange → JRNI) state on DynamoDB: block links, change-feed cursors, and the streaming task's state.

Errors are translated as in ``stores``: a lost conditional write is ``StaleStateError``, anything else
``RetryableError`` or ``PermanentError``.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from pynamodb.exceptions import DeleteError, DoesNotExist, PutError, PynamoDBException

from calsync.adapters.dynamo.models import (
    BlockLinkRecord,
    TableSettings,
    block_link_model,
    cursor_model,
    streaming_state_models,
)
from calsync.adapters.dynamo.stores import (
    _CONDITION_FAILED,
    _translate,
    delete_versioned,
    remove_items,
    remove_partition,
    save_versioned,
)
from calsync.domain import JrniKey, LinkState, TimeWindow
from calsync.domain.inbound import BlockLink, MailboxStreamState, TaskHeartbeat, WatchMode

# ---------------------------------------------------------------- block links


def _mailbox_pk(integration_id: str, mailbox: str) -> str:
    return f"{integration_id}#{mailbox}"


def _jrni_ref(integration_id: str, jrni_key: JrniKey) -> str:
    return f"{integration_id}#{jrni_key}"


def _block_link(record: BlockLinkRecord) -> BlockLink:
    return BlockLink(
        integration_id=record.integration_id,
        mailbox=record.mailbox,
        remote_id=record.sk,
        jrni_key=JrniKey.parse(record.jrni_key) if record.jrni_key else None,
        slot_id=record.slot_id or "",
        window=TimeWindow(record.start, record.end),
        title=record.title,
        version=record.remote_version,
        series_id=record.series_id,
        state=LinkState(record.state),
        version_number=record.version_number or 0,
    )


class DynamoBlockLinkStore:
    """``BlockLinkStore`` on the block links table: one item per (integration, mailbox, Outlook item), every write
    conditional on the ``version_number`` that was read.

    ``blocks`` is a strongly consistent Query (inbound decides from it: a stale read could make a second block).
    ``by_jrni_key`` reads the sparse ``by_jrni_key`` index, which is eventually consistent; outbound recognises a
    block made a moment ago by the marker in its private note first."""

    def __init__(
        self, table_name: str, *, region: str | None = None, endpoint_url: str | None = None
    ) -> None:
        self._model = block_link_model(TableSettings(table_name, region, endpoint_url))

    def remove_integration(self, integration_id: str) -> int:
        """Remove every block link of the integration, in every mailbox it ever had (mapped now or not): a Scan,
        filtered by integration (the table has no index by integration; deleting an integration is rare)."""
        model = self._model
        try:
            keys = [
                (record.pk, record.sk)
                for record in model.scan(
                    model.integration_id == integration_id, attributes_to_get=["pk", "sk"]
                )
            ]
        except PynamoDBException as exc:
            raise _translate(exc, f"listing the block links of integration {integration_id}") from exc
        return remove_items(model, keys, f"the block links of integration {integration_id}")

    def blocks(self, integration_id: str, mailbox: str) -> list[BlockLink]:
        """Every block calsync made (or is making) for one mailbox."""
        try:
            return [
                _block_link(record)
                for record in self._model.query(_mailbox_pk(integration_id, mailbox), consistent_read=True)
            ]
        except PynamoDBException as exc:
            raise _translate(exc, f"reading the block links of {mailbox}") from exc

    def by_jrni_key(self, integration_id: str, jrni_key: JrniKey) -> BlockLink | None:
        """The block link of a JRNI block, if calsync made it."""
        try:
            found = list(self._model.by_jrni_key.query(_jrni_ref(integration_id, jrni_key), limit=1))
        except PynamoDBException as exc:
            raise _translate(exc, f"looking up the block link of {jrni_key}") from exc
        return _block_link(found[0]) if found else None

    def save(self, link: BlockLink) -> BlockLink:
        """Store ``link`` if nobody changed it since it was read (``version_number``); StaleStateError otherwise."""
        record = self._model(
            _mailbox_pk(link.integration_id, link.mailbox),
            link.remote_id,
            jrni_ref=_jrni_ref(link.integration_id, link.jrni_key) if link.jrni_key is not None else None,
            integration_id=link.integration_id,
            mailbox=link.mailbox,
            jrni_key=str(link.jrni_key) if link.jrni_key is not None else None,
            slot_id=link.slot_id or None,
            start=link.window.start,
            end=link.window.end,
            title=link.title,
            remote_version=link.version,
            series_id=link.series_id,
            state=link.state.value,
        )
        what = f"the block link of {link.remote_id} in {link.mailbox}"
        return replace(link, version_number=save_versioned(record, link.version_number, what))

    def delete(self, link: BlockLink) -> None:
        """Remove ``link`` if nobody changed it since it was read; a link already gone counts as removed."""
        model = self._model
        record = model(_mailbox_pk(link.integration_id, link.mailbox), link.remote_id)
        delete_versioned(
            model, record, link.version_number, f"the block link of {link.remote_id} in {link.mailbox}"
        )


# ---------------------------------------------------------------- cursors


def _feed_key(mailbox: str) -> str:
    return f"feed#{mailbox}"


class DynamoCursorStore:
    """``CursorStore`` on the cursors table: one opaque change-feed position per (integration, mailbox).

    Writes are last-writer-wins: one mailbox's messages are handled one at a time (its own FIFO message group)."""

    def __init__(
        self, table_name: str, *, region: str | None = None, endpoint_url: str | None = None
    ) -> None:
        self._table = TableSettings(table_name, region, endpoint_url)
        self._model = cursor_model(self._table)

    def remove_integration(self, integration_id: str) -> int:
        """Forget where every mailbox of the integration stands (its one partition)."""
        return remove_partition(
            self._table, integration_id, f"the sync positions of integration {integration_id}"
        )

    def get(self, integration_id: str, mailbox: str) -> str | None:
        """Where the mailbox's change feed stands, or None when it was never synced (or was reset)."""
        try:
            return self._model.get(integration_id, _feed_key(mailbox), consistent_read=True).cursor
        except DoesNotExist:
            return None
        except PynamoDBException as exc:
            raise _translate(exc, f"reading the sync position of {mailbox}") from exc

    def put(self, integration_id: str, mailbox: str, cursor: str) -> None:
        """Record where the mailbox's change feed stands (after its changes were applied)."""
        try:
            self._model(integration_id, _feed_key(mailbox), mailbox=mailbox, cursor=cursor).save()
        except PynamoDBException as exc:
            raise _translate(exc, f"recording the sync position of {mailbox}") from exc

    def clear(self, integration_id: str, mailbox: str) -> None:
        """Forget the position, so the next sync reads the mailbox from the start (a cursor the server rejects)."""
        try:
            self._model(integration_id, _feed_key(mailbox)).delete()
        except PynamoDBException as exc:
            raise _translate(exc, f"clearing the sync position of {mailbox}") from exc


# ---------------------------------------------------------------- streaming state

_HEARTBEATS = "heartbeat"
# A task silent this long is certainly gone; its heartbeat is left for DynamoDB's TTL to remove.
HEARTBEAT_KEPT = timedelta(days=1)


def _integration_pk(integration_id: str) -> str:
    return f"integration#{integration_id}"


def _mailbox_key(mailbox: str) -> str:
    return f"mailbox#{mailbox}"


def _mode(value: str) -> WatchMode:
    try:
        return WatchMode(value)
    except ValueError:
        raise ValueError(
            f"not a way of watching a mailbox: {value!r} (one of {', '.join(m.value for m in WatchMode)})"
        ) from None


class DynamoStreamingStateStore:
    """The streaming task's heartbeats and per-mailbox subscription state, on the streaming state table."""

    def __init__(
        self, table_name: str, *, region: str | None = None, endpoint_url: str | None = None
    ) -> None:
        self._table = TableSettings(table_name, region, endpoint_url)
        self._models = streaming_state_models(self._table)

    def remove_integration(self, integration_id: str) -> int:
        """Forget how each mailbox of the integration is watched (the heartbeats and shares are no integration's)."""
        return remove_partition(
            self._table, _integration_pk(integration_id), f"how the mailboxes of {integration_id} are watched"
        )

    def heartbeat(self, task_id: str, at: datetime, mailboxes: int) -> None:
        """Record that ``task_id`` is alive at ``at``, watching ``mailboxes`` mailboxes."""
        record = self._models.heartbeat(
            _HEARTBEATS, task_id, at=at, mailboxes=mailboxes, expires_at=at + HEARTBEAT_KEPT
        )
        try:
            record.save()
        except PynamoDBException as exc:
            raise _translate(exc, f"recording the heartbeat of task {task_id}") from exc

    def heartbeats(self) -> list[TaskHeartbeat]:
        """The last heartbeat of every streaming task seen in the last day, by task id."""
        model = self._models.heartbeat
        try:
            return [
                TaskHeartbeat(record.sk, record.at, int(record.mailboxes))
                for record in model.query(_HEARTBEATS, consistent_read=True)
            ]
        except PynamoDBException as exc:
            raise _translate(exc, "reading the streaming tasks' heartbeats") from exc

    def record_mailbox(
        self, integration_id: str, mailbox: str, mode: WatchMode, detail: str, at: datetime
    ) -> None:
        """Record how ``mailbox`` is watched now (the latest write wins); ValueError for a mode that is not a ``WatchMode``."""
        record = self._models.mailbox(
            _integration_pk(integration_id),
            _mailbox_key(mailbox),
            mailbox=mailbox,
            mode=_mode(mode).value,
            detail=detail,
            at=at,
        )
        try:
            record.save()
        except PynamoDBException as exc:
            raise _translate(exc, f"recording how {mailbox} is watched") from exc

    def forget_mailbox(self, integration_id: str, mailbox: str) -> None:
        """Drop a mailbox's state (it was unmapped); a mailbox with none counts as forgotten."""
        try:
            self._models.mailbox(_integration_pk(integration_id), _mailbox_key(mailbox)).delete()
        except PynamoDBException as exc:
            raise _translate(exc, f"forgetting how {mailbox} was watched") from exc

    def mailbox_states(self, integration_id: str) -> list[MailboxStreamState]:
        """How each mailbox of one integration is watched, by mailbox."""
        model = self._models.mailbox
        try:
            return [
                MailboxStreamState(
                    integration_id, record.mailbox, _mode(record.mode), record.detail, record.at
                )
                for record in model.query(
                    _integration_pk(integration_id), model.sk.startswith("mailbox#"), consistent_read=True
                )
            ]
        except PynamoDBException as exc:
            raise _translate(exc, f"reading how the mailboxes of {integration_id} are watched") from exc

    # ---- shares of the mailboxes, when several tasks run (one ECS service cannot tell its tasks apart)

    def claim_shard(self, task_id: str, shards: int, at: datetime, lease: timedelta) -> int | None:
        """The share (0 … ``shards`` - 1) ``task_id`` now holds until ``at + lease``: the one it held, else the first
        free or expired one; None when every share is held by a live task."""
        model = self._models.shard
        pk = f"shards#{shards}"
        try:
            held = [
                int(record.sk) for record in model.query(pk, consistent_read=True) if record.owner == task_id
            ]
        except PynamoDBException as exc:
            raise _translate(exc, "reading the shares of the mailboxes") from exc
        for index in held + [i for i in range(shards) if i not in held]:
            if self._lease(task_id, pk, index, at, lease):
                return index
        return None

    def renew_shard(self, task_id: str, shards: int, index: int, at: datetime, lease: timedelta) -> bool:
        """Extend ``task_id``'s hold on a share; False when it lost it (its lease ran out and another task took it)."""
        return self._lease(task_id, f"shards#{shards}", index, at, lease)

    def release_shard(self, task_id: str, shards: int, index: int) -> None:
        """Give a share up at once (clean stop), if ``task_id`` still holds it."""
        model = self._models.shard
        try:
            model(f"shards#{shards}", str(index)).delete(condition=model.owner == task_id)
        except DeleteError as exc:
            if (
                exc.cause_response_code != _CONDITION_FAILED
            ):  # held by another task already: nothing to give up
                raise _translate(exc, f"releasing share {index}") from exc

    def _lease(self, task_id: str, pk: str, index: int, at: datetime, lease: timedelta) -> bool:
        model = self._models.shard
        record = model(
            pk, str(index), owner=task_id, lease_until=at + lease, expires_at=at + lease + HEARTBEAT_KEPT
        )
        free = model.pk.does_not_exist() | (model.owner == task_id) | (model.lease_until < at)
        try:
            record.save(condition=free)
        except PutError as exc:
            if exc.cause_response_code == _CONDITION_FAILED:
                return False
            raise _translate(exc, f"claiming share {index}") from exc
        return True
