"""The state ports on DynamoDB (PynamoDB): integrations, mappings (strictly 1:1) and links (optimistic locking).

PynamoDB's errors are translated here into the domain's: a lost conditional write becomes ``StaleStateError``, a
mailbox already taken ``ConflictError``, anything else ``RetryableError`` or ``PermanentError``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from pynamodb.exceptions import DeleteError, DoesNotExist, PutError, PynamoDBException, TransactWriteError
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from calsync.adapters.dynamo.models import (
    ExchangeConnectionMap,
    IntegrationRecord,
    JrniConnectionMap,
    LinkRecord,
    ScheduleBusyMap,
    StatusRecord,
    SyncOptionsMap,
    TableSettings,
    connection_of,
    integration_model,
    key_model,
    link_model,
    mapping_models,
)
from calsync.domain import (
    AccessType,
    CalsyncError,
    ConflictError,
    ExchangeApi,
    ExchangeAuth,
    ExchangeConnection,
    FreeBusy,
    Integration,
    JrniConnection,
    JrniKey,
    Link,
    LinkState,
    Mapping,
    MappingStatus,
    NotFoundError,
    PermanentError,
    PreconditionFailedError,
    ResourceKind,
    RetryableError,
    ScheduleBusy,
    StaleStateError,
    SyncOptions,
    SyncState,
)

# Codes that will fail the same way on every retry: a missing table, a bad request, missing permissions.
_PERMANENT_CODES = frozenset(
    {
        "ResourceNotFoundException",
        "ValidationException",
        "AccessDeniedException",
        "UnrecognizedClientException",
        "SerializationException",
    }
)
_CONDITION_FAILED = "ConditionalCheckFailedException"
# DynamoDB's limit on the items of one TransactWriteItems.
MAX_TRANSACTION = 100
# How often put/remove re-read and try again when a concurrent change to the same mapping won the race.
_ATTEMPTS = 3


def _translate(exc: PynamoDBException, doing: str) -> CalsyncError:
    code = exc.cause_response_code
    message = f"DynamoDB: {doing}: {code or type(exc).__name__}: {exc.cause_response_message or exc}"
    if code in _PERMANENT_CODES:
        return PermanentError(message)
    return RetryableError(message, delay_seconds=1.0)


def remove_items(model: type[Model], keys: Iterable[tuple[str, str]], what: str) -> int:
    """Delete the items of ``model``'s table with these (hash, range) keys, 25 to a BatchWriteItem (unconditionally:
    they are being removed for good); how many."""
    count = 0
    try:
        with model.batch_write() as batch:
            for hash_key, range_key in keys:
                batch.delete(model(hash_key, range_key))
                count += 1
    except PynamoDBException as exc:
        raise _translate(exc, f"removing {what}") from exc
    return count


def remove_partition(table: TableSettings, pk: str, what: str) -> int:
    """Delete every item of one partition of a (pk, sk) table; how many."""
    model = key_model(table)
    try:
        keys = [(record.pk, record.sk) for record in model.query(pk, consistent_read=True)]
    except PynamoDBException as exc:
        raise _translate(exc, f"listing {what}") from exc
    return remove_items(model, keys, what)


# ---------------------------------------------------------------- integrations


def save_versioned(record: Any, version_number: int, what: str) -> int:
    """Save ``record`` only if its stored version is still ``version_number`` (0: it must not exist yet); the new
    version. A lost race is a StaleStateError."""
    if version_number:
        record.version_number = version_number  # else: PynamoDB expects the item not to exist yet
    try:
        record.save()  # conditional on the version read; bumps it
    except PynamoDBException as exc:
        if exc.cause_response_code == _CONDITION_FAILED:
            raise StaleStateError(f"{what} changed since it was read") from exc
        raise _translate(exc, f"saving {what}") from exc
    return int(record.version_number or 0)


def delete_versioned(model: Any, record: Any, version_number: int, what: str) -> None:
    """Delete ``record`` if nobody changed it since ``version_number`` was read; already gone counts as deleted."""
    if version_number:
        unchanged = (model.version_number == version_number) | model.pk.does_not_exist()
    else:
        unchanged = model.pk.does_not_exist()  # never saved: only "still absent" is unchanged
    try:
        record.delete(condition=unchanged, add_version_condition=False)
    except PynamoDBException as exc:
        if exc.cause_response_code == _CONDITION_FAILED:
            raise StaleStateError(f"{what} changed since it was read") from exc
        raise _translate(exc, f"deleting {what}") from exc


def _integration_record(model: type[IntegrationRecord], integration: Integration) -> IntegrationRecord:
    jrni, exchange, options = integration.jrni, integration.exchange, integration.options
    return model(
        integration.id,
        name=integration.name,
        jrni=JrniConnectionMap(
            base_url=jrni.base_url, company_id=jrni.company_id, secret_name=jrni.secret_name
        ),
        exchange=ExchangeConnectionMap(
            endpoint=exchange.endpoint,
            secret_name=exchange.secret_name,
            auth=exchange.auth.value,
            access_type=exchange.access_type.value,
            server_version=exchange.server_version,
            verify_tls=exchange.verify_tls,
            token_url=exchange.token_url,
            api=exchange.api.value,
        ),
        webhook_secret_name=integration.webhook_secret_name,
        options=SyncOptionsMap(
            include_buffers=options.include_buffers,
            sync_jrni_blocks=options.sync_jrni_blocks,
            block_subject=options.block_subject,
            plain_text_body=options.plain_text_body,
            schedule_busy=ScheduleBusyMap(
                enabled=options.schedule_busy.enabled,
                subject=options.schedule_busy.subject,
                free_busy=options.schedule_busy.free_busy.value,
            ),
        ),
        subject_template=integration.subject_template,
        body_template=integration.body_template,
        appointment_lock=integration.appointment_lock,
        auto_confirm=integration.auto_confirm,
        inbound_free_busy=[value.value for value in integration.inbound_free_busy],
        created_at=integration.created_at,
        test_endpoints=integration.test_endpoints,
        templates_changed_at=integration.templates_changed_at,
    )


def _schedule_busy(stored: ScheduleBusyMap | None) -> ScheduleBusy:
    if stored is None:
        return ScheduleBusy()
    return ScheduleBusy(enabled=stored.enabled, subject=stored.subject, free_busy=FreeBusy(stored.free_busy))


def _integration(record: IntegrationRecord) -> Integration:
    jrni, exchange, options = record.jrni, record.exchange, record.options
    return Integration(
        id=record.integration_id,
        name=record.name,
        jrni=JrniConnection(base_url=jrni.base_url, company_id=jrni.company_id, secret_name=jrni.secret_name),
        exchange=ExchangeConnection(
            endpoint=exchange.endpoint,
            secret_name=exchange.secret_name,
            auth=ExchangeAuth(exchange.auth),
            access_type=AccessType(exchange.access_type),
            server_version=exchange.server_version,
            verify_tls=exchange.verify_tls,
            token_url=exchange.token_url,
            api=ExchangeApi(exchange.api or ExchangeApi.EWS),
        ),
        webhook_secret_name=record.webhook_secret_name,
        options=SyncOptions(
            include_buffers=options.include_buffers,
            sync_jrni_blocks=options.sync_jrni_blocks,
            block_subject=options.block_subject,
            plain_text_body=bool(options.plain_text_body),
            schedule_busy=_schedule_busy(options.schedule_busy),
        ),
        subject_template=record.subject_template,
        body_template=record.body_template,
        appointment_lock=record.appointment_lock,
        auto_confirm=record.auto_confirm,
        inbound_free_busy=tuple(FreeBusy(str(value)) for value in record.inbound_free_busy or []),
        created_at=record.created_at,
        test_endpoints=bool(record.test_endpoints),
        templates_changed_at=record.templates_changed_at,
        version=int(record.version or 0),
    )


class DynamoIntegrationStore:
    """``IntegrationStore`` on the integrations table."""

    def __init__(
        self, table_name: str, *, region: str | None = None, endpoint_url: str | None = None
    ) -> None:
        self._model = integration_model(TableSettings(table_name, region, endpoint_url))

    def get(self, integration_id: str) -> Integration | None:
        """One integration, or None."""
        try:
            return _integration(self._model.get(integration_id, consistent_read=True))
        except DoesNotExist:
            return None
        except PynamoDBException as exc:
            raise _translate(exc, f"reading integration {integration_id}") from exc

    def all(self) -> list[Integration]:
        """Every integration (a scan: there are few)."""
        try:
            return sorted((_integration(record) for record in self._model.scan()), key=lambda i: i.id)
        except PynamoDBException as exc:
            raise _translate(exc, "listing integrations") from exc

    def create(self, integration: Integration) -> Integration:
        """Store a new integration (at version 1); ConflictError when its id exists."""
        record = _integration_record(self._model, integration)
        try:
            record.save(condition=self._model.integration_id.does_not_exist())
        except PutError as exc:
            if exc.cause_response_code == _CONDITION_FAILED:
                raise ConflictError(f"integration {integration.id} already exists") from exc
            raise _translate(exc, f"creating integration {integration.id}") from exc
        return replace(integration, version=int(record.version or 0))

    def update(self, integration: Integration, expected_version: int) -> Integration:
        """Replace the stored integration if it is still at ``expected_version`` (0: stored before versions existed):
        one conditional PutItem, which also counts the version up."""
        record = _integration_record(self._model, integration)
        if expected_version:
            record.version = expected_version  # else (None): PynamoDB expects the attribute to be absent
        try:
            record.save(condition=self._model.integration_id.exists())
        except PutError as exc:
            if exc.cause_response_code != _CONDITION_FAILED:
                raise _translate(exc, f"changing integration {integration.id}") from exc
            current = self.get(integration.id)
            if current is None:
                raise NotFoundError(f"no integration {integration.id!r}") from exc
            raise PreconditionFailedError(
                f"integration {integration.id!r} was changed by someone else: it is at version {current.version}, "
                f"not {expected_version}; read it again (GET, its ETag) and make the change to what it holds now"
            ) from exc
        return replace(integration, version=int(record.version or 0))

    def delete(self, integration_id: str) -> bool:
        """Remove the integration's item; False when there was none."""
        model = self._model
        try:
            model(integration_id).delete(condition=model.integration_id.exists(), add_version_condition=False)
        except DeleteError as exc:
            if exc.cause_response_code == _CONDITION_FAILED:
                return False
            raise _translate(exc, f"deleting integration {integration_id}") from exc
        return True


# ---------------------------------------------------------------- mappings


def _mapping_key(kind: ResourceKind, jrni_id: str) -> str:
    return f"mapping#{kind.value}#{jrni_id}"


def _claim_key(mailbox: str) -> str:
    return f"mailbox#{mailbox}"


def _status_key(kind: ResourceKind, jrni_id: str) -> str:
    return f"status#{kind.value}#{jrni_id}"


def _problem_key(kind: ResourceKind, jrni_id: str, subject: str) -> str:
    return f"problem#{kind.value}#{jrni_id}#{subject}"


def _owner(kind: ResourceKind, jrni_id: str) -> str:
    return f"{kind.value}#{jrni_id}"


class DynamoMappingStore:
    """``MappingStore`` on the mappings table: each mapping and its mailbox claim are written in one transaction,
    so a mailbox is mapped to at most one staff member or resource per integration even under concurrent edits."""

    def __init__(
        self, table_name: str, *, region: str | None = None, endpoint_url: str | None = None
    ) -> None:
        self._table = TableSettings(table_name, region, endpoint_url)
        self._models = mapping_models(self._table)
        self._connection = connection_of(self._models.mapping)

    def remove_integration(self, integration_id: str) -> int:
        """Remove the integration's mappings, mailbox claims, statuses and open problems (its one partition)."""
        return remove_partition(
            self._table, integration_id, f"the mappings and statuses of integration {integration_id}"
        )

    def mappings(self, integration_id: str) -> list[Mapping]:
        """Every mapping of one integration."""
        model = self._models.mapping
        try:
            return [
                Mapping(integration_id, ResourceKind(record.kind), record.jrni_id, record.mailbox)
                for record in model.query(
                    integration_id, model.sk.startswith("mapping#"), consistent_read=True
                )
            ]
        except PynamoDBException as exc:
            raise _translate(exc, f"listing mappings of {integration_id}") from exc

    def mapping_of(self, integration_id: str, mailbox: str) -> Mapping | None:
        """The mailbox's claim names its mapping, and the mapping still names the mailbox (two reads, whatever the
        number of mappings: every inbound sync and reconcile asks)."""
        try:
            owner = self._models.claim.get(integration_id, _claim_key(mailbox), consistent_read=True).owner
        except DoesNotExist:
            return None
        except PynamoDBException as exc:
            raise _translate(exc, f"reading which mapping holds {mailbox}") from exc
        kind, _, jrni_id = owner.partition("#")
        try:
            resource_kind = ResourceKind(kind)
        except ValueError:
            return None
        if self._mailbox_of(integration_id, resource_kind, jrni_id) != mailbox:
            return None
        return Mapping(integration_id, resource_kind, jrni_id, mailbox)

    def _mailbox_of(self, integration_id: str, kind: ResourceKind, jrni_id: str) -> str | None:
        try:
            return self._models.mapping.get(
                integration_id, _mapping_key(kind, jrni_id), consistent_read=True
            ).mailbox
        except DoesNotExist:
            return None
        except PynamoDBException as exc:
            raise _translate(exc, f"reading the mapping of {kind.value} {jrni_id}") from exc

    def _holder_of(self, integration_id: str, mailbox: str) -> str:
        try:
            return self._models.claim.get(integration_id, _claim_key(mailbox), consistent_read=True).owner
        except (DoesNotExist, PynamoDBException):
            return "another staff member or resource"  # only for the message: the conflict itself is certain

    def put(self, mapping: Mapping) -> None:
        """Map (or re-map) a staff member or resource; ConflictError when the mailbox is mapped to another one.

        Re-mapping frees the old mailbox in the same transaction."""
        claim_model, mapping_model = self._models.claim, self._models.mapping
        integration_id, owner = mapping.integration_id, _owner(mapping.kind, mapping.jrni_id)
        for _ in range(_ATTEMPTS):
            current = self._mailbox_of(integration_id, mapping.kind, mapping.jrni_id)
            if current == mapping.mailbox:
                return
            claim = claim_model(integration_id, _claim_key(mapping.mailbox), owner=owner)
            record = mapping_model(
                integration_id,
                _mapping_key(mapping.kind, mapping.jrni_id),
                kind=mapping.kind.value,
                jrni_id=mapping.jrni_id,
                mailbox=mapping.mailbox,
            )
            try:
                with TransactWrite(connection=self._connection) as transaction:
                    # Its failure alone means the mailbox belongs to someone else.
                    transaction.save(
                        claim, condition=claim_model.sk.does_not_exist() | (claim_model.owner == owner)
                    )
                    # The mapping must still be what we read, or a concurrent re-map would leak a claim.
                    unchanged = (
                        mapping_model.sk.does_not_exist()
                        if current is None
                        else mapping_model.mailbox == current
                    )
                    transaction.save(record, condition=unchanged)
                    if current is not None:
                        transaction.delete(
                            claim_model(integration_id, _claim_key(current)),
                            condition=claim_model.owner == owner,
                        )
            except TransactWriteError as exc:
                reasons = (
                    exc.cancellation_reasons
                    if exc.cause_response_code == "TransactionCanceledException"
                    else []
                )
                if not reasons:
                    raise _translate(exc, f"mapping {owner} to {mapping.mailbox}") from exc
                # PynamoDB sends deletes before puts, so the claim is item 1 when an old claim is deleted.
                claim_reason = reasons[1 if current is not None else 0]
                if claim_reason is not None and claim_reason.code == "ConditionalCheckFailed":
                    holder = self._holder_of(integration_id, mapping.mailbox)
                    raise ConflictError(f"mailbox {mapping.mailbox} is already mapped to {holder}") from exc
                continue  # a concurrent change to this mapping won: read it again
            return
        raise StaleStateError(f"the mapping of {owner} kept changing while it was being saved")

    def remove(self, integration_id: str, kind: ResourceKind, jrni_id: str) -> bool:
        """Unmap, freeing the mailbox; False when it was not mapped. The sync status is kept."""
        claim_model, mapping_model = self._models.claim, self._models.mapping
        owner = _owner(kind, jrni_id)
        for _ in range(_ATTEMPTS):
            current = self._mailbox_of(integration_id, kind, jrni_id)
            if current is None:
                return False
            try:
                with TransactWrite(connection=self._connection) as transaction:
                    transaction.delete(
                        mapping_model(integration_id, _mapping_key(kind, jrni_id)),
                        condition=mapping_model.mailbox == current,
                    )
                    transaction.delete(
                        claim_model(integration_id, _claim_key(current)), condition=claim_model.owner == owner
                    )
            except TransactWriteError as exc:
                if exc.cause_response_code != "TransactionCanceledException":
                    raise _translate(exc, f"unmapping {owner}") from exc
                continue
            return True
        raise StaleStateError(f"the mapping of {owner} kept changing while it was being removed")

    def statuses(self, integration_id: str) -> list[MappingStatus]:
        """The last sync outcome recorded for each staff member and resource, mapped or not."""
        return self._status_records(integration_id, "status#")

    def problems(self, integration_id: str) -> list[MappingStatus]:
        """The open problems of every staff member and resource."""
        return self._status_records(integration_id, "problem#")

    def _status_records(self, integration_id: str, prefix: str) -> list[MappingStatus]:
        model = self._models.status
        try:
            return [
                MappingStatus(
                    integration_id,
                    ResourceKind(record.kind),
                    record.jrni_id,
                    SyncState(record.state),
                    record.detail,
                    record.at,
                    record.subject or "",
                )
                for record in model.query(integration_id, model.sk.startswith(prefix))
            ]
        except PynamoDBException as exc:
            raise _translate(exc, f"listing statuses of {integration_id}") from exc

    def record_status(self, *statuses: MappingStatus) -> None:
        """Record the outcome of a sync for each staff member or resource (the latest write wins), the problem it
        opens and the problems it settles: one BatchWriteItem for all of them (up to 25 rows; more take one per 25).
        A row written twice is written once, as the later of the two says."""
        model = self._models.status
        rows: dict[
            tuple[str, str], StatusRecord | None
        ] = {}  # (pk, sk) → the row to save, or None: delete it
        for status in statuses:
            values: dict[str, Any] = {
                "kind": status.kind.value,
                "jrni_id": status.jrni_id,
                "state": status.state.value,
                "detail": status.detail,
                "at": status.at,
            }
            pk = status.integration_id
            key = _status_key(status.kind, status.jrni_id)
            rows.pop(
                (pk, key), None
            )  # re-inserted last: the order of the writes is the order of the outcomes
            rows[(pk, key)] = model(pk, key, **values)
            if status.is_problem:
                problem = _problem_key(status.kind, status.jrni_id, status.subject)
                rows.pop((pk, problem), None)
                rows[(pk, problem)] = model(pk, problem, subject=status.subject, **values)
            for subject in status.settled:
                settled = _problem_key(status.kind, status.jrni_id, subject)
                rows.pop((pk, settled), None)
                rows[(pk, settled)] = None
        if not rows:
            return
        try:
            with model.batch_write() as batch:
                for (pk, sk), row in rows.items():
                    if row is None:
                        batch.delete(model(pk, sk))
                    else:
                        batch.save(row)
        except PynamoDBException as exc:
            which = ", ".join(f"{s.kind.value} {s.jrni_id}" for s in statuses)
            raise _translate(exc, f"recording the status of {which}") from exc


# ---------------------------------------------------------------- links


def _link_pk(integration_id: str, jrni_key: JrniKey) -> str:
    return f"{integration_id}#{jrni_key}"


def _link(record: LinkRecord) -> Link:
    return Link(
        integration_id=record.integration_id,
        jrni_key=JrniKey.parse(record.jrni_key),
        mailbox=record.sk,
        state=LinkState(record.state),
        fingerprint=record.fingerprint,
        remote_id=record.remote_id,
        version=record.remote_version,
        provider=record.provider,
        version_number=record.version_number or 0,
        written_at=record.written_at,
        templates=record.templates or "",
        placement=record.placement or "",
    )


def _remote_ref(integration_id: str, mailbox: str, item_id: str) -> str:
    """The ``by_remote_item`` index key of the link that wrote ``item_id`` in ``mailbox``."""
    return f"{integration_id}#{mailbox}#{item_id}"


class DynamoLinkStore:
    """``LinkStore`` on the links table: every write is conditional on the ``version_number`` that was read."""

    def __init__(
        self, table_name: str, *, region: str | None = None, endpoint_url: str | None = None
    ) -> None:
        self._model = link_model(TableSettings(table_name, region, endpoint_url))

    def remove_integration(self, integration_id: str) -> int:
        """Remove every link of the integration, found through the ``by_mailbox`` index (keyed by integration)."""
        model = self._model
        try:
            keys = [(record.pk, record.sk) for record in model.by_mailbox.query(integration_id)]
        except PynamoDBException as exc:
            raise _translate(exc, f"listing the links of integration {integration_id}") from exc
        return remove_items(model, keys, f"the links of integration {integration_id}")

    def links_for(self, integration_id: str, jrni_key: JrniKey) -> list[Link]:
        """Every mailbox's link for one JRNI object (one Query)."""
        try:
            return [
                _link(record)
                for record in self._model.query(_link_pk(integration_id, jrni_key), consistent_read=True)
            ]
        except PynamoDBException as exc:
            raise _translate(exc, f"reading links of {jrni_key}") from exc

    def links_in(self, integration_id: str, mailbox: str) -> list[Link]:
        """Every link of one mailbox (one Query on the ``by_mailbox`` index).

        The index is eventually consistent: a link saved a moment ago may be missing. Inbound still knows our items
        by the stamp they carry; the link only adds what JRNI last said (its fingerprint and change key)."""
        model = self._model
        try:
            return [_link(record) for record in model.by_mailbox.query(integration_id, model.sk == mailbox)]
        except PynamoDBException as exc:
            raise _translate(exc, f"reading the links in {mailbox}") from exc

    def versions_of(self, integration_id: str, mailbox: str, item_ids: Sequence[str]) -> dict[str, str]:
        """Item id → recorded version, for those of ``item_ids`` that calsync wrote in ``mailbox``: one Query of the
        ``by_remote_item`` index per item, each reading at most one entry however many links the mailbox has.

        The index is eventually consistent: a link saved a moment ago may be missing, and its item then counts as
        not ours (the mailbox is read, which is always safe)."""
        versions: dict[str, str] = {}
        try:
            for item_id in dict.fromkeys(item_ids):
                for record in self._model.by_remote_item.query(
                    _remote_ref(integration_id, mailbox, item_id), limit=1
                ):
                    if record.remote_version:
                        versions[item_id] = record.remote_version
        except PynamoDBException as exc:
            raise _translate(exc, f"reading the links of {len(item_ids)} item(s) in {mailbox}") from exc
        return versions

    def save(self, link: Link) -> Link:
        """Store ``link`` if nobody changed it since it was read (``version_number``); StaleStateError otherwise."""
        what = f"the link of {link.jrni_key} in {link.mailbox}"
        return replace(link, version_number=save_versioned(self._record(link), link.version_number, what))

    def save_all(self, links: Sequence[Link]) -> list[Link]:
        """Store up to ``MAX_TRANSACTION`` links at once, each only if nobody changed it since it was read: one
        transaction, all or none (StaleStateError when any lost a race)."""
        if not links:
            return []
        if len(links) > MAX_TRANSACTION:
            raise ValueError(f"at most {MAX_TRANSACTION} links in one transaction")
        records = []
        for link in links:
            record = self._record(link)
            if link.version_number:
                record.version_number = link.version_number
            records.append(record)
        try:
            with TransactWrite(connection=connection_of(self._model)) as transaction:
                for record in records:
                    transaction.save(record)
        except TransactWriteError as exc:
            if "ConditionalCheckFailed" in str(exc.cause_response_message or exc):
                raise StaleStateError(f"one of {len(links)} links changed since it was read") from exc
            raise _translate(exc, f"saving {len(links)} links") from exc
        return [
            replace(link, version_number=int(record.version_number or 0))
            for link, record in zip(links, records, strict=True)
        ]

    def _record(self, link: Link) -> LinkRecord:
        return self._model(
            _link_pk(link.integration_id, link.jrni_key),
            link.mailbox,
            integration_id=link.integration_id,
            jrni_key=str(link.jrni_key),
            state=link.state.value,
            fingerprint=link.fingerprint,
            remote_id=link.remote_id,
            remote_version=link.version,
            remote_ref=_remote_ref(link.integration_id, link.mailbox, link.remote_id)
            if link.remote_id
            else None,
            provider=link.provider,
            written_at=link.written_at,
            templates=link.templates or None,
            placement=link.placement or None,
        )

    def delete(self, link: Link) -> None:
        """Remove ``link`` if nobody changed it since it was read; a link already gone counts as removed."""
        model = self._model
        record = model(_link_pk(link.integration_id, link.jrni_key), link.mailbox)
        delete_versioned(model, record, link.version_number, f"the link of {link.jrni_key} in {link.mailbox}")
