"""The admin API's merged availability view of one mapped staff member or resource: JRNI bookings and blocks,
Outlook's busy time and the JRNI working hours, over at most 7 days."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from calsync.domain import InvalidInputError
from calsync.domain.availability import Availability
from calsync.transport.admin.answers import answers, new_router
from calsync.transport.admin.schemas import AvailabilityIntervalOut, AvailabilityOut
from calsync.usecases import availability
from calsync.usecases.admin import AdminDeps


def routes(deps: Callable[[], AdminDeps]) -> Router:
    """The availability route; ``deps`` is called per request."""
    router = new_router()

    @router.get(
        "/admin/integrations/<integration_id>/availability",
        summary="The merged timeline of a mapped staff member or resource: JRNI, Outlook and working hours",
        description=(
            "Why a time cannot be booked: the JRNI bookings and blocks of the calendar (cancelled ones left out), "
            "the busy time its mailbox publishes in Exchange (subjects only where Exchange gives details and the "
            "item is not private; what calsync wrote itself is said so in detail), and the working hours of its "
            "JRNI schedule, sorted by start. start and end are ISO 8601 with an offset, start before end, at most "
            "7 days apart."
        ),
        responses=answers(
            200,
            AvailabilityOut,
            "the merged timeline",
            {404: "no such integration, or that staff member or resource is not mapped in it"},
            upstream=True,
        ),
    )
    def get_availability(
        integration_id: Annotated[str, Path()],
        # Optional here so that a missing one is answered 400 with what to give, as a malformed one is.
        kind: Annotated[str | None, Query(description="person or resource")] = None,
        jrni_id: Annotated[
            str | None, Query(description="the JRNI id of the staff member or resource")
        ] = None,
        start: Annotated[
            str | None, Query(description="ISO 8601 with an offset, e.g. 2026-12-10T00:00:00+00:00")
        ] = None,
        end: Annotated[
            str | None, Query(description="ISO 8601 with an offset; at most 7 days after start")
        ] = None,
    ) -> AvailabilityOut:
        if not jrni_id:
            raise InvalidInputError("jrni_id is required: the JRNI id of the staff member or resource")
        window = availability.availability_window(start or "", end or "")
        found = availability.availability(
            deps(), integration_id, availability.resource_kind(kind or ""), jrni_id, window
        )
        return availability_out(found)

    return router


def availability_out(found: Availability) -> AvailabilityOut:
    """The merged view as the API answers it, instants in UTC."""
    return AvailabilityOut(
        kind=found.kind,
        jrni_id=found.jrni_id,
        mailbox=found.mailbox,
        zone=found.zone,
        start=found.window.utc().start.isoformat(),
        end=found.window.utc().end.isoformat(),
        intervals=[
            AvailabilityIntervalOut(
                start=i.window.utc().start.isoformat(),
                end=i.window.utc().end.isoformat(),
                source=i.source.value,
                label=i.label,
                detail=i.detail,
            )
            for i in found.intervals
        ],
    )
