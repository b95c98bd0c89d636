"""The admin function as API Gateway invokes it, on moto, with both emulators over real HTTP: the connection test and
automap as deployed (secrets from Secrets Manager, the adapters the composition root picks)."""

from __future__ import annotations

import json
from typing import Any

from emulators.ews.testing import EwsEmulator
from tests.apigw import LambdaContext, rest_event
from tests.functions.conftest import ALICE, BOB, INTEGRATION, PREFIX, ROOM, Aws, configure_integration


def post(handler: Any, path: str, resource: str, body: Any) -> tuple[int, Any]:
    event = rest_event("POST", path, body, resource=resource, path_parameters={"integration_id": INTEGRATION})
    answer = handler(event, LambdaContext())
    return answer["statusCode"], json.loads(answer["body"])


def post_test(handler: Any, body: dict[str, Any]) -> tuple[int, Any]:
    return post(
        handler, f"/admin/integrations/{INTEGRATION}/test", "/admin/integrations/{integration_id}/test", body
    )


def test_the_connection_test_through_the_admin_function(aws: Aws, jrni: str, ews: EwsEmulator) -> None:
    handler = configure_integration(aws, jrni, ews, "admin")

    status, answer = post_test(handler, {"write": True})

    assert status == 200 and answer["ok"] is True, [c for c in answer["checks"] if c["state"] == "failed"]
    names = [check["name"] for check in answer["checks"]]
    assert names[:3] == ["JRNI reachable", "JRNI login", "JRNI companies"]
    for mailbox in sorted((ALICE, BOB, ROOM)):
        assert f"write probe in {mailbox}: delete" in names
        assert ews.items(mailbox) == []


def test_a_missing_secret_is_a_failed_check_naming_it(aws: Aws, jrni: str, ews: EwsEmulator) -> None:
    handler = configure_integration(aws, jrni, ews, "admin")
    aws.secrets.delete_secret(SecretId=f"{PREFIX}/{INTEGRATION}/exchange", ForceDeleteWithoutRecovery=True)

    status, answer = post_test(handler, {"mailbox": ALICE})

    assert status == 200 and answer["ok"] is False
    [refused] = [c for c in answer["checks"] if c["state"] == "failed"]
    assert refused["name"] == "Exchange authentication"
    assert refused["detail"].startswith(
        f"calsync cannot read the Exchange credentials: secret '{PREFIX}/{INTEGRATION}/exchange' cannot"
    )
    assert (
        refused["fix"]
        == f'store {{"username", "password"}} in the secret \'{PREFIX}/{INTEGRATION}/exchange\''
    )


def test_automap_through_the_admin_function(aws: Aws, jrni: str, ews: EwsEmulator) -> None:
    handler = configure_integration(aws, jrni, ews, "admin")

    status, answer = post(
        handler,
        f"/admin/integrations/{INTEGRATION}/mappings/automap",
        "/admin/integrations/{integration_id}/mappings/automap",
        {},
    )

    # The example organisation's mapped staff stay as they are; the others are told apart.
    assert status == 200 and answer["mapped"] == []
    assert [(row["name"], row["reason"]) for row in answer["not_mapped"]] == [
        ("Carol Gone", "disabled in JRNI: map it by hand if it should be synced"),
        ("Room 2", "JRNI has no e-mail for it (neither ews_email nor email)"),
    ]
