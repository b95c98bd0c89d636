"""The DynamoDB stores on moto, with tables built from template.yaml."""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import boto3
import botocore.session
import pytest
from moto import mock_aws

from calsync.adapters.dynamo import (
    DynamoBlockLinkStore,
    DynamoCursorStore,
    DynamoIntegrationStore,
    DynamoLinkStore,
    DynamoMappingStore,
    DynamoRunStore,
    DynamoStreamingStateStore,
    MailboxStreamState,
    TaskHeartbeat,
)
from calsync.adapters.dynamo.dead_letters import DynamoDeadLetterStore
from calsync.adapters.dynamo.models import link_model
from calsync.domain import (
    AccessType,
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
    ScheduleBusy,
    StaleStateError,
    SyncOptions,
    SyncState,
    TimeWindow,
)
from calsync.domain.dead_letters import DeadLetter, DeadLetterQueue
from calsync.domain.inbound import BlockLink
from calsync.domain.reconcile import ReconcileRun, Repairs
from calsync.ports import BlockLinkStore, CursorStore, LinkStore
from calsync.streaming.ports import StreamingStateStore
from tests.aws import REGION, create_tables
from tests.calsync.builders import ALICE, BOB, INTEGRATION, ROOM

PERSON, RESOURCE = ResourceKind.PERSON, ResourceKind.RESOURCE
CAROL = "carol@example.com"
BOOKING = JrniKey("100", "501")


@pytest.fixture
def tables(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    for name, value in {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "pass-for-tests",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield create_tables()


@pytest.fixture
def integrations(tables: dict[str, str]) -> DynamoIntegrationStore:
    return DynamoIntegrationStore(tables["IntegrationsTable"], region=REGION)


@pytest.fixture
def mappings(tables: dict[str, str]) -> DynamoMappingStore:
    return DynamoMappingStore(tables["MappingsTable"], region=REGION)


@pytest.fixture
def links(tables: dict[str, str]) -> DynamoLinkStore:
    store: LinkStore = DynamoLinkStore(tables["LinksTable"], region=REGION)  # mypy: the port is implemented
    assert isinstance(store, DynamoLinkStore)
    return store


@pytest.fixture
def block_links(tables: dict[str, str]) -> DynamoBlockLinkStore:
    store: BlockLinkStore = DynamoBlockLinkStore(tables["BlockLinksTable"], region=REGION)
    assert isinstance(store, DynamoBlockLinkStore)
    return store


@pytest.fixture
def cursors(tables: dict[str, str]) -> DynamoCursorStore:
    store: CursorStore = DynamoCursorStore(tables["CursorsTable"], region=REGION)
    assert isinstance(store, DynamoCursorStore)
    return store


@pytest.fixture
def streaming(tables: dict[str, str]) -> DynamoStreamingStateStore:
    store: StreamingStateStore = DynamoStreamingStateStore(tables["StreamingStateTable"], region=REGION)
    assert isinstance(store, DynamoStreamingStateStore)
    return store


def raw_items(table: str) -> list[dict[str, object]]:
    """Everything in a table, as DynamoDB holds it: to prove nothing was half-written."""
    items: list[dict[str, object]] = boto3.client("dynamodb", region_name=REGION).scan(TableName=table)[
        "Items"
    ]
    return items


# ---------------------------------------------------------------- integrations

# Every field differs from its default, so a field the store forgets cannot pass the round trip unnoticed.
FULL_INTEGRATION = Integration(
    id="int-7",
    name="Bank of Tests",
    jrni=JrniConnection(
        base_url="http://127.0.0.1:8088", company_id="37000", secret_name="calsync/int-7/jrni"
    ),
    exchange=ExchangeConnection(
        endpoint="http://127.0.0.1:8089/EWS/Exchange.asmx",
        secret_name="calsync/int-7/exchange",
        auth=ExchangeAuth.OAUTH2,
        access_type=AccessType.DELEGATE,
        server_version="Exchange2019",
        verify_tls=False,
        token_url="http://127.0.0.1:8089/token",
    ),
    webhook_secret_name="calsync/int-7/webhook",
    options=SyncOptions(
        include_buffers=False,
        sync_jrni_blocks=False,
        block_subject="Busy elsewhere",
        plain_text_body=True,
        schedule_busy=ScheduleBusy(enabled=True, subject="Not working", free_busy=FreeBusy.OOF),
    ),
    subject_template="{{ service.name }}",
    body_template="<p>{{ client.name }}</p>",
    appointment_lock=False,
    auto_confirm=True,
    inbound_free_busy=(FreeBusy.OOF,),
    created_at=datetime(2025, 7, 1, 9, 30, tzinfo=timezone(timedelta(hours=2))),
    test_endpoints=True,  # plain http on loopback: the emulators
    templates_changed_at=datetime(2025, 7, 2, 14, 5, tzinfo=UTC),
    version=1,  # as created: the first version
)


@pytest.mark.parametrize(
    "value", [FULL_INTEGRATION, FULL_INTEGRATION.exchange, FULL_INTEGRATION.options], ids=type
)
def test_the_sample_integration_sets_every_field_away_from_its_default(value: object) -> None:
    # Given a sample meant to exercise every stored field
    for field in dataclasses.fields(value):  # type: ignore[arg-type]
        default: object
        if field.default is not dataclasses.MISSING:
            default = field.default
        elif field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        else:
            continue  # required: no default to differ from
        if isinstance(default, enum.Enum) and len(type(default)) == 1:
            continue  # a choice with one value so far (the Exchange API): nothing else to set it to
        # Then no field is left at its default (a new field must be added here and to the store)
        assert getattr(value, field.name) != default, field.name


def test_an_integration_reads_back_exactly_as_it_was_created(integrations: DynamoIntegrationStore) -> None:
    # When an integration with every option set is created
    integrations.create(FULL_INTEGRATION)
    # Then it reads back equal, field for field, and is listed
    assert integrations.get("int-7") == FULL_INTEGRATION
    assert integrations.all() == [FULL_INTEGRATION]


def test_an_integration_stored_before_the_exchange_api_choice_reads_back_as_ews(
    integrations: DynamoIntegrationStore, tables: dict[str, str]
) -> None:
    # Given an integration stored by a version of calsync that had no Exchange API field
    integrations.create(FULL_INTEGRATION)
    boto3.client("dynamodb", region_name=REGION).update_item(
        TableName=tables["IntegrationsTable"],
        Key={"integration_id": {"S": "int-7"}},
        UpdateExpression="REMOVE exchange.api",
    )
    # Then it reads back as speaking EWS, as it always did
    assert integrations.get("int-7") == FULL_INTEGRATION
    assert FULL_INTEGRATION.exchange.api is ExchangeApi.EWS


def test_an_integration_stored_before_test_endpoints_existed_reads_back_as_not_a_test_one(
    integrations: DynamoIntegrationStore, tables: dict[str, str]
) -> None:
    # Given an integration stored by a version of calsync that had no test_endpoints attribute
    integrations.create(FULL_INTEGRATION)
    boto3.client("dynamodb", region_name=REGION).update_item(
        TableName=tables["IntegrationsTable"],
        Key={"integration_id": {"S": "int-7"}},
        UpdateExpression="REMOVE test_endpoints",
    )
    # Then it reads back as a production integration: its endpoints held to https and remote hosts
    assert integrations.get("int-7") == dataclasses.replace(FULL_INTEGRATION, test_endpoints=False)


def test_defaults_and_empty_values_read_back_too(integrations: DynamoIntegrationStore) -> None:
    plain = dataclasses.replace(
        FULL_INTEGRATION,
        id="int-8",
        options=SyncOptions(block_subject=""),
        subject_template=None,
        body_template=None,
        inbound_free_busy=(),
        created_at=None,
        exchange=ExchangeConnection("https://mail.example.com/EWS", "s"),
        test_endpoints=False,
        templates_changed_at=None,
    )
    integrations.create(plain)
    assert integrations.get("int-8") == plain


def test_an_integration_stores_secret_names_never_secrets(
    integrations: DynamoIntegrationStore, tables: dict[str, str]
) -> None:
    integrations.create(FULL_INTEGRATION)
    stored = str(raw_items(tables["IntegrationsTable"]))
    assert "calsync/int-7/exchange" in stored
    assert "password" not in stored.lower() and "client_secret" not in stored.lower()


def test_creating_an_existing_integration_is_a_conflict_and_keeps_the_first(
    integrations: DynamoIntegrationStore,
) -> None:
    integrations.create(FULL_INTEGRATION)
    with pytest.raises(ConflictError):
        integrations.create(dataclasses.replace(FULL_INTEGRATION, name="Impostor"))
    assert integrations.get("int-7") == FULL_INTEGRATION


def test_an_unknown_integration_is_none(integrations: DynamoIntegrationStore) -> None:
    assert integrations.get("nope") is None
    assert integrations.all() == []


def test_a_change_is_stored_over_the_version_it_was_made_from_and_counts_it_up(
    integrations: DynamoIntegrationStore,
) -> None:
    created = integrations.create(FULL_INTEGRATION)
    changed = integrations.update(
        dataclasses.replace(created, name="Renamed"), expected_version=created.version
    )
    assert changed.version == created.version + 1 == 2
    assert integrations.get("int-7") == changed


def test_a_change_from_a_version_that_moved_is_refused_and_keeps_the_other_change(
    integrations: DynamoIntegrationStore,
) -> None:
    # Given two operators who read version 1
    read = integrations.create(FULL_INTEGRATION)
    # When both change it from version 1
    integrations.update(dataclasses.replace(read, name="First"), expected_version=1)
    # Then the second is refused, saying at which version it is now, and the first change stays
    with pytest.raises(PreconditionFailedError, match="at version 2, not 1"):
        integrations.update(dataclasses.replace(read, name="Second"), expected_version=1)
    assert integrations.get("int-7").name == "First"  # type: ignore[union-attr]


def test_concurrent_changes_from_the_same_version_let_exactly_one_win(
    integrations: DynamoIntegrationStore,
) -> None:
    read = integrations.create(FULL_INTEGRATION)

    def change(name: str) -> str:
        try:
            integrations.update(dataclasses.replace(read, name=name), expected_version=read.version)
        except PreconditionFailedError:
            return "refused"
        return "stored"

    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(change, [f"name-{i}" for i in range(4)]))
    assert sorted(outcomes) == ["refused"] * 3 + ["stored"]
    assert integrations.get("int-7").version == 2  # type: ignore[union-attr]


def test_an_integration_stored_before_versions_existed_is_version_0_and_can_be_changed(
    integrations: DynamoIntegrationStore, tables: dict[str, str]
) -> None:
    integrations.create(FULL_INTEGRATION)
    boto3.client("dynamodb", region_name=REGION).update_item(
        TableName=tables["IntegrationsTable"],
        Key={"integration_id": {"S": "int-7"}},
        UpdateExpression="REMOVE version",
    )
    old = integrations.get("int-7")
    assert old is not None and old.version == 0
    assert integrations.update(dataclasses.replace(old, name="Renamed"), expected_version=0).version == 1


def test_changing_or_deleting_an_integration_that_is_gone(integrations: DynamoIntegrationStore) -> None:
    with pytest.raises(NotFoundError):
        integrations.update(FULL_INTEGRATION, expected_version=1)
    assert integrations.get("int-7") is None  # a change never creates one
    integrations.create(FULL_INTEGRATION)
    assert integrations.delete("int-7") is True
    assert integrations.delete("int-7") is False and integrations.get("int-7") is None


def test_removing_an_integration_leaves_none_of_its_items_in_any_table(
    tables: dict[str, str],
    integrations: DynamoIntegrationStore,
    mappings: DynamoMappingStore,
    links: DynamoLinkStore,
    block_links: DynamoBlockLinkStore,
    cursors: DynamoCursorStore,
    streaming: DynamoStreamingStateStore,
) -> None:
    runs = DynamoRunStore(tables["RunsTable"], region=REGION)
    dead_letters = DynamoDeadLetterStore(tables["DeadLettersTable"], region=REGION)
    at = datetime(2025, 7, 1, 9, tzinfo=UTC)
    window = TimeWindow(at, at + timedelta(hours=1))
    # Given two integrations with items of every kind, in every table
    for integration_id in ("int-1", "int-2"):
        integrations.create(dataclasses.replace(FULL_INTEGRATION, id=integration_id))
        mappings.put(Mapping(integration_id, PERSON, "11", ALICE))
        mappings.record_status(
            MappingStatus(integration_id, PERSON, "11", SyncState.ERROR, "refused", at, "b 1")
        )
        links.save(Link(integration_id, BOOKING, ALICE, LinkState.SYNCED, "fp", "ews", "item-1", "ck-1"))
        block_links.save(BlockLink(integration_id, ALICE, "item-2", BOOKING, "7001", window, "Busy", "ck-2"))
        cursors.put(integration_id, ALICE, "sync-state")
        streaming.record_mailbox(integration_id, ALICE, "streaming", "subscribed", at)
        runs.start(ReconcileRun(integration_id, "run-1", deep=True, started_at=at, mappings_total=1))
        runs.set_jrni_cursor(integration_id, at)
        runs.reconciled(integration_id, ALICE, at, Repairs(created=1))
        dead_letters.record(
            DeadLetter(
                integration_id, f"m-{integration_id}", DeadLetterQueue.OUTBOUND, {"mailbox": ALICE}, "no", at
            )
        )
    streaming.heartbeat("task-1", at, 2)  # no integration's
    per_integration = {name: table for name, table in tables.items() if name != "IdempotencyTable"}
    for name, table in per_integration.items():
        assert any("int-1" in str(item) for item in raw_items(table)), f"{name}: the test wrote nothing there"
    before = {name: len(raw_items(table)) for name, table in per_integration.items()}

    # When int-1's state is removed from every store, then the integration itself
    removed = sum(
        store.remove_integration("int-1")
        for store in (mappings, links, block_links, cursors, streaming, runs, dead_letters)
    )
    assert integrations.delete("int-1")

    # Then no table holds an item of int-1, and every item of int-2 (and the heartbeat) is still there
    for name, table in per_integration.items():
        items = raw_items(table)
        assert [item for item in items if "int-1" in str(item)] == [], name
        assert any("int-2" in str(item) for item in items), name
    after = {name: len(raw_items(table)) for name, table in per_integration.items()}
    assert sum(before.values()) - sum(after.values()) == removed + 1  # the integration's own item besides
    assert [run.run_id for run in runs.runs_of("int-2")] == ["run-1"] and runs.runs_of("int-1") == []
    assert streaming.heartbeats() == [TaskHeartbeat("task-1", at, 2)]


def test_runs_of_an_integration_are_listed_newest_first(tables: dict[str, str]) -> None:
    runs = DynamoRunStore(tables["RunsTable"], region=REGION)
    at = datetime(2025, 7, 1, 9, tzinfo=UTC)
    for hour, run_id in ((0, "older"), (2, "newest"), (1, "middle")):
        runs.start(ReconcileRun(INTEGRATION, run_id, deep=False, started_at=at + timedelta(hours=hour)))
    runs.start(ReconcileRun("other", "theirs", deep=False, started_at=at))
    runs.set_jrni_cursor(INTEGRATION, at)  # not a run
    runs.reconciled(INTEGRATION, ALICE, at, Repairs())  # not a run either
    assert [run.run_id for run in runs.runs_of(INTEGRATION)] == ["newest", "middle", "older"]


# ---------------------------------------------------------------- mappings


def test_mappings_read_back_with_mailboxes_normalised(mappings: DynamoMappingStore) -> None:
    # When people and a room are mapped (one mailbox written in capitals)
    mappings.put(Mapping(INTEGRATION, PERSON, "11", " Alice@Example.com "))
    mappings.put(Mapping(INTEGRATION, PERSON, "12", BOB))
    mappings.put(Mapping(INTEGRATION, RESOURCE, "21", ROOM))
    # Then all three are listed, the mailbox in its normal form; another integration sees none of them
    assert sorted(mappings.mappings(INTEGRATION), key=lambda m: m.jrni_id) == [
        Mapping(INTEGRATION, PERSON, "11", ALICE),
        Mapping(INTEGRATION, PERSON, "12", BOB),
        Mapping(INTEGRATION, RESOURCE, "21", ROOM),
    ]
    assert mappings.mappings("int-other") == []


def test_a_mailbox_mapped_to_someone_else_is_a_conflict_and_nothing_is_written(
    mappings: DynamoMappingStore, tables: dict[str, str]
) -> None:
    # Given Alice's mailbox mapped to staff member 11
    mappings.put(Mapping(INTEGRATION, PERSON, "11", ALICE))
    before = raw_items(tables["MappingsTable"])
    # When staff member 12, or a resource, is mapped to the same mailbox (in any letter case)
    for kind, jrni_id in [(PERSON, "12"), (RESOURCE, "11")]:
        with pytest.raises(ConflictError, match=re.escape(ALICE)):
            mappings.put(Mapping(INTEGRATION, kind, jrni_id, ALICE.upper()))
    # Then nothing changed: no mapping for them, the mailbox still claimed by 11
    assert mappings.mappings(INTEGRATION) == [Mapping(INTEGRATION, PERSON, "11", ALICE)]
    assert raw_items(tables["MappingsTable"]) == before


def test_a_conflicting_remap_keeps_the_old_mapping_and_its_mailbox(mappings: DynamoMappingStore) -> None:
    # Given 11 on Alice's mailbox and 12 on Bob's
    mappings.put(Mapping(INTEGRATION, PERSON, "11", ALICE))
    mappings.put(Mapping(INTEGRATION, PERSON, "12", BOB))
    # When 11 is moved to Bob's mailbox
    with pytest.raises(ConflictError):
        mappings.put(Mapping(INTEGRATION, PERSON, "11", BOB))
    # Then 11 still has Alice's mailbox, and still holds it against others
    assert Mapping(INTEGRATION, PERSON, "11", ALICE) in mappings.mappings(INTEGRATION)
    with pytest.raises(ConflictError):
        mappings.put(Mapping(INTEGRATION, PERSON, "13", ALICE))


def test_remapping_frees_the_old_mailbox(mappings: DynamoMappingStore) -> None:
    # Given 11 on Alice's mailbox
    mappings.put(Mapping(INTEGRATION, PERSON, "11", ALICE))
    # When 11 is re-mapped to Carol's mailbox
    mappings.put(Mapping(INTEGRATION, PERSON, "11", CAROL))
    # Then Alice's mailbox can be given to 12, and 11 holds Carol's
    mappings.put(Mapping(INTEGRATION, PERSON, "12", ALICE))
    assert sorted(mappings.mappings(INTEGRATION), key=lambda m: m.jrni_id) == [
        Mapping(INTEGRATION, PERSON, "11", CAROL),
        Mapping(INTEGRATION, PERSON, "12", ALICE),
    ]
    with pytest.raises(ConflictError):
        mappings.put(Mapping(INTEGRATION, RESOURCE, "21", CAROL))


def test_putting_the_same_mapping_again_changes_nothing(
    mappings: DynamoMappingStore, tables: dict[str, str]
) -> None:
    mappings.put(Mapping(INTEGRATION, PERSON, "11", ALICE))
    before = raw_items(tables["MappingsTable"])
    mappings.put(Mapping(INTEGRATION, PERSON, "11", ALICE))
    assert raw_items(tables["MappingsTable"]) == before


def test_the_same_mailbox_may_serve_two_integrations(mappings: DynamoMappingStore) -> None:
    mappings.put(Mapping(INTEGRATION, PERSON, "11", ALICE))
    mappings.put(Mapping("int-2", PERSON, "99", ALICE))
    assert mappings.mappings("int-2") == [Mapping("int-2", PERSON, "99", ALICE)]


def test_unmapping_frees_the_mailbox_and_says_whether_there_was_a_mapping(
    mappings: DynamoMappingStore,
) -> None:
    mappings.put(Mapping(INTEGRATION, PERSON, "11", ALICE))
    assert mappings.remove(INTEGRATION, PERSON, "11") is True
    assert mappings.remove(INTEGRATION, PERSON, "11") is False
    assert mappings.mappings(INTEGRATION) == []
    mappings.put(Mapping(INTEGRATION, PERSON, "12", ALICE))  # the mailbox is free again


def test_a_remap_racing_a_concurrent_change_rereads_instead_of_leaking_the_mailbox(
    mappings: DynamoMappingStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given 11 on Alice's mailbox, and another writer re-mapping 11 to Carol's between our read and our write
    mappings.put(Mapping(INTEGRATION, PERSON, "11", ALICE))
    other_writer = DynamoMappingStore(mappings._models.mapping.Meta.table_name, region=REGION)
    read = mappings._mailbox_of
    calls: list[str | None] = []

    def read_then_race(integration_id: str, kind: ResourceKind, jrni_id: str) -> str | None:
        found = read(integration_id, kind, jrni_id)
        if not calls:
            other_writer.put(Mapping(INTEGRATION, PERSON, "11", CAROL))
        calls.append(found)
        return found

    monkeypatch.setattr(mappings, "_mailbox_of", read_then_race)
    # When we re-map 11 to Bob's mailbox
    mappings.put(Mapping(INTEGRATION, PERSON, "11", BOB))
    # Then our first attempt lost, was retried on fresh state, and both old mailboxes are free
    assert calls == [ALICE, CAROL]
    assert mappings.mappings(INTEGRATION) == [Mapping(INTEGRATION, PERSON, "11", BOB)]
    mappings.put(Mapping(INTEGRATION, PERSON, "12", ALICE))
    mappings.put(Mapping(INTEGRATION, PERSON, "13", CAROL))


# ---------------------------------------------------------------- statuses


def test_statuses_are_kept_for_mapped_and_unmapped_calendars_latest_first(
    mappings: DynamoMappingStore,
) -> None:
    # Given 11 mapped, 12 not
    mappings.put(Mapping(INTEGRATION, PERSON, "11", ALICE))
    t1, t2 = datetime(2025, 7, 7, 9, tzinfo=UTC), datetime(2025, 7, 7, 10, tzinfo=UTC)
    # When outcomes are recorded, 11 twice
    mappings.record_status(MappingStatus(INTEGRATION, PERSON, "11", SyncState.ERROR, "mailbox not found", t1))
    mappings.record_status(MappingStatus(INTEGRATION, PERSON, "11", SyncState.OK, "", t2))
    mappings.record_status(MappingStatus(INTEGRATION, PERSON, "12", SyncState.SKIPPED, "not mapped", t1))
    # Then each calendar shows its latest outcome, the unmapped one included, and none leak into mappings
    assert sorted(mappings.statuses(INTEGRATION), key=lambda s: s.jrni_id) == [
        MappingStatus(INTEGRATION, PERSON, "11", SyncState.OK, "", t2),
        MappingStatus(INTEGRATION, PERSON, "12", SyncState.SKIPPED, "not mapped", t1),
    ]
    assert mappings.mappings(INTEGRATION) == [Mapping(INTEGRATION, PERSON, "11", ALICE)]


def test_a_problem_stays_open_until_an_outcome_settles_its_subject(mappings: DynamoMappingStore) -> None:
    t1, t2, t3 = (datetime(2025, 7, 7, hour, tzinfo=UTC) for hour in (9, 10, 11))
    refused = MappingStatus(
        INTEGRATION, PERSON, "11", SyncState.ERROR, "JRNI refused", t1, "Outlook change to 1/2"
    )
    # Given a refusal, then a later sync of something else that went well
    mappings.record_status(refused)
    mappings.record_status(
        MappingStatus(INTEGRATION, PERSON, "11", SyncState.OK, "all good", t2, "Outlook changes")
    )
    # Then the last outcome is ok, and the refusal is still open
    assert [s.state for s in mappings.statuses(INTEGRATION)] == [SyncState.OK]
    assert mappings.problems(INTEGRATION) == [refused]
    # When an outcome settles it (as its own subject, or by naming it), it is gone
    mappings.record_status(
        MappingStatus(
            INTEGRATION,
            PERSON,
            "11",
            SyncState.OK,
            "removed",
            t3,
            "booking 1/2",
            settles=("Outlook change to 1/2",),
        )
    )
    assert mappings.problems(INTEGRATION) == []
    assert [s.detail for s in mappings.statuses(INTEGRATION)] == ["removed"]


def test_a_booking_s_outcomes_are_recorded_together_the_later_of_two_for_one_calendar_winning(
    mappings: DynamoMappingStore,
) -> None:
    t1, t2 = datetime(2025, 7, 7, 9, tzinfo=UTC), datetime(2025, 7, 7, 10, tzinfo=UTC)
    refused = MappingStatus(
        INTEGRATION, PERSON, "11", SyncState.ERROR, "JRNI refused", t1, "Outlook change to 1/2"
    )
    mappings.record_status(refused)
    # When one call records a booking's outcomes: the room's, 11's failure, then 11's success settling the refusal
    mappings.record_status(
        MappingStatus(INTEGRATION, RESOURCE, "21", SyncState.OK, "created", t2, "booking 1/2"),
        MappingStatus(INTEGRATION, PERSON, "11", SyncState.ERROR, "timed out", t2, "booking 1/2"),
        MappingStatus(
            INTEGRATION,
            PERSON,
            "11",
            SyncState.OK,
            "created",
            t2,
            "booking 1/2",
            settles=("booking 1/2", "Outlook change to 1/2"),
        ),
    )
    # Then each calendar shows the later of its outcomes, and nothing it settled is left open
    assert sorted((s.jrni_id, s.detail) for s in mappings.statuses(INTEGRATION)) == [
        ("11", "created"),
        ("21", "created"),
    ]
    assert mappings.problems(INTEGRATION) == []
    mappings.record_status()  # nothing to record: no write, no error


def test_the_mapping_of_a_mailbox_follows_re_mapping_and_unmapping(mappings: DynamoMappingStore) -> None:
    # Given a resource mapped to the room, and a person to Alice
    mappings.put(Mapping(INTEGRATION, RESOURCE, "21", ROOM))
    mappings.put(Mapping(INTEGRATION, PERSON, "11", ALICE))
    assert mappings.mapping_of(INTEGRATION, ROOM) == Mapping(INTEGRATION, RESOURCE, "21", ROOM)
    assert mappings.mapping_of(INTEGRATION, BOB) is None
    assert mappings.mapping_of("int-2", ROOM) is None  # another integration's mailbox is its own
    # When the person moves to Bob, and the resource is unmapped
    mappings.put(Mapping(INTEGRATION, PERSON, "11", BOB))
    mappings.remove(INTEGRATION, RESOURCE, "21")
    # Then each mailbox names what holds it now
    assert mappings.mapping_of(INTEGRATION, BOB) == Mapping(INTEGRATION, PERSON, "11", BOB)
    assert mappings.mapping_of(INTEGRATION, ALICE) is None
    assert mappings.mapping_of(INTEGRATION, ROOM) is None


def test_a_status_survives_unmapping(mappings: DynamoMappingStore) -> None:
    mappings.put(Mapping(INTEGRATION, RESOURCE, "21", ROOM))
    mappings.record_status(MappingStatus(INTEGRATION, RESOURCE, "21", SyncState.OK))
    mappings.remove(INTEGRATION, RESOURCE, "21")
    assert mappings.statuses(INTEGRATION) == [MappingStatus(INTEGRATION, RESOURCE, "21", SyncState.OK)]


# ---------------------------------------------------------------- links


def link(mailbox: str = ALICE, *, version_number: int = 0, **changes: object) -> Link:
    base = Link(
        INTEGRATION, BOOKING, mailbox, LinkState.PENDING, "fp-1", "ews", version_number=version_number
    )
    return dataclasses.replace(base, **changes)


def test_a_link_reads_back_exactly_with_its_version_counted(links: DynamoLinkStore) -> None:
    # When a pending link is saved, then completed
    pending = links.save(link())
    synced = links.save(
        dataclasses.replace(
            pending,
            state=LinkState.SYNCED,
            remote_id="AAMk=",
            version="CK1",
            provider="graph",
            templates="3f1c0a9e2b7d4c65",
            placement="9a0b1c2d3e4f5061",
        )
    )
    # Then each save bumps the version, and the last one reads back field for field
    assert (pending.version_number, synced.version_number) == (1, 2)
    assert links.links_for(INTEGRATION, BOOKING) == [synced]


def test_a_link_written_before_templates_were_recorded_reads_back_with_them_unknown(
    links: DynamoLinkStore, tables: dict[str, str]
) -> None:
    # Given a link stored by a version of calsync that recorded neither templates nor placement
    links.save(link(templates="3f1c0a9e2b7d4c65", placement="9a0b1c2d3e4f5061"))
    boto3.client("dynamodb", region_name=REGION).update_item(
        TableName=tables["LinksTable"],
        Key={"pk": {"S": f"{INTEGRATION}#{BOOKING}"}, "sk": {"S": ALICE}},
        UpdateExpression="REMOVE templates, placement",
    )
    # Then it reads back with both unknown (""), as the engine takes an old link
    [found] = links.links_for(INTEGRATION, BOOKING)
    assert (found.templates, found.placement) == ("", "")


def test_links_for_lists_every_mailbox_of_one_booking_only(links: DynamoLinkStore) -> None:
    links.save(link(ALICE))
    links.save(link(ROOM))
    links.save(dataclasses.replace(link(BOB), jrni_key=JrniKey("100", "502")))
    links.save(dataclasses.replace(link(BOB), integration_id="int-2"))
    assert {found.mailbox for found in links.links_for(INTEGRATION, BOOKING)} == {ALICE, ROOM}


def test_a_store_used_from_many_threads_builds_one_dynamodb_client(
    tables: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a links store made afresh, counting every DynamoDB client botocore builds (each costs a cold start
    # about 0.15 s of CPU when it parses the service description again)
    built: list[str] = []
    create_client = botocore.session.Session.create_client

    def counting(self: botocore.session.Session, service_name: str, *args: Any, **kwargs: Any) -> Any:
        built.append(service_name)
        return create_client(self, service_name, *args, **kwargs)

    monkeypatch.setattr(botocore.session.Session, "create_client", counting)
    link_model.cache_clear()
    store = DynamoLinkStore(tables["LinksTable"], region=REGION)

    # When eight threads first use it at the same moment (reads only: moto in the test's process is not safe for
    # writes from several threads), and links are then written in transactions
    def first_use(number: int) -> None:
        assert store.links_for(INTEGRATION, JrniKey("100", str(600 + number))) == []

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(first_use, range(8)))
    for number in range(3):
        key = JrniKey("100", str(600 + number))
        store.save_all([dataclasses.replace(link(mailbox), jrni_key=key) for mailbox in (ALICE, ROOM)])
        assert len(store.links_for(INTEGRATION, key)) == 2

    # Then one client was built for the table, and every read and transaction used it
    assert built == ["dynamodb"]


def test_concurrent_updates_of_a_link_let_exactly_one_win(links: DynamoLinkStore) -> None:
    # Given a link that two workers read at the same version
    stored = links.save(link())
    first, second = (
        dataclasses.replace(stored, fingerprint="fp-first"),
        dataclasses.replace(stored, fingerprint="fp-2nd"),
    )
    # When both write
    links.save(first)
    # Then the second loses, and the first one's content stays
    with pytest.raises(StaleStateError):
        links.save(second)
    assert [found.fingerprint for found in links.links_for(INTEGRATION, BOOKING)] == ["fp-first"]


def test_two_workers_creating_the_same_link_let_exactly_one_win(links: DynamoLinkStore) -> None:
    links.save(link(fingerprint="fp-a"))
    with pytest.raises(StaleStateError):
        links.save(link(fingerprint="fp-b"))
    assert [found.fingerprint for found in links.links_for(INTEGRATION, BOOKING)] == ["fp-a"]


def test_deleting_a_link_changed_since_it_was_read_is_refused(links: DynamoLinkStore) -> None:
    stale = links.save(link())
    links.save(stale)  # someone else updated it
    with pytest.raises(StaleStateError):
        links.delete(stale)
    assert len(links.links_for(INTEGRATION, BOOKING)) == 1


def test_deleting_a_link_removes_it_and_deleting_again_is_harmless(links: DynamoLinkStore) -> None:
    stored = links.save(link())
    links.delete(stored)
    assert links.links_for(INTEGRATION, BOOKING) == []
    links.delete(stored)  # already gone: counts as removed (a retried delete)


def test_a_missing_table_is_a_permanent_error(tables: dict[str, str]) -> None:
    # A misconfigured table name fails the same way on every retry: it must not be retried forever.
    with pytest.raises(PermanentError):
        DynamoLinkStore("no-such-table", region=REGION).links_for(INTEGRATION, BOOKING)


def test_links_in_lists_every_booking_in_one_mailbox_only(links: DynamoLinkStore) -> None:
    # Given links of two bookings in Alice's mailbox, one in the room, and one of another integration in Alice's
    first = links.save(link(ALICE))
    second = links.save(dataclasses.replace(link(ALICE), jrni_key=JrniKey("100", "502"), remote_id="AAMk2="))
    links.save(link(ROOM))
    links.save(dataclasses.replace(link(ALICE), integration_id="int-2"))
    # Then Alice's mailbox shows exactly her two, field for field
    assert sorted(links.links_in(INTEGRATION, ALICE), key=lambda found: str(found.jrni_key)) == [
        first,
        second,
    ]
    # And a deleted link leaves it; a mailbox with none has none
    links.delete(second)
    assert links.links_in(INTEGRATION, ALICE) == [first]
    assert links.links_in(INTEGRATION, BOB) == []


def test_links_in_a_mailbox_follow_their_updates(links: DynamoLinkStore) -> None:
    stored = links.save(link(ALICE))
    updated = links.save(
        dataclasses.replace(stored, state=LinkState.SYNCED, remote_id="AAMk=", version="CK2")
    )
    assert links.links_in(INTEGRATION, ALICE) == [updated]
    # what tells our own writes coming back
    assert links.versions_of(INTEGRATION, ALICE, ["AAMk=", "AAMother="]) == {"AAMk=": "CK2"}


def test_versions_of_items_leave_out_pending_links_other_mailboxes_and_other_integrations(
    links: DynamoLinkStore,
) -> None:
    links.save(dataclasses.replace(link(ALICE), remote_id=None, version=None))  # pending: nothing written yet
    room = links.save(
        dataclasses.replace(link(ROOM), state=LinkState.SYNCED, remote_id="AAMr=", version="CKr")
    )
    links.save(
        dataclasses.replace(
            link(ALICE), integration_id="int-2", state=LinkState.SYNCED, remote_id="AAMa=", version="CKa"
        )
    )
    assert links.versions_of(INTEGRATION, ALICE, ["AAMr=", "AAMa="]) == {}
    assert links.versions_of(INTEGRATION, ROOM, ["AAMr="]) == {"AAMr=": "CKr"}
    assert links.versions_of(INTEGRATION, ROOM, []) == {}
    # A link that moved on to a new version, or was deleted, says so
    moved = links.save(dataclasses.replace(room, version="CKr2"))
    assert links.versions_of(INTEGRATION, ROOM, ["AAMr="]) == {"AAMr=": "CKr2"}
    links.delete(moved)
    assert links.versions_of(INTEGRATION, ROOM, ["AAMr="]) == {}


# ---------------------------------------------------------------- block links

BLOCK_KEY = JrniKey("100", "9001")
# A window in a non-UTC zone: it must come back as the same instants.
LONDON_SUMMER = timezone(timedelta(hours=1))
WINDOW = TimeWindow(
    datetime(2025, 7, 8, 14, tzinfo=LONDON_SUMMER), datetime(2025, 7, 8, 15, 30, tzinfo=LONDON_SUMMER)
)


def pending_block(mailbox: str = ALICE, remote_id: str = "AAMkItem1=", **changes: object) -> BlockLink:
    base = BlockLink(
        INTEGRATION,
        mailbox,
        remote_id,
        jrni_key=None,
        slot_id="",
        window=WINDOW,
        title="Team meeting",
        version="CK1",
        state=LinkState.PENDING,
    )
    return dataclasses.replace(base, **changes)


def created(link: BlockLink, key: JrniKey = BLOCK_KEY, slot: str = "slot-77") -> BlockLink:
    return dataclasses.replace(link, jrni_key=key, slot_id=slot, state=LinkState.SYNCED)


def test_a_block_link_reads_back_exactly_pending_then_created(block_links: DynamoBlockLinkStore) -> None:
    # When a pending block link is saved (before JRNI is asked), then completed with the block JRNI made
    pending = block_links.save(pending_block(series_id="AAMkSeries="))
    assert block_links.blocks(INTEGRATION, ALICE) == [pending]
    synced = block_links.save(created(pending))
    # Then each save counts a version, and the last one reads back field for field (the window as the same instants)
    assert (pending.version_number, synced.version_number) == (1, 2)
    assert pending.jrni_key is None and pending.slot_id == ""
    assert block_links.blocks(INTEGRATION, ALICE) == [synced]


def test_blocks_lists_one_mailbox_of_one_integration(block_links: DynamoBlockLinkStore) -> None:
    mine = [block_links.save(pending_block(remote_id=rid)) for rid in ("AAMk1=", "AAMk2=")]
    block_links.save(pending_block(ROOM))
    block_links.save(pending_block(integration_id="int-2"))
    assert sorted(block_links.blocks(INTEGRATION, ALICE), key=lambda b: b.remote_id) == mine
    assert block_links.blocks(INTEGRATION, BOB) == []


def test_a_block_is_found_by_its_jrni_key_once_it_exists(block_links: DynamoBlockLinkStore) -> None:
    # Given a block link still pending: JRNI has no block for it yet, so no key can name it
    pending = block_links.save(pending_block())
    assert block_links.by_jrni_key(INTEGRATION, BLOCK_KEY) is None
    # When the block is made
    synced = block_links.save(created(pending))
    # Then outbound can recognise it by its JRNI key, in this integration only
    assert block_links.by_jrni_key(INTEGRATION, BLOCK_KEY) == synced
    assert block_links.by_jrni_key("int-2", BLOCK_KEY) is None
    assert block_links.by_jrni_key(INTEGRATION, JrniKey("100", "9002")) is None
    # And once removed, it is no longer ours
    block_links.delete(synced)
    assert block_links.by_jrni_key(INTEGRATION, BLOCK_KEY) is None


def test_concurrent_updates_of_a_block_link_let_exactly_one_win(block_links: DynamoBlockLinkStore) -> None:
    stored = block_links.save(created(pending_block()))
    block_links.save(dataclasses.replace(stored, title="Moved by the first"))
    with pytest.raises(StaleStateError):
        block_links.save(dataclasses.replace(stored, title="Moved by the second"))
    assert [found.title for found in block_links.blocks(INTEGRATION, ALICE)] == ["Moved by the first"]


def test_two_workers_creating_the_same_block_link_let_exactly_one_win(
    block_links: DynamoBlockLinkStore,
) -> None:
    # Two deliveries of the same change racing: only one may go on to make a JRNI block
    block_links.save(pending_block(title="first"))
    with pytest.raises(StaleStateError):
        block_links.save(pending_block(title="second"))
    assert [found.title for found in block_links.blocks(INTEGRATION, ALICE)] == ["first"]


def test_deleting_a_block_link_changed_since_it_was_read_is_refused(
    block_links: DynamoBlockLinkStore,
) -> None:
    stale = block_links.save(pending_block())
    block_links.save(created(stale))  # someone else completed it meanwhile
    with pytest.raises(StaleStateError):
        block_links.delete(stale)
    assert len(block_links.blocks(INTEGRATION, ALICE)) == 1


def test_deleting_a_block_link_removes_it_and_deleting_again_is_harmless(
    block_links: DynamoBlockLinkStore,
) -> None:
    stored = block_links.save(created(pending_block()))
    block_links.delete(stored)
    assert block_links.blocks(INTEGRATION, ALICE) == []
    block_links.delete(stored)  # a retried delete


# ---------------------------------------------------------------- cursors


def test_a_mailbox_never_synced_has_no_cursor(cursors: DynamoCursorStore) -> None:
    assert cursors.get(INTEGRATION, ALICE) is None


def test_cursors_are_kept_per_mailbox_and_integration_and_the_latest_wins(cursors: DynamoCursorStore) -> None:
    cursors.put(INTEGRATION, ALICE, "H4sIAAAA-alice-1")
    cursors.put(INTEGRATION, ALICE, "H4sIAAAA-alice-2")
    cursors.put(INTEGRATION, BOB, "H4sIAAAA-bob")
    cursors.put("int-2", ALICE, "H4sIAAAA-other")
    assert [cursors.get(INTEGRATION, ALICE), cursors.get(INTEGRATION, BOB), cursors.get("int-2", ALICE)] == [
        "H4sIAAAA-alice-2",
        "H4sIAAAA-bob",
        "H4sIAAAA-other",
    ]


def test_a_large_sync_state_reads_back_whole(cursors: DynamoCursorStore) -> None:
    # EWS sync states grow with the folder; tens of kilobytes must survive intact
    big = "H4sI" + "A1b2C3d4" * 8000
    cursors.put(INTEGRATION, ROOM, big)
    assert cursors.get(INTEGRATION, ROOM) == big


def test_clearing_a_cursor_makes_the_next_sync_start_over(cursors: DynamoCursorStore) -> None:
    cursors.put(INTEGRATION, ALICE, "H4sIAAAA-alice")
    cursors.clear(INTEGRATION, ALICE)
    assert cursors.get(INTEGRATION, ALICE) is None
    cursors.clear(INTEGRATION, ALICE)  # nothing to clear: harmless


# ---------------------------------------------------------------- streaming state

T1, T2 = datetime(2025, 7, 7, 9, tzinfo=UTC), datetime(2025, 7, 7, 9, 1, tzinfo=UTC)


def test_each_task_shows_its_latest_heartbeat(streaming: DynamoStreamingStateStore) -> None:
    streaming.heartbeat("task-a", T1, 200)
    streaming.heartbeat("task-b", T1, 50)
    streaming.heartbeat("task-a", T2, 198)
    assert sorted(streaming.heartbeats(), key=lambda h: h.task_id) == [
        TaskHeartbeat("task-a", T2, 198),
        TaskHeartbeat("task-b", T1, 50),
    ]


def test_a_heartbeat_expires_a_day_later_so_dead_tasks_disappear(
    streaming: DynamoStreamingStateStore, tables: dict[str, str]
) -> None:
    streaming.heartbeat("task-a", T1, 3)
    (item,) = raw_items(tables["StreamingStateTable"])
    expiry = item["expires_at"]
    assert isinstance(expiry, dict)
    # DynamoDB's TTL reads epoch seconds
    assert int(expiry["N"]) == int((T1 + timedelta(days=1)).timestamp())


def test_mailbox_states_show_how_each_mailbox_is_watched_latest_first(
    streaming: DynamoStreamingStateStore,
) -> None:
    # When the task records a subscription, a mailbox over capacity, and later moves Bob onto a connection
    streaming.record_mailbox(INTEGRATION, ALICE, "streaming", "connection 1 of 2", T1)
    streaming.record_mailbox(
        INTEGRATION, BOB, "timed", "no streaming connection left: synced every 5 minutes", T1
    )
    streaming.record_mailbox(INTEGRATION, ROOM, "error", "access to the mailbox not granted", T1)
    streaming.record_mailbox(INTEGRATION, BOB, "streaming", "connection 2 of 2", T2)
    streaming.record_mailbox("int-2", ALICE, "timed", "", T1)
    # Then each mailbox of the integration shows its latest state, and no other integration's
    assert sorted(streaming.mailbox_states(INTEGRATION), key=lambda m: m.mailbox) == [
        MailboxStreamState(INTEGRATION, ALICE, "streaming", "connection 1 of 2", T1),
        MailboxStreamState(INTEGRATION, BOB, "streaming", "connection 2 of 2", T2),
        MailboxStreamState(INTEGRATION, ROOM, "error", "access to the mailbox not granted", T1),
    ]
    assert streaming.mailbox_states("int-3") == []


def test_heartbeats_and_mailbox_states_do_not_mix(streaming: DynamoStreamingStateStore) -> None:
    streaming.heartbeat("task-a", T1, 1)
    streaming.record_mailbox("heartbeat", ALICE, "streaming", "", T1)  # an integration unluckily named so
    assert streaming.heartbeats() == [TaskHeartbeat("task-a", T1, 1)]
    assert [m.mailbox for m in streaming.mailbox_states("heartbeat")] == [ALICE]


def test_an_unmapped_mailbox_is_forgotten(streaming: DynamoStreamingStateStore) -> None:
    streaming.record_mailbox(INTEGRATION, ALICE, "streaming", "", T1)
    streaming.forget_mailbox(INTEGRATION, ALICE)
    streaming.forget_mailbox(INTEGRATION, ALICE)  # already forgotten: harmless
    assert streaming.mailbox_states(INTEGRATION) == []


def test_an_unknown_mode_is_refused_and_nothing_is_recorded(streaming: DynamoStreamingStateStore) -> None:
    with pytest.raises(ValueError, match="paused"):
        streaming.record_mailbox(INTEGRATION, ALICE, "paused", "", T1)
    assert streaming.mailbox_states(INTEGRATION) == []


LEASE = timedelta(minutes=2)


def test_several_tasks_each_take_a_different_share_and_none_is_left_for_a_third(
    streaming: DynamoStreamingStateStore,
) -> None:
    # Two identical tasks of one service, and one too many
    assert streaming.claim_shard("task-a", 2, T1, LEASE) == 0
    assert streaming.claim_shard("task-b", 2, T1, LEASE) == 1
    assert streaming.claim_shard("task-c", 2, T1, LEASE) is None
    # A task asking again (a restart of its loop) keeps its own share
    assert streaming.claim_shard("task-b", 2, T2, LEASE) == 1


def test_a_share_whose_task_died_is_taken_over_once_its_lease_runs_out(
    streaming: DynamoStreamingStateStore,
) -> None:
    streaming.claim_shard("task-a", 1, T1, LEASE)
    # While the lease runs, the share stays with task-a and it can renew
    assert streaming.claim_shard("task-b", 1, T1 + LEASE / 2, LEASE) is None
    assert streaming.renew_shard("task-a", 1, 0, T1 + LEASE / 2, LEASE) is True
    # When task-a stops renewing, task-b takes the share, and task-a learns it has lost it
    later = T1 + LEASE / 2 + LEASE + timedelta(seconds=1)
    assert streaming.claim_shard("task-b", 1, later, LEASE) == 0
    assert streaming.renew_shard("task-a", 1, 0, later, LEASE) is False


def test_a_released_share_is_free_at_once_and_only_its_holder_can_release_it(
    streaming: DynamoStreamingStateStore,
) -> None:
    streaming.claim_shard("task-a", 1, T1, LEASE)
    streaming.release_shard("task-b", 1, 0)  # not task-b's: nothing happens
    assert streaming.claim_shard("task-b", 1, T1, LEASE) is None
    streaming.release_shard("task-a", 1, 0)  # a clean stop (SIGTERM)
    assert streaming.claim_shard("task-b", 1, T1, LEASE) == 0
