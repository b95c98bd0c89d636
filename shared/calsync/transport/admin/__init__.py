"""The admin REST API: integrations and the mapping of JRNI staff and resources to mailboxes.

Built on Powertools' ``APIGatewayRestResolver`` with validation on, so the OpenAPI document is generated from the
routes (``resolver.get_openapi_json_schema()``). One router per resource (``integrations``, ``mappings``, ``runs``,
``dead_letters``, ``availability``; ``diagnosis``: the connection test and automap); domain errors become HTTP
statuses here, in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.models import APIKey, Server
from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer

from calsync import deadline
from calsync.domain import (
    ConflictError,
    DeadlineExceededError,
    InvalidRowsError,
    PermanentError,
    RequestError,
    RetryableError,
    TemplateError,
)
from calsync.transport.admin import (
    availability,
    dead_letters,
    diagnosis,
    integrations,
    mappings,
    previews,
    runs,
)
from calsync.transport.admin.answers import Refused, error
from calsync.transport.admin.models import InvalidIntegrationError, integration_json
from calsync.transport.admin.paths import check_path_parameters
from calsync.transport.http import status_of
from calsync.usecases.admin import AdminDeps

__all__ = ["OPENAPI", "build_admin_api", "integration_json", "openapi_document"]


# What the OpenAPI document says of the API as a whole: every route is called with IAM (SigV4) credentials.
OPENAPI: dict[str, Any] = {
    "title": "calsync admin API",
    "version": "1",
    "description": "Integrations between JRNI and Exchange, and staff and resources mapped to mailboxes.",
    "security_schemes": {
        "sigv4": APIKey.model_validate(
            {
                "type": "apiKey",
                "in": "header",
                "name": "Authorization",
                "description": "AWS Signature Version 4 with IAM credentials allowed execute-api:Invoke on this "
                "API (the calsync CLI and the AWS SDKs sign for you)",
                "openapi_extensions": {"x-amazon-apigateway-authtype": "awsSigv4"},
            }
        )
    },
    "security": [{"sigv4": []}],
}


def openapi_document(app: APIGatewayRestResolver) -> str:
    """The OpenAPI document as served at ``/admin/openapi?format=json`` (and committed as docs/openapi.json)."""
    return app.get_openapi_json_schema(servers=[Server(url="/")], **OPENAPI)


# How long one admin request may spend, JRNI's and Exchange's answers included: API Gateway gives up at 29 s, and
# the admin function's Timeout (template.yaml) is set between the two.
DEADLINE_SECONDS = 20.0


def build_admin_api(
    deps: Callable[[], AdminDeps],
    idempotency: Callable[[], BasePersistenceLayer | None] = lambda: None,
    *,
    deadline_seconds: float = DEADLINE_SECONDS,
) -> APIGatewayRestResolver:
    """The admin API's routes; ``deps`` is called per request (built once per cold start by the caller), and so is
    ``idempotency``: where POST /admin/integrations remembers its Idempotency-Keys (None: nowhere). Each request must
    be answered within ``deadline_seconds``: an upstream still answering then is a 504."""
    app = APIGatewayRestResolver(enable_validation=True)
    # The OpenAPI document, generated from the routes below: GET /admin/openapi (UI) or ?format=json; committed as
    # docs/openapi.json (`make openapi` writes it, a test fails when the two differ).
    app.enable_swagger(path="/admin/openapi", **OPENAPI)

    @app.not_found
    def no_route(exc: Exception) -> Response[dict[str, Any]]:
        return error(
            404,
            f"there is no {app.current_event.http_method} {app.current_event.path[:200]!r} in this API: see the OpenAPI "
            f"document at /admin/openapi (ids are 1 to 64 letters, digits, - or _)",
        )

    @app.exception_handler(RequestValidationError)
    def invalid(exc: RequestValidationError) -> Response[dict[str, Any]]:
        problems = [
            {"where": ".".join(str(part) for part in e.get("loc", ())), "message": str(e.get("msg", ""))}
            for e in exc.errors()
        ]
        shown = "; ".join(f"{p['where']}: {p['message']}" for p in problems[:5])
        return error(422, f"the request does not validate: {shown}", errors=problems)

    @app.exception_handler(RequestError)
    def request_error(exc: RequestError) -> Response[dict[str, Any]]:
        return error(status_of(exc), str(exc))

    @app.exception_handler(InvalidIntegrationError)
    def invalid_integration(exc: InvalidIntegrationError) -> Response[dict[str, Any]]:
        return error(422, str(exc))

    @app.exception_handler(Refused)
    def refused(exc: Refused) -> Response[dict[str, Any]]:
        return error(exc.status, str(exc))

    @app.exception_handler(InvalidRowsError)
    def bad_rows(exc: InvalidRowsError) -> Response[dict[str, Any]]:
        rows = [{"line": line, "message": message} for line, message in exc.rows]
        return error(422, str(exc), errors=rows)

    @app.exception_handler(ConflictError)
    def conflict(exc: ConflictError) -> Response[dict[str, Any]]:
        return error(409, str(exc))

    @app.exception_handler(TemplateError)
    def bad_template(exc: TemplateError) -> Response[dict[str, Any]]:
        return error(422, f"the {exc.which} template cannot be used", template=exc.which, detail=exc.detail)

    @app.exception_handler(DeadlineExceededError)
    def too_slow(exc: DeadlineExceededError) -> Response[dict[str, Any]]:
        return error(504, str(exc))

    @app.exception_handler(RetryableError)
    def unavailable(exc: RetryableError) -> Response[dict[str, Any]]:
        return error(503, f"try again shortly: {exc}")

    @app.exception_handler(PermanentError)
    def upstream(exc: PermanentError) -> Response[dict[str, Any]]:
        return error(502, str(exc))

    def within_deadline(app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response[Any]:
        with deadline.within(deadline_seconds):
            return next_middleware(app)

    # Every route's ids checked before it runs; every request within its deadline.
    app.use(middlewares=[check_path_parameters, within_deadline])
    app.include_router(integrations.routes(deps, idempotency))
    for module in (mappings, runs, diagnosis, dead_letters, previews, availability):
        app.include_router(module.routes(deps))
    return app
