"""The admin API's dead letters (listed and replayed per integration) and its paged mappings, on in-memory fakes."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from calsync.domain import ResourceKind
from calsync.domain.dead_letters import REDRIVEN, DeadLetter, DeadLetterQueue
from calsync.domain.messages import ReconcileMessage, ReconcileStep
from calsync.ports import JrniCalendar
from calsync.transport.admin import build_admin_api
from calsync.usecases.admin import AdminDeps
from calsync.usecases.reconcile import ReconcileDeps, reconcile
from tests.apigw import LambdaContext, rest_event
from tests.calsync.builders import INTEGRATION, integration
from tests.calsync.fakes import (
    FakeBookingSource,
    FakeDeadLetterQueues,
    FakeDeadLetterStore,
    FakeDirectory,
    FakeIntegrations,
    FakeQueue,
    FakeReconcileQueue,
    FakeRuns,
    fake_admin_deps,
)
from tests.calsync.world import World

OTHER = "other-bank"
NOW = datetime(2025, 7, 1, 9, tzinfo=UTC)


class CountingSource(FakeBookingSource):
    """JRNI, counting how often its directory is read."""

    def __init__(self, calendars: list[JrniCalendar]) -> None:
        super().__init__(calendars=calendars)
        self.directory_reads = 0

    def calendars(self) -> list[JrniCalendar]:
        self.directory_reads += 1
        return super().calendars()


def staff(count: int) -> list[JrniCalendar]:
    people = [JrniCalendar(ResourceKind.PERSON, str(n), "100", f"Adviser {n}") for n in range(1, count + 1)]
    return [JrniCalendar(ResourceKind.RESOURCE, "500", "100", "Room 1"), *reversed(people)]


@pytest.fixture
def source() -> CountingSource:
    return CountingSource(staff(5))


@pytest.fixture
def services(source: CountingSource) -> AdminDeps:
    return fake_admin_deps(
        integration(),
        integrations=FakeIntegrations(integration(), replace(integration(), id=OTHER)),
        bookings_for=lambda _: source,
        clock=lambda: NOW,
        directory=FakeDirectory(),
        dead_letters=FakeDeadLetterStore(),
        dead_letter_queues=FakeDeadLetterQueues(),
    )


def call(services: AdminDeps, event: dict[str, Any]) -> tuple[int, Any]:
    answer = build_admin_api(lambda: services).resolve(event, LambdaContext())
    body = answer.get("body")
    return answer["statusCode"], json.loads(body) if body else None


def get(services: AdminDeps, path: str, query: dict[str, str] | None = None) -> tuple[int, Any]:
    event = rest_event("GET", path)
    event["queryStringParameters"] = query
    event["multiValueQueryStringParameters"] = {k: [v] for k, v in (query or {}).items()} or None
    return call(services, event)


def post(services: AdminDeps, path: str, body: Any) -> tuple[int, Any]:
    return call(services, rest_event("POST", path, body))


# ---------------------------------------------------------------- dead letters


def letter(
    integration_id: str = INTEGRATION,
    booking: str = "501",
    *,
    minutes: int = 0,
    queue: DeadLetterQueue = DeadLetterQueue.OUTBOUND,
    about: dict[str, str] | None = None,
) -> DeadLetter:
    return DeadLetter(
        integration_id,
        str(uuid.uuid4()),
        queue,
        about or {"booking": f"100/{booking}"},
        "svc@bank.example.test may not impersonate ben@bank.example.test: grant it the ApplicationImpersonation role",
        NOW + timedelta(minutes=minutes),
        1,
    )


def dead_lettered(services: AdminDeps, *letters: DeadLetter, recorded: bool = True) -> None:
    """As the functions leave them: in the shared queues, and (unless redriven) recorded."""
    assert isinstance(services.dead_letter_queues, FakeDeadLetterQueues)
    assert isinstance(services.dead_letters, FakeDeadLetterStore)
    for one in letters:
        services.dead_letter_queues.held_letters.append(one)
        if recorded:
            services.dead_letters.record(one)


DEAD_LETTERS = f"/admin/integrations/{INTEGRATION}/dead-letters"
REPLAY = f"{DEAD_LETTERS}/replay"


def test_the_dead_letters_of_an_integration_are_listed_newest_first_with_what_why_when_and_attempts(
    services: AdminDeps,
) -> None:
    older, newer = letter(booking="501"), letter(booking="502", minutes=5)
    mailbox = letter(queue=DeadLetterQueue.INBOUND, about={"mailbox": "ben@bank.example.test"}, minutes=2)
    dead_lettered(services, older, newer, mailbox, letter(OTHER, "777"))

    status, answer = get(services, DEAD_LETTERS)

    assert status == 200
    assert [d["id"] for d in answer["dead_letters"]] == [newer.id, mailbox.id, older.id]
    assert answer["dead_letters"][0] == {
        "id": newer.id,
        "queue": "outbound",
        "about": {"booking": "100/502"},
        "reason": newer.reason,
        "at": newer.at.isoformat() if newer.at else None,
        "attempts": 1,
    }
    assert answer["dead_letters"][1]["about"] == {"mailbox": "ben@bank.example.test"}
    # Another integration's dead letter is not listed here.
    assert "100/777" not in json.dumps(answer)


def test_a_message_only_the_queue_holds_is_listed_and_recorded_from_then_on(services: AdminDeps) -> None:
    redriven = replace(
        letter(booking="601"), reason=f"{REDRIVEN}: the outbound function failed on it 8 times"
    )
    dead_lettered(services, redriven, recorded=False)

    status, answer = get(services, DEAD_LETTERS)

    assert status == 200 and [d["id"] for d in answer["dead_letters"]] == [redriven.id]
    assert answer["dead_letters"][0]["reason"].startswith(REDRIVEN)
    assert services.dead_letters is not None
    assert [d.id for d in services.dead_letters.letters(INTEGRATION)] == [redriven.id]


def test_replay_sends_every_dead_letter_of_the_integration_back_and_forgets_their_records(
    services: AdminDeps,
) -> None:
    ours, theirs = [letter(booking="501"), letter(booking="502")], letter(OTHER, "777")
    dead_lettered(services, *ours, theirs)

    status, answer = post(services, REPLAY, {})

    assert status == 202
    assert answer["replayed"] == 2 and sorted(answer["ids"]) == sorted(d.id for d in ours)
    assert answer["not_replayed"] == []
    assert get(services, DEAD_LETTERS)[1] == {"dead_letters": []}
    # The other integration's message is still in its queue, and still listed for it.
    assert services.dead_letter_queues is not None
    assert services.dead_letter_queues.held(OTHER) == [theirs]
    status, listed = get(services, f"/admin/integrations/{OTHER}/dead-letters")
    assert [d["id"] for d in listed["dead_letters"]] == [theirs.id]


def test_replay_of_the_ids_given_sends_those_only(services: AdminDeps) -> None:
    first, second = letter(booking="501"), letter(booking="502")
    dead_lettered(services, first, second)

    status, answer = post(services, REPLAY, {"ids": [second.id.upper()]})  # ids compare without case

    assert status == 202 and answer["ids"] == [second.id]
    assert [d["id"] for d in get(services, DEAD_LETTERS)[1]["dead_letters"]] == [first.id]


def test_a_dead_letter_listed_but_no_longer_in_its_queue_is_reported_not_replayed(
    services: AdminDeps,
) -> None:
    gone = letter(booking="501")
    assert services.dead_letters is not None
    services.dead_letters.record(gone)  # its message is no longer in the queue (read elsewhere, or expired)

    status, answer = post(services, REPLAY, {"ids": [gone.id]})

    assert status == 202 and answer["replayed"] == 0
    assert [n["id"] for n in answer["not_replayed"]] == [gone.id]
    assert "list the dead letters again" in answer["not_replayed"][0]["reason"]


def test_a_replay_stopped_by_an_unreachable_queue_says_so_and_keeps_the_letters(services: AdminDeps) -> None:
    waiting = letter(booking="501")
    dead_lettered(services, waiting)
    assert isinstance(services.dead_letter_queues, FakeDeadLetterQueues)
    services.dead_letter_queues.unreachable = "the outbound queue refused send_message"

    status, answer = post(services, REPLAY, {})

    assert status == 202 and answer["replayed"] == 0
    (refused,) = answer["not_replayed"]
    assert refused["id"] == waiting.id and "refused send_message" in refused["reason"]
    assert "replay it again" in refused["reason"]
    assert [d["id"] for d in get(services, DEAD_LETTERS)[1]["dead_letters"]] == [waiting.id]


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"ids": ["not-an-id"]}, 400, "is not a dead letter's id"),
        ({"ids": []}, 400, "ids is empty"),
        ({"ids": [str(uuid.uuid4()) for _ in range(101)]}, 400, "at most 100"),
        ({"ids": "all"}, 422, ""),
        ({"everything": True}, 422, ""),
    ],
)
def test_replay_refuses_a_bad_body_and_replays_nothing(
    services: AdminDeps, body: Any, status: int, says: str
) -> None:
    dead_lettered(services, letter())
    answer_status, answer = post(services, REPLAY, body)
    assert answer_status == status, answer
    assert says in answer.get("message", "") or says == ""
    assert services.dead_letter_queues is not None
    assert len(services.dead_letter_queues.held(INTEGRATION)) == 1


def test_replay_of_an_unknown_id_or_another_integrations_is_404_and_nothing_is_replayed(
    services: AdminDeps,
) -> None:
    ours, theirs = letter(booking="501"), letter(OTHER, "777")
    dead_lettered(services, ours, theirs)

    for ids in ([str(uuid.uuid4())], [ours.id, theirs.id]):
        status, answer = post(services, REPLAY, {"ids": ids})
        assert status == 404, answer
        assert "has no dead letter" in answer["message"] and "GET /admin/integrations/" in answer["message"]
    assert services.dead_letter_queues is not None
    assert services.dead_letter_queues.replayed == []


def test_dead_letters_of_an_unknown_integration_are_404(services: AdminDeps) -> None:
    assert get(services, "/admin/integrations/nobody/dead-letters")[0] == 404
    status, answer = post(services, "/admin/integrations/nobody/dead-letters/replay", {})
    assert status == 404 and "nobody" in answer["message"]


# ---------------------------------------------------------------- paged mappings


MAPPINGS = f"/admin/integrations/{INTEGRATION}/mappings"


def test_mappings_are_paged_in_kind_then_id_order_from_the_directory_read_once_from_jrni(
    services: AdminDeps, source: CountingSource
) -> None:
    pages, cursor = [], None
    while True:
        status, page = get(services, MAPPINGS, {"limit": "2", **({"cursor": cursor} if cursor else {})})
        assert status == 200, page
        pages.append([(row["kind"], row["jrni_id"]) for row in page["mappings"]])
        cursor = page["next_cursor"]
        assert page["directory_refreshed_at"] == NOW.isoformat()
        if cursor is None:
            break
    assert pages == [
        [("person", "1"), ("person", "2")],
        [("person", "3"), ("person", "4")],
        [("person", "5"), ("resource", "500")],
    ]
    assert source.directory_reads == 1  # the first page stored the directory; the others read the copy


def test_the_default_page_holds_100_rows(services: AdminDeps, source: CountingSource) -> None:
    source.listed = staff(150)
    status, page = get(services, MAPPINGS)
    assert status == 200 and len(page["mappings"]) == 100 and page["next_cursor"]
    status, rest = get(services, MAPPINGS, {"cursor": page["next_cursor"], "limit": "500"})
    assert len(rest["mappings"]) == 51 and rest["next_cursor"] is None


def test_a_page_shows_each_rows_mailbox_and_status_as_before(services: AdminDeps) -> None:
    status, _ = call(
        services,
        rest_event(
            "PUT",
            f"{MAPPINGS}/person/2",
            {"mailbox": "ben@bank.example.test"},
            resource="/admin/integrations/{integration_id}/mappings/{kind}/{jrni_id}",
            path_parameters={"integration_id": INTEGRATION, "kind": "person", "jrni_id": "2"},
        ),
    )
    assert status == 200
    status, page = get(services, MAPPINGS, {"limit": "2"})
    ben = page["mappings"][1]
    assert ben["jrni_id"] == "2" and ben["mailbox"] == "ben@bank.example.test" and ben["name"] == "Adviser 2"
    assert page["mappings"][0]["mailbox"] is None


@pytest.mark.parametrize(
    "query",
    [
        {"limit": "0"},
        {"limit": "501"},
        {"limit": "ten"},
        {"limit": "-1"},
        {"cursor": "bm9wZQ"},
        {"cursor": "%%"},
    ],
)
def test_a_bad_limit_or_cursor_is_400_saying_what_is_accepted(
    services: AdminDeps, query: dict[str, str]
) -> None:
    status, answer = get(services, MAPPINGS, query)
    assert status == 400, answer
    assert ("1 to 500" in answer["message"]) or ("next_cursor" in answer["message"])


def test_mappings_of_an_unknown_integration_are_404(services: AdminDeps) -> None:
    assert get(services, "/admin/integrations/nobody/mappings")[0] == 404


def test_a_reconcile_run_refreshes_the_directory_the_mappings_are_paged_from() -> None:
    world = World()
    directory = FakeDirectory()
    deps = ReconcileDeps(
        mailbox=world.services,
        runs=FakeRuns(),
        queue=FakeReconcileQueue(),
        outbound_queue=FakeQueue(),
        directory=directory,
    )
    world.source.listed.append(JrniCalendar(ResourceKind.PERSON, "13", "100", "New adviser"))

    reconcile(deps, ReconcileMessage(ReconcileStep.RUN, False, INTEGRATION, "run-1"))

    page, more = directory.page(INTEGRATION, after=None, limit=10)
    assert [c.jrni_id for c in page] == ["11", "13", "21"] and not more
    assert directory.refreshed_at(INTEGRATION) is not None


def test_the_openapi_document_describes_the_answers_and_refusals_of_the_new_routes(
    services: AdminDeps,
) -> None:
    document = json.loads(build_admin_api(lambda: services).get_openapi_json_schema())
    paths = document["paths"]
    listed = paths["/admin/integrations/{integration_id}/dead-letters"]["get"]["responses"]
    replayed = paths["/admin/integrations/{integration_id}/dead-letters/replay"]["post"]["responses"]
    mappings = paths["/admin/integrations/{integration_id}/mappings"]["get"]
    assert {"200", "404"} <= set(listed) and {"202", "400", "404", "422"} <= set(replayed)
    assert {"200", "400", "404"} <= set(mappings["responses"])
    assert {p["name"] for p in mappings["parameters"]} >= {"limit", "cursor"}
    schemas = document["components"]["schemas"]
    assert {"DeadLettersOut", "ReplayOut", "MappingsPage", "ErrorOut"} <= set(schemas)
    assert set(schemas["DeadLetterOut"]["properties"]) == {"id", "queue", "about", "reason", "at", "attempts"}
