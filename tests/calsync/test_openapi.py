"""The admin API's OpenAPI document: the committed docs/openapi.json is the one served, with the SigV4 security
scheme."""

from __future__ import annotations

import json
from typing import Any

import pytest

from calsync.transport.admin import build_admin_api
from tests.apigw import LambdaContext, rest_event
from tools.openapi import DOCUMENT, document


@pytest.fixture(scope="module")
def served() -> dict[str, Any]:
    event = rest_event("GET", "/admin/openapi")
    event["queryStringParameters"] = {"format": "json"}
    event["multiValueQueryStringParameters"] = {"format": ["json"]}
    answer = build_admin_api(lambda: None).resolve(event, LambdaContext())  # type: ignore[arg-type, return-value]
    assert answer["statusCode"] == 200
    return json.loads(answer["body"])  # type: ignore[no-any-return]


def test_the_committed_document_is_the_one_served(served: dict[str, Any]) -> None:
    committed = json.loads(DOCUMENT.read_text())
    assert document() == DOCUMENT.read_text(), "docs/openapi.json is out of date: run `make openapi`"
    # The servers entry is where it is served (the API stage); the rest is the same document.
    assert {k: v for k, v in served.items() if k != "servers"} == {
        k: v for k, v in committed.items() if k != "servers"
    }, "docs/openapi.json differs from the served document: run `make openapi`"


def test_the_document_says_how_to_sign_every_call(served: dict[str, Any]) -> None:
    assert served["components"]["securitySchemes"]["sigv4"]["x-amazon-apigateway-authtype"] == "awsSigv4"
    assert served["security"] == [{"sigv4": []}]


def _operations(served: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{method.upper()} {path}", operation)
        for path, methods in served["paths"].items()
        if path != "/admin/openapi"
        for method, operation in methods.items()
    ]


def _schema_name(answer: dict[str, Any]) -> str | None:
    """The component an answer's JSON body refers to (None: no body)."""
    content = answer.get("content") or {}
    if not content:
        return None
    assert set(content) == {"application/json"}, content
    return str(content["application/json"]["schema"]["$ref"]).rsplit("/", 1)[-1]


def test_every_operation_has_one_typed_success_and_typed_errors(served: dict[str, Any]) -> None:
    operations = _operations(served)
    assert len(operations) >= 17
    for name, operation in operations:
        answers = operation["responses"]
        successes = [code for code in answers if code.startswith("2")]
        assert len(successes) == 1, f"{name}: {successes}"
        [success] = successes
        body = _schema_name(answers[success])
        if success == "204":
            assert body is None, f"{name}: a 204 has no body"
        else:
            assert body is not None and body.endswith(("Out", "Page")), f"{name}: {success} is {body}"
        # Every route can be refused for a bad path or body, or find DynamoDB unavailable.
        assert {"400", "422", "503"} <= set(answers), f"{name}: {sorted(answers)}"
        for code, answer in answers.items():
            if code.startswith(("4", "5")):
                error_body = _schema_name(answer)
                assert error_body in {"ErrorOut", "ImportRefusedOut", "TemplatesRefusedOut"}, (
                    f"{name}: {code} is {error_body}"
                )
                assert answer["description"], f"{name}: {code} says nothing of when it is answered"


@pytest.mark.parametrize(
    ("operation", "status"),
    [
        ("POST /admin/integrations", "201"),
        ("DELETE /admin/integrations/{integration_id}", "204"),
        ("DELETE /admin/integrations/{integration_id}/mappings/{kind}/{jrni_id}", "204"),
        ("POST /admin/integrations/{integration_id}/reconcile", "202"),
        ("POST /admin/integrations/{integration_id}/dead-letters/replay", "202"),
    ],
)
def test_the_document_gives_the_status_the_api_answers(
    served: dict[str, Any], operation: str, status: str
) -> None:
    assert status in dict(_operations(served))[operation]["responses"]


def test_the_error_body_is_documented(served: dict[str, Any]) -> None:
    schemas = served["components"]["schemas"]
    assert schemas["ErrorOut"]["required"] == ["message"]
    assert schemas["ImportRefusedOut"]["properties"]["errors"]["items"]["$ref"].endswith("RowErrorOut")
    # Whether an ETag comes back is part of the contract for GET and PATCH of one integration.
    one = served["paths"]["/admin/integrations/{integration_id}"]
    assert "ETag" in one["get"]["responses"]["200"]["headers"]
    assert "ETag" in one["patch"]["responses"]["200"]["headers"]
