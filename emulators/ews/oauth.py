"""The OAuth2 token endpoint (client-credentials grant), standing in for Microsoft Entra ID."""

from __future__ import annotations

from aiohttp import web

from emulators.ews.keys import EMULATOR


async def token(request: web.Request) -> web.Response:
    """POST /{tenant}/oauth2/v2.0/token, form-encoded, as exchangelib's OAuth2Credentials send it."""
    if not request.content_type.startswith("application/x-www-form-urlencoded"):
        return web.json_response(
            {"error": "invalid_request", "error_description": "The request body must be form-encoded."},
            status=400,
        )
    form = await request.post()
    status, body = request.app[EMULATOR].auth.issue_token(request.match_info["tenant"], dict(form))
    return web.json_response(body, status=status)


def register(app: web.Application) -> None:
    app.router.add_post("/{tenant}/oauth2/v2.0/token", token)
