"""Answers the admin API's routes share: JSON bodies with a status code, and the error body."""

from __future__ import annotations

import binascii
from typing import Any, TypeVar

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse

from calsync.transport.admin.schemas import ErrorOut

T = TypeVar("T")


def error_response(description: str) -> OpenAPIResponse:
    """An error status in a route's ``responses``: when it is answered, with the error body's schema."""
    return {"description": description, "content": {"application/json": {"model": ErrorOut}}}


class Refused(Exception):
    """A request refused by the transport itself (a header missing, a body in a format the route does not take):
    answered with ``status`` and the error body, by ``build_admin_api``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def body_text(event: Any) -> str:
    """The request's body as text (API Gateway may hand it over base64-encoded); 400 when it is not UTF-8."""
    try:
        return str(event.decoded_body or "")
    except (UnicodeDecodeError, binascii.Error):
        raise Refused(400, "the body is not UTF-8 text: save the file as UTF-8 and send it again") from None


def json_answer(status: int, body: Any, *, etag: int | None = None) -> Response[Any]:
    """A JSON answer; ``etag``: the version of what it shows, as an ``ETag`` header (``"3"``)."""
    headers = None if etag is None else {"ETag": f'"{etag}"'}
    return Response(
        status_code=status, content_type=content_types.APPLICATION_JSON, body=body, headers=headers
    )


def error(status: int, message: str, **extra: Any) -> Response[dict[str, Any]]:
    return json_answer(status, {"message": message, **extra})


def accepted(body: T) -> Response[T]:
    return json_answer(202, body)


def no_content() -> Response[None]:
    return json_answer(204, None)


def new_router() -> Router:
    """A router of routes, included by ``build_admin_api``."""
    return Router()  # type: ignore[no-untyped-call]  # Powertools leaves its __init__ unannotated


def refusals(codes: dict[int, str]) -> dict[int, OpenAPIResponse]:
    """The error answers of a route for its OpenAPI document: each status with when it is given; the body is
    ``{"message": ...}``."""
    return {
        status: {"description": when, "content": {"application/json": {"model": ErrorOut}}}
        for status, when in codes.items()
    }
