"""The admin API against its own OpenAPI document, on the local stack (the real admin function behind the API
front, moto, the emulators, the demo organisation): schemathesis generates requests from the document served at
``/admin/openapi`` and checks that no answer is a server error and that every answer (status code, content type,
body) is one the document describes. The budget is bounded (``EXAMPLES`` per operation) to keep the suite short.

Ids drawn at random name nothing, so about half the requests name the demo bank and its mapped staff instead: those
reach the routes' real work (JRNI, Exchange, DynamoDB) rather than only their 404. Deleting operations run last.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from local.stack import LocalStack, StackOptions

EXAMPLES = 20  # per operation; about 20 operations
# What the demo organisation has: the integration, and a mapped staff member.
DEMO = {"integration_id": "demo-bank", "kind": "person", "jrni_id": "1"}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    logs = io.StringIO()
    with LocalStack(
        StackOptions(
            api_port=0, ews_port=0, jrni_port=0, log_stream=logs, log_level="WARNING", streaming=False
        )
    ) as running:
        yield running


@pytest.fixture(scope="module")
def admin_schema(stack: LocalStack) -> schemathesis.BaseSchema:
    assert stack.urls is not None
    document = requests.get(f"{stack.urls.api}/admin/openapi", params={"format": "json"}, timeout=10).json()
    return schemathesis.openapi.from_dict(document)


def _explore(operation: Any, base_url: str, seen: set[int]) -> None:
    """Call one operation with generated requests (half of them on the demo's ids); record every status."""

    @given(case=operation.as_strategy(), demo=st.booleans())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def check(case: schemathesis.Case, demo: bool) -> None:
        if demo and case.path_parameters:
            case.path_parameters.update({k: v for k, v in DEMO.items() if k in case.path_parameters})
        response = case.call(base_url=base_url, timeout=30)
        seen.add(response.status_code)
        case.validate_response(response, checks=CHECKS)

    check()


def test_every_answer_is_in_the_document_and_none_is_a_server_error(
    stack: LocalStack, admin_schema: schemathesis.BaseSchema
) -> None:
    assert stack.urls is not None
    base_url = stack.urls.api
    failures: list[str] = []
    answered: dict[str, set[int]] = {}
    operations = sorted(
        (result.ok() for result in admin_schema.get_all_operations()),
        key=lambda o: o.method.upper() == "DELETE",
    )
    assert len(operations) >= 17, "the document lists the admin API's operations"
    for operation in operations:
        seen = answered.setdefault(operation.label, set())
        try:
            _explore(operation, base_url, seen)
        except Exception as exc:  # one operation's failure does not hide the others'
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
    # The run reached the routes' work, not only their refusals: most operations answered a success at least once.
    succeeded = [label for label, codes in answered.items() if any(200 <= code < 300 for code in codes)]
    assert len(succeeded) >= len(answered) // 2, answered
