"""The admin API's mappings: JRNI staff and resources, each mapped to a mailbox or not."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from pydantic import BaseModel, Field

from calsync.domain import ResourceKind, validation
from calsync.transport.admin.answers import error_response, new_router, no_content
from calsync.transport.admin.models import MailboxIn
from calsync.usecases import admin
from calsync.usecases.admin import AdminDeps


class MappingsPage(BaseModel):
    mappings: list[dict[str, Any]] = Field(
        description="staff members and resources in (kind, jrni_id) order, each with its mailbox and status"
    )
    next_cursor: str | None = Field(description="pass as cursor for the next page; null after the last page")
    directory_refreshed_at: str | None = Field(
        description="when JRNI's staff and resources were last read (each reconcile run reads them)"
    )


def routes(deps: Callable[[], AdminDeps]) -> Router:
    """The mappings' routes; ``deps`` is called per request."""
    router = new_router()

    @router.get(
        "/admin/integrations/<integration_id>/mappings",
        summary="JRNI staff and resources with their mailboxes, a page at a time",
        responses={
            200: {"description": "one page", "content": {"application/json": {"model": MappingsPage}}},
            400: error_response("a limit outside 1 to 500, or a cursor this API did not give"),
            404: error_response("no such integration"),
        },
    )
    def list_mappings(
        integration_id: Annotated[str, Path()],
        limit: Annotated[str | None, Query(description="rows per page, 1 to 500 (default 100)")] = None,
        cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    ) -> MappingsPage:
        page = admin.calendar_page(deps(), integration_id, limit=validation.page_limit(limit), cursor=cursor)
        return MappingsPage(**page)

    @router.put("/admin/integrations/<integration_id>/mappings/<kind>/<jrni_id>", summary="Map to a mailbox")
    def put_mapping(
        integration_id: Annotated[str, Path()],
        kind: Annotated[ResourceKind, Path()],
        jrni_id: Annotated[str, Path()],
        body: MailboxIn,
    ) -> dict[str, Any]:
        mapping, backfill = admin.map_mailbox(deps(), integration_id, kind, jrni_id, body.mailbox)
        return {
            "kind": kind.value,
            "jrni_id": jrni_id,
            "mailbox": mapping.mailbox,
            "backfill": None if backfill is None else {"run_id": backfill.run_id},
        }

    @router.delete("/admin/integrations/<integration_id>/mappings/<kind>/<jrni_id>", summary="Unmap")
    def delete_mapping(
        integration_id: Annotated[str, Path()],
        kind: Annotated[ResourceKind, Path()],
        jrni_id: Annotated[str, Path()],
    ) -> Response[None]:
        admin.unmap(deps(), integration_id, kind, jrni_id)
        return no_content()

    return router
