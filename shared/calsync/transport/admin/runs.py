"""The admin API's reconcile runs, resyncs and the status of an integration."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path

from calsync.domain import ResourceKind
from calsync.transport.admin.answers import accepted, answers, new_router
from calsync.transport.admin.models import ReconcileIn, ResyncIn
from calsync.transport.admin.schemas import RunOut, StatusOut
from calsync.usecases import admin
from calsync.usecases.admin import AdminDeps


def routes(deps: Callable[[], AdminDeps]) -> Router:
    """The reconcile and status routes; ``deps`` is called per request."""
    router = new_router()

    @router.post(
        "/admin/integrations/<integration_id>/reconcile",
        summary="Reconcile every mapping now",
        responses=answers(
            202, RunOut, "the run, started: follow it with GET …/reconcile/{run_id}", {404: None}
        ),
    )
    def reconcile(integration_id: Annotated[str, Path()], body: ReconcileIn) -> Response[RunOut]:
        run = admin.request_reconcile(deps(), integration_id, deep=body.deep)
        return accepted(RunOut.model_validate(admin.run_json(run)))

    @router.get(
        "/admin/integrations/<integration_id>/reconcile/<run_id>",
        summary="Progress of a reconcile run",
        responses=answers(
            200, RunOut, "how far the run has got, and what it repaired", {404: "no such integration or run"}
        ),
    )
    def reconcile_run(integration_id: Annotated[str, Path()], run_id: Annotated[str, Path()]) -> RunOut:
        return RunOut.model_validate(admin.reconcile_run(deps(), integration_id, run_id))

    @router.post(
        "/admin/integrations/<integration_id>/mappings/<kind>/<jrni_id>/resync",
        summary="Reconcile one mapping deeply now",
        responses=answers(
            202,
            RunOut,
            "the run, started: follow it with GET …/reconcile/{run_id}",
            {404: "no such integration, or that staff member or resource is not mapped"},
        ),
    )
    def resync(
        integration_id: Annotated[str, Path()],
        kind: Annotated[ResourceKind, Path()],
        jrni_id: Annotated[str, Path()],
        body: ResyncIn,
    ) -> Response[RunOut]:
        run = admin.resync_mapping(deps(), integration_id, kind, jrni_id, force=body.force)
        return accepted(RunOut.model_validate(admin.run_json(run)))

    @router.get(
        "/admin/integrations/<integration_id>/status",
        summary="Sync status of an integration",
        responses=answers(
            200,
            StatusOut,
            "each calendar's state, the open problems, the watches and reconciles",
            {404: None},
        ),
    )
    def status(integration_id: Annotated[str, Path()]) -> StatusOut:
        return StatusOut.model_validate(admin.integration_status(deps(), integration_id))

    return router
