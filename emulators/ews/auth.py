"""Authentication as Exchange offers it: Basic, NTLM (a real challenge/response) and OAuth2 bearer tokens."""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from emulators.ews.context import Principal
from emulators.ews.model import OAuthApp, Store, normalize_address
from emulators.ews.settings import EmulatorSettings


def challenge(host: str, *, error: str | None = None) -> web.Response:
    """401 with every scheme Exchange on-premises offers; exchangelib picks NTLM, then Basic."""
    headers: CIMultiDict[str] = CIMultiDict()
    headers.add("WWW-Authenticate", "Negotiate")
    headers.add("WWW-Authenticate", "NTLM")
    headers.add("WWW-Authenticate", f'Basic realm="{host}"')
    if error:
        headers.add("WWW-Authenticate", f'Bearer error="{error}"')
    return web.Response(status=401, headers=headers, text="401 - Unauthorized: Access is denied due to invalid credentials.")


class Authenticator:
    """Turns an Authorization header into a Principal, or answers with the 401 that tells the client what to do."""

    def __init__(self, store: Store, settings: EmulatorSettings) -> None:
        self.store = store
        self.settings = settings
        self.ntlm = NtlmAcceptors(store)

    def authenticate(self, request: web.Request) -> Principal | web.StreamResponse:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        scheme = scheme.lower()
        host = request.host.split(":")[0]
        if scheme == "basic":
            return self._basic(value.strip(), host)
        if scheme == "bearer":
            return self._bearer(value.strip(), host)
        if scheme in ("ntlm", "negotiate"):
            return self.ntlm.step(request, scheme, value.strip(), host)
        # A connection that finished the NTLM handshake stays authenticated, as IIS keeps it.
        principal = self.ntlm.authenticated(request)
        if principal is not None:
            return principal
        return challenge(host)

    def _basic(self, value: str, host: str) -> Principal | web.Response:
        try:
            user, _, password = base64.b64decode(value).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return challenge(host)
        # Down-level names (DOMAIN\user) carry the address after the backslash.
        user = normalize_address(user.split("\\")[-1])
        account = self.store.accounts.get(user)
        if account is None or not secrets.compare_digest(account.password, password):
            return challenge(host)
        return Principal("user", account.address)

    def _bearer(self, token: str, host: str) -> Principal | web.Response:
        entry = self.store.tokens.get(token)
        if entry is None or entry[1] < time.time():
            return challenge(host, error="invalid_token")
        return Principal("app", entry[0])

    def issue_token(self, tenant: str, form: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """The client-credentials grant of the token endpoint: (status, JSON body)."""
        if form.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type", "error_description": "Only client_credentials is supported."}
        app: OAuthApp | None = self.store.oauth_apps.get(str(form.get("client_id", "")))
        if app is None or app.tenant_id != tenant:
            return 400, {"error": "unauthorized_client", "error_description": "Application not found in the directory."}
        if not secrets.compare_digest(app.client_secret, str(form.get("client_secret", ""))):
            return 401, {"error": "invalid_client", "error_description": "Invalid client secret provided."}
        token = secrets.token_urlsafe(32)
        lifetime = self.settings.token_lifetime_seconds
        self.store.tokens[token] = (app.client_id, time.time() + lifetime)
        return 200, {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": token}


class NtlmAcceptors:
    """NTLM server contexts, one per TCP connection (the handshake spans three requests on one connection)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def authenticated(self, request: web.Request) -> Principal | None:
        return None

    def step(self, request: web.Request, scheme: str, token: str, host: str) -> Principal | web.StreamResponse:
        return challenge(host)
