"""The admin API's path parameters, checked in one place before any route runs: an id that cannot be JRNI's or
calsync's (too long for a DynamoDB key, control characters, markup) is answered 400 with the reason, and never
reaches a store, JRNI or Exchange."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware

from calsync.domain import validation

# Each path parameter a route may have, with its check (InvalidInputError saying what is accepted).
CHECKS: dict[str, Callable[[str], str]] = {
    "integration_id": validation.integration_id,
    "jrni_id": validation.jrni_id,
    "run_id": validation.run_id,
}


def check_path_parameters(app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response[Any]:
    """Refuse a request whose path names an id calsync cannot have (InvalidInputError → 400)."""
    for name, value in app.request.path_parameters.items():
        check = CHECKS.get(name)
        # A query parameter of the same name comes here too, None when absent: the route says what is missing.
        if check is not None and value is not None:
            check(value)
    return next_middleware(app)
