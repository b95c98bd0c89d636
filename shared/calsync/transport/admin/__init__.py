"""The admin REST API: integrations and the mapping of JRNI staff and resources to mailboxes.

Built on Powertools' ``APIGatewayRestResolver`` with validation on, so the OpenAPI document is generated from the
routes (``resolver.get_openapi_json_schema()``). One router per resource (``integrations``, ``mappings``, ``runs``,
``dead_letters``);
domain errors become HTTP statuses here, in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response

from calsync.domain import ConflictError, PermanentError, RequestError, RetryableError, TemplateError
from calsync.transport.admin import dead_letters, integrations, mappings, runs
from calsync.transport.admin.answers import error
from calsync.transport.admin.models import integration_json
from calsync.transport.http import status_of
from calsync.usecases.admin import AdminDeps

__all__ = ["build_admin_api", "integration_json"]


def build_admin_api(deps: Callable[[], AdminDeps]) -> APIGatewayRestResolver:
    """The admin API's routes; ``deps`` is called per request (built once per cold start by the caller)."""
    app = APIGatewayRestResolver(enable_validation=True)
    # The OpenAPI document, generated from the routes below: GET /admin/openapi (UI) or ?format=json.
    app.enable_swagger(
        path="/admin/openapi",
        title="calsync admin API",
        version="1",
        description="Integrations between JRNI and Exchange, and staff and resources mapped to mailboxes.",
    )

    @app.exception_handler(RequestError)
    def requesterror(exc: RequestError) -> Response[dict[str, Any]]:
        return error(status_of(exc), str(exc))

    @app.exception_handler(ConflictError)
    def conflict(exc: ConflictError) -> Response[dict[str, Any]]:
        return error(409, str(exc))

    @app.exception_handler(TemplateError)
    def bad_template(exc: TemplateError) -> Response[dict[str, Any]]:
        return error(422, f"the {exc.which} template cannot be used", template=exc.which, detail=exc.detail)

    @app.exception_handler(RetryableError)
    def unavailable(exc: RetryableError) -> Response[dict[str, Any]]:
        return error(503, f"try again shortly: {exc}")

    @app.exception_handler(PermanentError)
    def upstream(exc: PermanentError) -> Response[dict[str, Any]]:
        return error(502, str(exc))

    for module in (integrations, mappings, runs, dead_letters):
        app.include_router(module.routes(deps))
    return app
