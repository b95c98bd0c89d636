"""The admin API's dead letters: list an integration's, replay them once the cause is fixed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path
from pydantic import BaseModel, Field

from calsync.transport.admin.answers import error_response, json_answer, new_router
from calsync.transport.admin.models import ReplayIn
from calsync.usecases import dead_letters
from calsync.usecases.admin import AdminDeps


class DeadLetterOut(BaseModel):
    id: str = Field(description="the message's id in its dead-letter queue; what replay takes")
    queue: Literal["outbound", "inbound", "reconcile"]
    about: dict[str, str] = Field(description="booking, mailbox, or reconcile step and run")
    reason: str = Field(description="why calsync gave up on it, and what to fix")
    at: str | None = Field(description="when it was dead-lettered (ISO 8601)")
    attempts: int = Field(description="how many times it was tried")


class DeadLettersOut(BaseModel):
    dead_letters: list[DeadLetterOut]


class NotReplayedOut(BaseModel):
    id: str
    reason: str


class ReplayOut(BaseModel):
    replayed: int
    ids: list[str] = Field(description="the dead letters sent back to their queues, to be processed again")
    not_replayed: list[NotReplayedOut] = Field(description="listed, but not in their queue at this moment")


def routes(deps: Callable[[], AdminDeps]) -> Router:
    """The dead letters' routes; ``deps`` is called per request."""
    router = new_router()

    @router.get(
        "/admin/integrations/<integration_id>/dead-letters",
        summary="Messages calsync gave up on, with why",
        responses={
            200: {
                "description": "the integration's dead letters, newest first",
                "content": {"application/json": {"model": DeadLettersOut}},
            },
            404: error_response("no such integration"),
            503: error_response("a dead-letter queue or the table could not be read: try again shortly"),
        },
    )
    def list_dead_letters(integration_id: Annotated[str, Path()]) -> DeadLettersOut:
        letters = dead_letters.dead_letters(deps(), integration_id)
        return DeadLettersOut(
            dead_letters=[DeadLetterOut(**dead_letters.letter_json(letter)) for letter in letters]
        )

    @router.post(
        "/admin/integrations/<integration_id>/dead-letters/replay",
        summary="Send dead letters back to their queues, to be processed again",
        responses={
            202: {
                "description": "sent back; each is processed as a new message, and the status follows",
                "content": {"application/json": {"model": ReplayOut}},
            },
            400: error_response("an id that is not a dead letter's id, an empty list, or more than 100 ids"),
            404: error_response(
                "no such integration, or an id that is not one of its dead letters (nothing replayed)"
            ),
            422: error_response('the body is not {"ids": [...]}'),
            503: error_response(
                "a queue or the table could not be reached: try again shortly (nothing is lost)"
            ),
        },
    )
    def replay(integration_id: Annotated[str, Path()], body: ReplayIn) -> Response[dict[str, Any]]:
        answer = dead_letters.replay(deps(), integration_id, body.ids)
        return json_answer(202, ReplayOut(**answer).model_dump())

    return router
