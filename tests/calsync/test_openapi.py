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
