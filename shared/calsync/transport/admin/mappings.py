"""The admin API's mappings: JRNI staff and resources, each mapped to a mailbox or not."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path

from calsync.domain import ResourceKind
from calsync.transport.admin.answers import new_router, no_content
from calsync.transport.admin.models import MailboxIn
from calsync.usecases import admin
from calsync.usecases.admin import AdminDeps


def routes(deps: Callable[[], AdminDeps]) -> Router:
    """The mappings' routes; ``deps`` is called per request."""
    router = new_router()

    @router.get(
        "/admin/integrations/<integration_id>/mappings",
        summary="JRNI staff and resources with their mailboxes",
    )
    def list_mappings(integration_id: Annotated[str, Path()]) -> dict[str, Any]:
        return {"mappings": admin.calendar_rows(deps(), integration_id)}

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
