"""The admin API's mappings: JRNI staff and resources, each mapped to a mailbox or not."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from calsync.domain import InvalidInputError, ResourceKind, TooLargeError, validation
from calsync.transport.admin.answers import Refused, answers, body_text, new_router, no_content
from calsync.transport.admin.models import MailboxIn
from calsync.transport.admin.schemas import (
    ImportBackfillOut,
    ImportOut,
    ImportRefusedOut,
    MappingOut,
    MappingsPage,
    RunRefOut,
)
from calsync.usecases import admin
from calsync.usecases import import_mappings as import_rows
from calsync.usecases.admin import AdminDeps


def routes(deps: Callable[[], AdminDeps]) -> Router:
    """The mappings' routes; ``deps`` is called per request."""
    router = new_router()

    @router.get(
        "/admin/integrations/<integration_id>/mappings",
        summary="JRNI staff and resources with their mailboxes, a page at a time",
        responses=answers(
            200,
            MappingsPage,
            "one page",
            {400: "a limit outside 1 to 500, or a cursor this API did not give", 404: None},
            # The first page read without a stored directory reads JRNI's staff and resources.
            upstream=True,
        ),
    )
    def list_mappings(
        integration_id: Annotated[str, Path()],
        limit: Annotated[str | None, Query(description="rows per page, 1 to 500 (default 100)")] = None,
        cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    ) -> MappingsPage:
        page = admin.calendar_page(deps(), integration_id, limit=validation.page_limit(limit), cursor=cursor)
        return MappingsPage(**page)

    @router.put(
        "/admin/integrations/<integration_id>/mappings/<kind>/<jrni_id>",
        summary="Map to a mailbox",
        description="A new or re-pointed mapping is backfilled at once; the same mapping again changes nothing.",
        responses=answers(
            200,
            MappingOut,
            "mapped; backfill names the run that fills the calendar (none when nothing changed)",
            {
                404: None,
                409: "the mailbox is mapped to another staff member or resource: unmap that one first",
            },
        ),
    )
    def put_mapping(
        integration_id: Annotated[str, Path()],
        kind: Annotated[ResourceKind, Path()],
        jrni_id: Annotated[str, Path()],
        body: MailboxIn,
    ) -> MappingOut:
        mapping, backfill = admin.map_mailbox(deps(), integration_id, kind, jrni_id, body.mailbox)
        return MappingOut(
            kind=kind.value,
            jrni_id=mapping.jrni_id,
            mailbox=mapping.mailbox,
            backfill=None if backfill is None else RunRefOut(run_id=backfill.run_id),
        )

    @router.delete(
        "/admin/integrations/<integration_id>/mappings/<kind>/<jrni_id>",
        summary="Unmap",
        description="Calendar items already written stay in the mailbox (see the README).",
        status_code=204,
        responses=answers(
            204,
            None,
            "unmapped",
            {404: "no such integration, or that staff member or resource is not mapped"},
        ),
    )
    def delete_mapping(
        integration_id: Annotated[str, Path()],
        kind: Annotated[ResourceKind, Path()],
        jrni_id: Annotated[str, Path()],
    ) -> Response[None]:
        admin.unmap(deps(), integration_id, kind, jrni_id)
        return no_content()

    @router.post(
        "/admin/integrations/<integration_id>/mappings/import",
        summary="Map many staff members and resources at once (CSV or JSON)",
        description=(
            "The body is CSV (`Content-Type: text/csv`, header row `kind,jrni_id,mailbox`) or JSON "
            '(`{"mappings": [{"kind", "jrni_id", "mailbox"}, ...]}`), at most 2,000 rows and 1 MB. Every row is '
            "checked first; if any is bad, none is applied and each bad row is named by its line (CSV: as a "
            "spreadsheet numbers it, the header being 1; JSON: 1 for the first mapping). Each new or changed "
            "mapping is backfilled; a row mapped so already is left as it is."
        ),
        responses=answers(
            200,
            ImportOut,
            "every row applied or already so; the backfills started",
            {
                400: "the JSON is not a list of mappings, or there is no row",
                404: None,
                409: "a mailbox was mapped to another meanwhile: the rows before it were applied, send the file again",
                413: "more than 2,000 rows or 1 MB",
                415: "the body is neither text/csv nor application/json",
                422: "rows that cannot be imported, each with its line; nothing was applied",
            },
            upstream=True,
            error_models={422: ImportRefusedOut},
        ),
    )
    def import_mappings(integration_id: Annotated[str, Path()]) -> ImportOut:
        rows = _rows(router.current_event)
        imported = import_rows.import_mappings(deps(), integration_id, rows)
        return ImportOut(
            applied=len(imported.applied),
            unchanged=imported.unchanged,
            backfills=[
                ImportBackfillOut(kind=mapping.kind, jrni_id=mapping.jrni_id, run_id=run.run_id)
                for mapping, run in imported.applied
            ],
        )

    return router


def _rows(event: Any) -> list[import_rows.ImportRow]:
    """The rows of an import's body, read as its Content-Type says."""
    body = body_text(event)
    if len(body.encode()) > import_rows.MAX_BYTES:
        raise TooLargeError(
            f"the file is over {import_rows.MAX_BYTES // 1_000_000} MB: split it and send each part"
        )
    content_type = (event.headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type == "text/csv":
        return import_rows.rows_of_csv(body)
    if content_type == "application/json":
        try:
            document = json.loads(body)
        except ValueError as exc:
            raise InvalidInputError(f"the body is not JSON ({exc})") from None
        return import_rows.rows_of_json(document)
    raise Refused(
        415,
        f"mappings are imported from text/csv (header kind,jrni_id,mailbox) or application/json, not "
        f"{content_type or 'a body without a Content-Type'}",
    )
