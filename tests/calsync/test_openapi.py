"""The admin API's OpenAPI document: the committed docs/openapi.json is the one served, and it describes every
answer (typed bodies, the right success codes, the error answers, the SigV4 security scheme)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from calsync.transport.admin import build_admin_api
from tests.apigw import LambdaContext, rest_event
from tools.openapi import DOCUMENT, document

METHODS = ("get", "put", "post", "patch", "delete")


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


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in doc["paths"].items()
        for method, operation in item.items()
        if method in METHODS and not path.startswith("/admin/openapi")
    ]


def test_every_operation_says_how_to_sign_and_what_each_answer_holds(served: dict[str, Any]) -> None:
    assert served["components"]["securitySchemes"]["sigv4"]["x-amazon-apigateway-authtype"] == "awsSigv4"
    assert served["security"] == [{"sigv4": []}]
    untyped = []
    for method, path, operation in _operations(served):
        responses = operation["responses"]
        successes = [code for code in responses if code.startswith("2")]
        assert len(successes) == 1, f"{method} {path}: one success code, not {successes}"
        success = responses[successes[0]]
        if successes[0] == "204":
            assert "content" not in success, f"{method} {path}: 204 has no body"
        elif "$ref" not in success["content"]["application/json"]["schema"]:
            untyped.append(f"{method} {path}")
        for code in ("400", "422", "503"):
            schema = responses[code]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorOut"}, f"{method} {path} {code}"
        if method == "POST" and "{" not in path.rsplit("/", 1)[-1] and path.endswith("/integrations"):
            assert successes == ["201"], f"{method} {path} creates: 201"
    assert not untyped, f"answers without a schema: {untyped}"
