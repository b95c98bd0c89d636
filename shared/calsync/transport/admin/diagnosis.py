"""The admin API's connection test and automap: both reach JRNI and Exchange, and answer within 20 s."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path

from calsync.transport.admin.answers import answers, new_router
from calsync.transport.admin.models import AutomapIn, ConnectionTestIn
from calsync.transport.admin.schemas import (
    AutomapOut,
    AutomappedOut,
    CheckOut,
    ConnectionTestOut,
    NotAutomappedOut,
)
from calsync.usecases import diagnose
from calsync.usecases.admin import AdminDeps


def routes(deps: Callable[[], AdminDeps]) -> Router:
    """The connection test and automap routes; ``deps`` is called per request."""
    router = new_router()

    @router.post(
        "/admin/integrations/<integration_id>/test",
        summary="Test the connections to JRNI, Exchange and the mailboxes",
        description=(
            "A checklist: JRNI reachable, login, companies; the Exchange endpoint reachable, TLS, authentication, "
            "server version, autodiscover; then each mailbox (the one given, else up to 50 mapped ones) opened with "
            "the rights calsync needs, and with write: true a private probe item created and deleted. A check that "
            "fails stops those depending on it (skipped, with why); the answer comes within 20 s, a check still "
            "running then is failed."
        ),
        responses=answers(
            200,
            ConnectionTestOut,
            "the checklist; ok is false when any check failed",
            {400: "the mailbox given is not an address", 404: None},
        ),
    )
    def test_connection(integration_id: Annotated[str, Path()], body: ConnectionTestIn) -> ConnectionTestOut:
        found = diagnose.diagnose(deps(), integration_id, body.mailbox, write=body.write)
        return ConnectionTestOut(
            ok=found.ok,
            checks=[
                CheckOut(name=c.name, state=c.state.value, detail=c.detail, fix=c.fix) for c in found.checks
            ],
        )

    @router.post(
        "/admin/integrations/<integration_id>/mappings/automap",
        summary="Map staff and resources to the mailboxes JRNI records for them",
        description=(
            "Every unmapped, enabled staff member and resource whose JRNI ews_email (else email) is a mailbox the "
            "service account can open is mapped to it (and backfilled); the others are listed with the reason."
        ),
        responses=answers(
            200,
            AutomapOut,
            "what was mapped, and what was not with why",
            {
                404: None,
                502: "JRNI refused to list the staff and resources",
                503: "JRNI did not list them in time, or could not be reached: run automap again",
            },
            upstream=True,
        ),
    )
    def automap(integration_id: Annotated[str, Path()], body: AutomapIn) -> AutomapOut:
        done = diagnose.automap(deps(), integration_id)
        return AutomapOut(
            mapped=[
                AutomappedOut(
                    kind=m.calendar.kind, jrni_id=m.calendar.jrni_id, name=m.calendar.name, mailbox=m.mailbox
                )
                for m in done.mapped
            ],
            not_mapped=[
                NotAutomappedOut(
                    kind=n.calendar.kind, jrni_id=n.calendar.jrni_id, name=n.calendar.name, reason=n.reason
                )
                for n in done.not_mapped
            ],
        )

    return router
