"""The admin API against its own OpenAPI document, on the local stack (the real admin function behind the API
front, moto, the emulators, the demo organisation): schemathesis generates requests from the document served at
``/admin/openapi`` and checks that no answer is a server error and that every answer (status code, content type,
body) is one the document describes. The budget is bounded (``EXAMPLES`` per operation) to keep the suite short.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from local.stack import LocalStack, StackOptions

EXAMPLES = 20  # per operation; about 20 operations
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


def test_every_answer_is_in_the_document_and_none_is_a_server_error(
    stack: LocalStack, admin_schema: schemathesis.BaseSchema
) -> None:
    assert stack.urls is not None
    base_url = stack.urls.api
    failures: list[str] = []
    operations = [result.ok() for result in admin_schema.get_all_operations()]
    assert len(operations) >= 9, "the document lists the admin API's operations"
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=base_url, timeout=30, checks=CHECKS)

        try:
            check()
        except Exception as exc:  # one operation's failure does not hide the others'
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
