"""Answers the admin API's routes share: JSON bodies with a status code, the error body, and how a route's answers
are described in the OpenAPI document."""

from __future__ import annotations

import binascii
from collections.abc import Mapping
from typing import Any, TypeVar

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse, OpenAPIResponseHeader
from pydantic import BaseModel

from calsync.transport.admin.schemas import ErrorOut

T = TypeVar("T")


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


# What each error status means when a route can answer it; a route words its own where it says more.
_MEANING = {
    400: "the request is malformed (a path parameter, a mailbox, an endpoint, a header): the message says which and why",
    404: "no such integration",
    409: "in conflict with the integration's state (an id in use, a run in progress)",
    412: "the integration changed since it was read (If-Match): read it again",
    413: "the body is too large",
    415: "the body is not in a format this route takes",
    422: "the body or a parameter does not validate: errors names each field (where) and what is wrong (message)",
    428: "If-Match is required: read the integration first (GET) and send its ETag",
    502: "JRNI or Exchange refused the request: the message says what they answered",
    503: "JRNI, Exchange or AWS could not be reached: try again shortly (nothing was half-applied)",
    504: "JRNI or Exchange did not answer within the request's 20 s: try again shortly",
}
# Every route can be answered so: a path parameter is checked before the route runs, a body or query parameter is
# validated, and DynamoDB may be unavailable.
_ALWAYS = (400, 422, 503)
# A route that reaches JRNI or Exchange can also be refused by them, or find them too slow.
_UPSTREAM = (502, 504)


def answers(
    status: int,
    model: type[BaseModel] | None,
    description: str,
    refusals: Mapping[int, str | None] | None = None,
    *,
    upstream: bool = False,
    headers: dict[str, OpenAPIResponseHeader] | None = None,
    error_models: Mapping[int, type[ErrorOut]] | None = None,
) -> dict[int, OpenAPIResponse]:
    """A route's ``responses`` for its OpenAPI document: its one success (``status`` with ``model``'s schema, or no
    body when ``model`` is None; ``headers`` it sets) and every error status it can answer, each with the error body
    (``error_models`` for a status whose body says more than ``ErrorOut``): 400, 422 and 503 always, 502 and 504
    when it reaches JRNI or Exchange (``upstream``), and ``refusals`` (status: when, or None for the usual meaning)."""
    success: OpenAPIResponse = {
        "description": description,
        # No body is written as an empty content (Powertools would otherwise show the route's return type).
        "content": {} if model is None else {"application/json": {"model": model}},
    }
    if headers:
        success["headers"] = headers
    given = dict(refusals or {})
    codes = sorted({*_ALWAYS, *(_UPSTREAM if upstream else ()), *given})
    models = error_models or {}
    return {
        status: success,
        **{
            code: {
                "description": given.get(code) or _MEANING[code],
                "content": {"application/json": {"model": models.get(code, ErrorOut)}},
            }
            for code in codes
        },
    }
