"""The HTTP front: API Gateway (REST, proxy integration) in front of the ``jrni_webhook`` and ``admin`` handlers.

Routes are the template's: ``POST /webhooks/jrni/{integration_id}`` and ``ANY /admin``, ``ANY /admin/{proxy+}``
(with or without the ``/v1`` stage prefix). Beside them, the local stack's own ``GET /_local/cpu`` (not in AWS): the
CPU seconds the stack process spent so far, and how much of it inside the functions (``local.cpu``). Handlers run in a thread pool, as blocking code, so the loop keeps
serving while a handler waits on moto, JRNI or Exchange.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web

from local.events import STAGE, LambdaContext, rest_event

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
ContextFactory = Callable[[], LambdaContext]

log = logging.getLogger("local.front")

# API Gateway's payload limit: larger bodies never reach a function (the webhook refuses anything over 256 KB).
MAX_BODY_BYTES = 10 * 1024 * 1024
_HANDLERS = web.AppKey("handlers", dict)
_POOL = web.AppKey("pool", ThreadPoolExecutor)


def _gateway_error(status: int, message: str) -> web.Response:
    """An answer made by API Gateway itself, shaped as it shapes them."""
    return web.json_response(
        {"message": message}, status=status, headers={"x-amzn-ErrorType": "LocalGatewayError"}
    )


def _route(method: str, path: str) -> tuple[str, str, dict[str, str] | None] | None:
    """(function, resource, path parameters) for a request path without its stage, or None when no route matches."""
    parts = path.split("/")
    if method == "POST" and len(parts) == 4 and parts[1:3] == ["webhooks", "jrni"] and parts[3]:
        return "jrni_webhook", "/webhooks/jrni/{integration_id}", {"integration_id": parts[3]}
    if path == "/admin":
        return "admin", "/admin", None
    if path.startswith("/admin/") and len(path) > len("/admin/"):
        return "admin", "/admin/{proxy+}", {"proxy": path[len("/admin/") :]}
    return None


async def _dispatch(request: web.Request) -> web.StreamResponse:
    path = request.path
    if path == f"/{STAGE}" or path.startswith(f"/{STAGE}/"):
        path = path[len(STAGE) + 1 :] or "/"
    route = _route(request.method, path)
    if route is None:
        # What API Gateway answers for a method or path it has no route for.
        return _gateway_error(403, "Missing Authentication Token")
    function, resource, path_parameters = route
    handler, context_factory = request.app[_HANDLERS][function]
    body = await request.read()
    event = rest_event(
        request.method,
        path,
        resource,
        headers=list(request.headers.items()),
        query=list(request.query.items()),
        path_parameters=path_parameters,
        body=body,
        source_ip=request.remote or "127.0.0.1",
    )
    loop = asyncio.get_running_loop()
    try:
        answer = await loop.run_in_executor(request.app[_POOL], handler, event, context_factory())
    except Exception:
        # A function that raises is a 502 from API Gateway; its traceback is in the function's log.
        log.error("%s raised:\n%s", function, traceback.format_exc())
        return _gateway_error(502, "Internal server error")
    return _response(answer)


def _response(answer: dict[str, Any]) -> web.Response:
    if not isinstance(answer, dict) or "statusCode" not in answer:
        return _gateway_error(502, "Internal server error")
    raw = answer.get("body") or ""
    body = base64.b64decode(raw) if answer.get("isBase64Encoded") else str(raw).encode()
    response = web.Response(status=int(answer["statusCode"]), body=body)
    for name, values in (answer.get("multiValueHeaders") or {}).items():
        for value in values:
            response.headers.add(name, str(value))
    for name, value in (answer.get("headers") or {}).items():
        response.headers[name] = str(value)
    return response


def build_front(
    webhook: tuple[Handler, ContextFactory],
    admin: tuple[Handler, ContextFactory],
    *,
    workers: int = 8,
    cpu: Callable[[], dict[str, Any]] | None = None,
) -> web.Application:
    """The aiohttp application: each function is its handler and a factory of Lambda contexts; ``cpu`` answers
    ``GET /_local/cpu``."""
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[_HANDLERS] = {"jrni_webhook": webhook, "admin": admin}
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lambda-api")
    app[_POOL] = pool

    async def close_pool(app: web.Application) -> None:
        pool.shutdown(wait=False, cancel_futures=True)

    app.on_cleanup.append(close_pool)
    if cpu is not None:
        measure = cpu

        async def cpu_times(request: web.Request) -> web.Response:
            return web.json_response(measure())

        app.router.add_get("/_local/cpu", cpu_times)
    # Every path, control characters included (API Gateway hands those to the function too).
    app.router.add_route("*", r"/{tail:[\s\S]*}", _dispatch)
    return app
