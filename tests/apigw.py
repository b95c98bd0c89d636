"""API Gateway (REST, proxy) events for tests, built from the sample events in events/ (also used by sam local)."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EVENTS = Path(__file__).resolve().parents[1] / "events"


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())  # type: ignore[no-any-return]


def rest_event(
    method: str,
    path: str,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    resource: str | None = None,
    path_parameters: dict[str, str] | None = None,
    raw_body: str | None = None,
) -> dict[str, Any]:
    """A REST API proxy event for ``method path``, shaped like ``events/admin_list_integrations.json``."""
    event = copy.deepcopy(load_event("admin_list_integrations.json"))
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    event.update(
        {
            "httpMethod": method,
            "path": path,
            "resource": resource or path,
            "headers": all_headers,
            "multiValueHeaders": {k: [v] for k, v in all_headers.items()},
            "pathParameters": path_parameters,
            "body": raw_body if raw_body is not None else (None if body is None else json.dumps(body)),
        }
    )
    event["requestContext"].update(
        {"httpMethod": method, "resourcePath": resource or path, "path": f"/Prod{path}"}
    )
    return event


@dataclass(frozen=True)
class LambdaContext:
    """The few fields Powertools reads from a Lambda context."""

    function_name: str = "calsync-test"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:eu-west-2:123456789012:function:calsync-test"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000
