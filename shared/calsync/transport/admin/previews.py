"""The admin API's template preview: the subject and body a booking would get, or what is wrong with the templates."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path

from calsync.transport.admin.answers import answers, error, json_answer, new_router
from calsync.transport.admin.models import PreviewIn
from calsync.transport.admin.schemas import PreviewOut, TemplatesRefusedOut
from calsync.usecases import preview
from calsync.usecases.admin import AdminDeps


def routes(deps: Callable[[], AdminDeps]) -> Router:
    """The preview route; ``deps`` is called per request."""
    router = new_router()

    @router.post(
        "/admin/integrations/<integration_id>/templates/preview",
        summary="Render the subject and body templates for a booking, without saving anything",
        description=(
            "The integration's templates, or the ones given in place of them, rendered for a JRNI booking of the "
            "integration (booking_id, looked for in the company and its child companies) or for the built-in sample "
            "booking. Templates that cannot be used are answered 422 with every problem, each with its line and "
            "column: what a PATCH of them would refuse."
        ),
        responses=answers(
            200,
            PreviewOut,
            "the subject and body the booking would get in Outlook",
            {404: "no such integration, or JRNI has no booking of that id in its companies", 422: None},
            upstream=True,
            error_models={422: TemplatesRefusedOut},
        ),
    )
    def preview_templates(integration_id: Annotated[str, Path()], body: PreviewIn) -> Response[Any]:
        shown = preview.preview(
            deps(),
            integration_id,
            subject_template=body.subject_template,
            body_template=body.body_template,
            plain_text_body=body.plain_text_body,
            booking_id=body.booking_id,
        )
        if shown.errors:
            first = shown.errors[0]
            return error(
                422,
                f"the {first.which} template cannot be used (rendered for {shown.booking})",
                template=first.which,
                detail=first.detail,
                errors=[{"template": e.which, "detail": e.detail} for e in shown.errors],
            )
        return json_answer(
            200,
            PreviewOut(
                subject=shown.subject,
                body=shown.body,
                body_type="text" if shown.plain_text_body else "html",
                booking=shown.booking,
            ).model_dump(),
        )

    return router
