"""The admin function as API Gateway invokes it, on moto (the stack's own tables and secrets): the attacks an operator
with admin access to one integration could try are refused with a 4xx and the reason, and nothing is stored."""

from __future__ import annotations

import json
from typing import Any

import pytest

from calsync.adapters.dynamo import DynamoIntegrationStore, DynamoMappingStore
from tests.apigw import LambdaContext, rest_event
from tests.aws import REGION
from tests.functions.conftest import PREFIX, Aws, load_function


@pytest.fixture
def handler(aws: Aws) -> Any:
    return load_function("admin").lambda_handler


def call(handler: Any, event: dict[str, Any]) -> tuple[int, Any]:
    answer = handler(event, LambdaContext())
    return answer["statusCode"], json.loads(answer["body"]) if answer.get("body") else None


def create(handler: Any, integration_id: str, **changes: Any) -> tuple[int, Any]:
    body = {
        "id": integration_id,
        "name": integration_id,
        "jrni": {"base_url": "https://bank.jrni.example", "company_id": "37000"},
        "exchange": {"endpoint": "https://mail.bank.example/EWS/Exchange.asmx"},
        **changes,
    }
    return call(handler, rest_event("POST", "/admin/integrations", body))


def test_an_integration_cannot_be_pointed_at_another_s_jrni_secret(aws: Aws, handler: Any) -> None:
    status, victim = create(handler, "victim")
    assert status == 201 and victim["jrni"]["secret_name"] == f"{PREFIX}/victim/jrni"
    status, answer = create(
        handler,
        "attacker",
        jrni={
            "base_url": "https://bank.jrni.example",
            "company_id": "37000",
            "secret_name": f"{PREFIX}/victim/jrni",
        },
    )
    assert status == 422 and f"must be named '{PREFIX}/attacker/jrni'" in answer["message"]
    # Nor at a listener on this machine.
    status, answer = create(
        handler, "attacker", jrni={"base_url": "https://127.0.0.1:9999", "company_id": "1"}
    )
    assert status == 422 and "points at this machine" in answer["message"]
    stored = DynamoIntegrationStore(aws.tables["IntegrationsTable"], region=REGION).all()
    assert [i.id for i in stored] == ["victim"]


@pytest.mark.parametrize(
    ("jrni_id", "mailbox", "reason"),
    [
        ("1" * 1024, "alice@bank.example", "is not a JRNI id"),  # once a DynamoDB ValidationException: 502
        ("11", "alice@bank.example\x00", "is not a mailbox address"),
        ("11", "</t:EmailAddress>@bank.example", "is not a mailbox address"),
    ],
)
def test_long_ids_and_hostile_mailboxes_are_refused_with_400(
    aws: Aws, handler: Any, jrni_id: str, mailbox: str, reason: str
) -> None:
    assert create(handler, "bank")[0] == 201
    params = {"integration_id": "bank", "kind": "person", "jrni_id": jrni_id}
    event = rest_event(
        "PUT",
        f"/admin/integrations/bank/mappings/person/{jrni_id}",
        {"mailbox": mailbox},
        resource="/admin/integrations/{integration_id}/mappings/{kind}/{jrni_id}",
        path_parameters=params,
    )
    status, answer = call(handler, event)
    assert status == 400 and reason in answer["message"]
    assert DynamoMappingStore(aws.tables["MappingsTable"], region=REGION).mappings("bank") == []
