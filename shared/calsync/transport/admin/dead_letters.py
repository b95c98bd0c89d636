"""The admin API's dead letters: list an integration's, replay them once the cause is fixed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path

from calsync.transport.admin.answers import accepted, answers, new_router
from calsync.transport.admin.models import ReplayIn
from calsync.transport.admin.schemas import DeadLetterOut, DeadLettersOut, ReplayOut
from calsync.usecases import dead_letters
from calsync.usecases.admin import AdminDeps


def routes(deps: Callable[[], AdminDeps]) -> Router:
    """The dead letters' routes; ``deps`` is called per request."""
    router = new_router()

    @router.get(
        "/admin/integrations/<integration_id>/dead-letters",
        summary="Messages calsync gave up on, with why",
        responses=answers(
            200,
            DeadLettersOut,
            "the integration's dead letters, newest first",
            {404: None, 503: "a dead-letter queue or the table could not be read: try again shortly"},
        ),
    )
    def list_dead_letters(integration_id: Annotated[str, Path()]) -> DeadLettersOut:
        letters = dead_letters.dead_letters(deps(), integration_id)
        return DeadLettersOut(
            dead_letters=[DeadLetterOut(**dead_letters.letter_json(letter)) for letter in letters]
        )

    @router.post(
        "/admin/integrations/<integration_id>/dead-letters/replay",
        summary="Send dead letters back to their queues, to be processed again",
        responses=answers(
            202,
            ReplayOut,
            "sent back; each is processed as a new message, and the status follows",
            {
                400: "an id that is not a dead letter's id, an empty list, or more than 100 ids",
                404: "no such integration, or an id that is not one of its dead letters (nothing replayed)",
                503: "a queue or the table could not be reached: try again shortly (nothing is lost)",
            },
        ),
    )
    def replay(integration_id: Annotated[str, Path()], body: ReplayIn) -> Response[ReplayOut]:
        return accepted(ReplayOut.model_validate(dead_letters.replay(deps(), integration_id, body.ids)))

    return router
