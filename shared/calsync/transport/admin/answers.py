"""Answers the admin API's routes share: JSON bodies with a status code, and the error body."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import BaseModel, ConfigDict


class ErrorOut(BaseModel):
    """Every error answer: what is wrong and what to do (some carry more fields)."""

    model_config = ConfigDict(extra="allow")
    message: str


def error_response(description: str) -> OpenAPIResponse:
    """An error status in a route's ``responses``: when it is answered, with the error body's schema."""
    return {"description": description, "content": {"application/json": {"model": ErrorOut}}}


def json_answer(status: int, body: Any) -> Response[Any]:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)


def error(status: int, message: str, **extra: Any) -> Response[dict[str, Any]]:
    return json_answer(status, {"message": message, **extra})


def accepted(body: dict[str, Any]) -> Response[dict[str, Any]]:
    return json_answer(202, body)


def no_content() -> Response[None]:
    return json_answer(204, None)


def new_router() -> Router:
    """A router of routes, included by ``build_admin_api``."""
    return Router()  # type: ignore[no-untyped-call]  # Powertools leaves its __init__ unannotated
