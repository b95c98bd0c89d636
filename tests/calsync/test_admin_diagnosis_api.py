"""The admin API's connection test and automap routes on fakes: their answers, their refusals, their OpenAPI."""

from __future__ import annotations

import json
from typing import Any

from calsync.domain import ResourceKind
from calsync.domain.diagnosis import EXCHANGE_AUTHENTICATION, CheckState
from calsync.ports import JrniCalendar
from calsync.transport.admin import build_admin_api
from calsync.usecases.admin import AdminDeps
from tests.apigw import LambdaContext, rest_event
from tests.calsync.builders import ALICE, INTEGRATION
from tests.calsync.test_diagnose import Script, deps, mapping

TEST = "/admin/integrations/{integration_id}/test"
AUTOMAP = "/admin/integrations/{integration_id}/mappings/automap"


def post(services: AdminDeps, resource: str, body: Any, integration_id: str = INTEGRATION) -> tuple[int, Any]:
    event = rest_event(
        "POST",
        resource.replace("{integration_id}", integration_id),
        body,
        resource=resource,
        path_parameters={"integration_id": integration_id},
    )
    answer = build_admin_api(lambda: services).resolve(event, LambdaContext())
    return answer["statusCode"], json.loads(answer["body"])


def test_the_connection_test_answers_the_checklist() -> None:
    services, exchange = deps(
        mapping("11", ALICE), exchange=Script({EXCHANGE_AUTHENTICATION: CheckState.FAILED})
    )

    status, answer = post(services, TEST, {"mailbox": None, "write": False})

    assert status == 200 and answer["ok"] is False
    refused = next(c for c in answer["checks"] if c["state"] == "failed")
    assert refused == {
        "name": EXCHANGE_AUTHENTICATION,
        "state": "failed",
        "detail": f"{EXCHANGE_AUTHENTICATION} is failed",
        "fix": "the fix",
    }
    assert answer["checks"][-1] == {
        "name": f"mailbox {ALICE}",
        "state": "skipped",
        "detail": "not checked: Exchange authentication failed",
        "fix": None,
    }
    assert exchange.opened == []


def test_the_connection_test_refuses_what_it_cannot_use() -> None:
    services, exchange = deps()
    status, answer = post(services, TEST, {"mailbox": "alice"})
    assert status == 400 and "'alice' is not a mailbox address" in answer["message"]
    status, answer = post(services, TEST, {"write": True, "verbose": True})
    assert status == 422
    status, answer = post(services, TEST, {}, integration_id="nope")
    assert status == 404 and answer["message"] == "no integration 'nope'"
    assert exchange.opened == []


def test_automap_answers_what_it_mapped_and_what_not() -> None:
    calendars = [
        JrniCalendar(ResourceKind.PERSON, "2", "37001", "Ben Brown", email="ben@example.com"),
        JrniCalendar(ResourceKind.RESOURCE, "21", "37001", "Room 1"),
    ]
    services, _ = deps(calendars=calendars)

    status, answer = post(services, AUTOMAP, {})

    assert status == 200
    assert answer == {
        "mapped": [{"kind": "person", "jrni_id": "2", "name": "Ben Brown", "mailbox": "ben@example.com"}],
        "not_mapped": [
            {
                "kind": "resource",
                "jrni_id": "21",
                "name": "Room 1",
                "reason": "JRNI has no e-mail for it (neither ews_email nor email)",
            }
        ],
    }


def test_automap_refusals() -> None:
    services, _ = deps()
    assert post(services, AUTOMAP, {"dry_run": True})[0] == 422
    assert post(services, AUTOMAP, [])[0] == 422
    status, answer = post(services, AUTOMAP, {}, integration_id="nope")
    assert status == 404 and answer["message"] == "no integration 'nope'"


def test_both_routes_are_in_the_openapi_document_with_their_answers() -> None:
    services, _ = deps()
    document = json.loads(build_admin_api(lambda: services).get_openapi_json_schema())

    for path, model in ((TEST, "ConnectionTestOut"), (AUTOMAP, "AutomapOut")):
        answers = document["paths"][path]["post"]["responses"]
        assert answers["200"]["content"]["application/json"]["schema"]["$ref"].endswith(model)
        assert answers["404"]["content"]["application/json"]["schema"]["$ref"].endswith("ErrorOut")
        assert "422" in answers
    check = document["components"]["schemas"]["CheckOut"]["properties"]["state"]
    assert check["enum"] == ["ok", "failed", "warning", "skipped"]
