"""PynamoDB models of calsync's tables, bound to a table name (and endpoint) at run time, never at import.

PynamoDB keeps the table name in a class-level ``Meta``; the ``*_models`` factories make one subclass per
(table, region, endpoint) and cache it, so names come from settings and tests can point at any table.
The key schemas must match ``template.yaml`` (the tests build their tables from it).
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import botocore.session
from pynamodb.attributes import (
    BooleanAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
    VersionAttribute,
)
from pynamodb.connection import Connection
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, IncludeProjection
from pynamodb.models import Model


@dataclass(frozen=True)
class TableSettings:
    """Where a table lives: its name, and optionally the region and endpoint (moto server in the local stack)."""

    table_name: str
    region: str | None = None
    endpoint_url: str | None = None


# ---------------------------------------------------------------- integrations (hash key: integration_id)


class _Map(MapAttribute[str, Any]):
    """A typed constructor for PynamoDB's (untyped) MapAttribute."""

    def __init__(self, **attributes: Any) -> None:
        super().__init__(**attributes)  # type: ignore[no-untyped-call]


class JrniConnectionMap(_Map):
    base_url = UnicodeAttribute()
    company_id = UnicodeAttribute()
    secret_name = UnicodeAttribute()


class ExchangeConnectionMap(_Map):
    endpoint = UnicodeAttribute()
    secret_name = UnicodeAttribute()
    auth = UnicodeAttribute()
    access_type = UnicodeAttribute()
    server_version = UnicodeAttribute()
    verify_tls = BooleanAttribute()
    token_url = UnicodeAttribute(null=True)
    api = UnicodeAttribute(null=True)  # absent on integrations stored before the choice existed: EWS


class ScheduleBusyMap(_Map):
    enabled = BooleanAttribute()
    subject = UnicodeAttribute()
    free_busy = UnicodeAttribute()


class SyncOptionsMap(_Map):
    include_buffers = BooleanAttribute()
    sync_jrni_blocks = BooleanAttribute()
    block_subject = UnicodeAttribute()
    plain_text_body = BooleanAttribute(null=True)  # absent on integrations stored before the choice existed
    schedule_busy = ScheduleBusyMap(null=True)  # absent on integrations stored before the choice existed: off


class IntegrationRecord(Model):
    """One integration; secrets appear only as Secrets Manager names."""

    integration_id = UnicodeAttribute(hash_key=True)
    name = UnicodeAttribute()
    jrni = JrniConnectionMap()
    exchange = ExchangeConnectionMap()
    webhook_secret_name = UnicodeAttribute()
    options = SyncOptionsMap()
    subject_template = UnicodeAttribute(null=True)
    body_template = UnicodeAttribute(null=True)
    appointment_lock = BooleanAttribute()
    auto_confirm = BooleanAttribute()
    inbound_free_busy = ListAttribute(of=UnicodeAttribute)
    created_at = UTCDateTimeAttribute(null=True)
    test_endpoints = BooleanAttribute(
        null=True
    )  # absent on integrations stored before the choice existed: False
    templates_changed_at = UTCDateTimeAttribute(null=True)
    # Counts the stored changes; every save is conditional on it (absent on items stored before versions existed).
    version = VersionAttribute()


# ---------------------------------------------------------------- mappings table (pk: integration id, sk: item)
# Three kinds of item share one partition per integration, told apart by the sort key's prefix:
#   mapping#<kind>#<jrni id>   the mapping of one staff member or resource to a mailbox
#   mailbox#<mailbox>          the claim that keeps a mailbox mapped to at most one of them (written in the
#                              same transaction as the mapping)
#   status#<kind>#<jrni id>    the last sync outcome, kept whether or not the calendar is mapped
#   problem#<kind>#<jrni id>#<subject>
#                              an open problem (an outcome other than ok), until an outcome settles its subject


class MappingRecord(Model):
    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    kind = UnicodeAttribute()
    jrni_id = UnicodeAttribute()
    mailbox = UnicodeAttribute()


class MailboxClaimRecord(Model):
    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    owner = UnicodeAttribute()  # "<kind>#<jrni id>" of the mapping holding the mailbox


class StatusRecord(Model):
    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    kind = UnicodeAttribute()
    jrni_id = UnicodeAttribute()
    state = UnicodeAttribute()
    detail = UnicodeAttribute()
    at = UTCDateTimeAttribute(null=True)
    subject = UnicodeAttribute(null=True)


# ---------------------------------------------------------------- links (pk: "<integration>#<jrni key>", sk: mailbox)


class LinksByMailboxIndex(GlobalSecondaryIndex["LinkRecord"]):  # type: ignore[no-untyped-call]  # untyped hook
    """Every link of one mailbox: (integration id, mailbox), both attributes every link already has."""

    class Meta:
        index_name = "by_mailbox"
        projection = AllProjection()

    integration_id = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)


class LinksByRemoteItemIndex(GlobalSecondaryIndex["LinkRecord"]):  # type: ignore[no-untyped-call]  # untyped hook
    """A link by the calendar item it wrote: ``remote_ref`` = "<integration>#<mailbox>#<item id>"; sparse (a pending
    link has written no item yet). Only the recorded version is projected: it tells our own writes coming back."""

    class Meta:
        index_name = "by_remote_item"
        projection = IncludeProjection(["remote_version"])

    remote_ref = UnicodeAttribute(hash_key=True)


class LinkRecord(Model):
    """One JRNI object in one mailbox; ``version_number`` makes every write conditional (optimistic locking)."""

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    by_mailbox = LinksByMailboxIndex()
    by_remote_item = LinksByRemoteItemIndex()
    integration_id = UnicodeAttribute()
    jrni_key = UnicodeAttribute()
    state = UnicodeAttribute()
    fingerprint = UnicodeAttribute()
    remote_id = UnicodeAttribute(null=True)
    remote_version = UnicodeAttribute(null=True)
    remote_ref = UnicodeAttribute(null=True)
    provider = UnicodeAttribute()
    written_at = UTCDateTimeAttribute(null=True)
    # Absent on links written before they were recorded: unknown ("").
    templates = UnicodeAttribute(null=True)
    placement = UnicodeAttribute(null=True)
    version_number = VersionAttribute()


# ---------------------------------------------------------------- block links (pk: "<integration>#<mailbox>", sk: item id)


class BlocksByJrniKeyIndex(GlobalSecondaryIndex["BlockLinkRecord"]):  # type: ignore[no-untyped-call]  # untyped hook
    """A block link by its JRNI block; sparse: a pending link (no block yet) has no ``jrni_ref``."""

    class Meta:
        index_name = "by_jrni_key"
        projection = AllProjection()

    jrni_ref = UnicodeAttribute(hash_key=True)


class BlockLinkRecord(Model):
    """One Outlook item (or occurrence) and the JRNI block made for it; writes are conditional like links'."""

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)  # the item's (or occurrence's) remote id
    by_jrni_key = BlocksByJrniKeyIndex()
    jrni_ref = UnicodeAttribute(null=True)  # "<integration>#<company id>/<booking id>", once the block exists
    integration_id = UnicodeAttribute()
    mailbox = UnicodeAttribute()
    jrni_key = UnicodeAttribute(null=True)
    slot_id = UnicodeAttribute(null=True)
    start = UTCDateTimeAttribute()
    end = UTCDateTimeAttribute()
    title = UnicodeAttribute()
    remote_version = UnicodeAttribute()
    series_id = UnicodeAttribute(null=True)
    state = UnicodeAttribute()
    version_number = VersionAttribute()


# ---------------------------------------------------------------- cursors (pk: integration id, sk: "feed#<mailbox>")


class CursorRecord(Model):
    """Where one mailbox's change feed stands: an opaque provider cursor (EWS SyncState today)."""

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    mailbox = UnicodeAttribute()
    cursor = UnicodeAttribute()


# ---------------------------------------------------------------- streaming state
# Two kinds of item:
#   pk "heartbeat",                  sk <task id>              each streaming task's last sign of life (TTL)
#   pk "integration#<integration>",  sk "mailbox#<mailbox>"    how a mailbox is watched: streaming or timed sync
#   pk "shards#<count>",             sk <index>                which task holds each share of the mailboxes


class HeartbeatRecord(Model):
    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    at = UTCDateTimeAttribute()
    mailboxes = NumberAttribute()
    expires_at = TTLAttribute()  # DynamoDB removes the heartbeats of tasks long gone


class MailboxStateRecord(Model):
    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    mailbox = UnicodeAttribute()
    mode = UnicodeAttribute()
    detail = UnicodeAttribute()
    at = UTCDateTimeAttribute()


class ShardLeaseRecord(Model):
    """pk "shards#<count>", sk "<index>": which task holds one share of the mailboxes, until when."""

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    owner = UnicodeAttribute()
    lease_until = UTCDateTimeAttribute()  # fixed-width UTC text: compares in time order
    expires_at = TTLAttribute()


# ---------------------------------------------------------------- reconcile runs
#   pk <integration id>, sk "run#<run id>"     one run and its progress (TTL: kept a week)
#   pk <integration id>, sk "jrni-cursor"      since when JRNI's changes are still to be read
#   pk <integration id>, sk "mapping#<mailbox>" the mapping's last reconcile, what it repaired, a backfill's progress


class RunRecord(Model):
    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    deep = BooleanAttribute(null=True)
    started_at = UTCDateTimeAttribute(null=True)
    mappings_total = NumberAttribute(null=True)
    mappings_done = NumberAttribute(null=True)
    bookings_queued = NumberAttribute(null=True)
    error = UnicodeAttribute(null=True)
    # What the run repaired, one counter per kind of repair (Repairs' fields), added to as each mapping finishes.
    repaired_created = NumberAttribute(null=True)
    repaired_updated = NumberAttribute(null=True)
    repaired_rerendered = NumberAttribute(null=True)
    repaired_removed = NumberAttribute(null=True)
    repaired_blocked = NumberAttribute(null=True)
    repaired_moved = NumberAttribute(null=True)
    repaired_released = NumberAttribute(null=True)
    repaired_bookings_changed = NumberAttribute(null=True)
    repaired_schedule = NumberAttribute(null=True)
    cursor = UTCDateTimeAttribute(null=True)
    expires_at = TTLAttribute(null=True)
    # sk "mapping#<mailbox>": the mapping's last reconcile and a running backfill's progress.
    mailbox = UnicodeAttribute(null=True)
    reconciled_at = UTCDateTimeAttribute(null=True)
    backfill_total = NumberAttribute(null=True)
    backfill_done = NumberAttribute(null=True)


# ---------------------------------------------------------------- any item of a pk / sk table


class ItemKey(Model):
    """Any item of a table keyed (pk, sk), by its keys alone: to remove every item an integration has there."""

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)


# ---------------------------------------------------------------- binding to a table

_M = TypeVar("_M", bound=Model)


def _bind(base: type[_M], table: TableSettings) -> type[_M]:
    meta = type(
        "Meta", (), {"table_name": table.table_name, "region": table.region, "host": table.endpoint_url}
    )
    model = cast(type[_M], type(base.__name__, (base,), {"Meta": meta, "__module__": __name__}))
    _connect(connection_of(model))
    return model


def connection_of(model: type[Model]) -> Connection:
    """The model's own connection (and its client), for transactions on its table."""
    return model._get_connection().connection


_connecting = threading.Lock()
_session: botocore.session.Session | None = None


def _connect(connection: Connection) -> None:
    """Build the connection's DynamoDB client now, from one botocore session for the process.

    PynamoDB gives every connection a session of its own and builds the client on first use: each model would parse
    botocore's DynamoDB service description again (about 0.15 s of CPU, at every cold start, against 0.02 s from a
    shared session), and threads first using a model at the same moment would each build a client. A client found
    without credentials is built again on its next use, as PynamoDB does."""
    global _session
    with _connecting:
        if _session is None:
            _session = botocore.session.get_session()
        connection._local.session = _session  # PynamoDB's per-thread session, read only to build the client
        connection.client  # noqa: B018 -- builds and keeps the client


@functools.cache
def integration_model(table: TableSettings) -> type[IntegrationRecord]:
    """The integrations model bound to ``table``."""
    return _bind(IntegrationRecord, table)


@dataclass(frozen=True)
class MappingModels:
    mapping: type[MappingRecord]
    claim: type[MailboxClaimRecord]
    status: type[StatusRecord]


@functools.cache
def mapping_models(table: TableSettings) -> MappingModels:
    """The mappings table's three item models bound to ``table``."""
    return MappingModels(
        _bind(MappingRecord, table), _bind(MailboxClaimRecord, table), _bind(StatusRecord, table)
    )


@functools.cache
def link_model(table: TableSettings) -> type[LinkRecord]:
    """The links model bound to ``table``."""
    return _bind(LinkRecord, table)


@functools.cache
def block_link_model(table: TableSettings) -> type[BlockLinkRecord]:
    """The block links model bound to ``table``."""
    return _bind(BlockLinkRecord, table)


@functools.cache
def cursor_model(table: TableSettings) -> type[CursorRecord]:
    """The cursors model bound to ``table``."""
    return _bind(CursorRecord, table)


@dataclass(frozen=True)
class StreamingStateModels:
    heartbeat: type[HeartbeatRecord]
    mailbox: type[MailboxStateRecord]
    shard: type[ShardLeaseRecord]


@functools.cache
def streaming_state_models(table: TableSettings) -> StreamingStateModels:
    """The streaming state table's two item models bound to ``table``."""
    return StreamingStateModels(
        _bind(HeartbeatRecord, table), _bind(MailboxStateRecord, table), _bind(ShardLeaseRecord, table)
    )


@functools.cache
def run_model(table: TableSettings) -> type[RunRecord]:
    """The reconcile runs model bound to ``table``."""
    return _bind(RunRecord, table)


@functools.cache
def key_model(table: TableSettings) -> type[ItemKey]:
    """The keys-only model of any (pk, sk) table, bound to ``table``."""
    return _bind(ItemKey, table)
