"""Authentication as Exchange offers it: Basic, NTLM (a real challenge/response) and OAuth2 bearer tokens."""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import secrets
import tempfile
import threading
import time
import weakref
from typing import Any

import spnego
from aiohttp import web
from multidict import CIMultiDict
from spnego._ntlm_raw.crypto import lmowfv1, ntowfv1
from spnego.exceptions import SpnegoError

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
    return web.Response(
        status=401, headers=headers, text="401 - Unauthorized: Access is denied due to invalid credentials."
    )


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
        if form.get("grant_type") == "refresh_token" and not form.get("refresh_token"):
            # requests-oauthlib "refreshes" an expired client-credentials token this way; Entra ID never issued a
            # refresh token for that grant and answers so.
            return 400, {
                "error": "invalid_request",
                "error_description": "AADSTS900144: The request body must contain the following parameter: "
                "'refresh_token'.",
            }
        if form.get("grant_type") != "client_credentials":
            return 400, {
                "error": "unsupported_grant_type",
                "error_description": "Only client_credentials is supported.",
            }
        app: OAuthApp | None = self.store.oauth_apps.get(str(form.get("client_id", "")))
        if app is None or app.tenant_id != tenant:
            return 400, {
                "error": "unauthorized_client",
                "error_description": "Application not found in the directory.",
            }
        if not secrets.compare_digest(app.client_secret, str(form.get("client_secret", ""))):
            return 401, {"error": "invalid_client", "error_description": "Invalid client secret provided."}
        token = secrets.token_urlsafe(32)
        lifetime = self.settings.token_lifetime_seconds
        self.store.tokens[token] = (app.client_id, time.time() + lifetime)
        return 200, {
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": token,
        }


class NtlmAcceptors:
    """NTLM server contexts, one per TCP connection (the handshake spans three requests on one connection).

    pyspnego's acceptor reads its user database from the file named by ``NTLM_USER_FILE``; the emulator writes the
    store's accounts to a private temporary file and sets the variable only while an acceptor runs, under a lock,
    so several emulators in one process (and the test's own NTLM client) never see each other's file.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        # transport → the acceptor mid-handshake, or the Principal once the handshake completed on that connection.
        self._connections: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
        self._file: str | None = None
        self._file_accounts: tuple[tuple[str, str], ...] | None = None

    def close(self) -> None:
        """Remove the credential file."""
        if self._file is not None:
            self._cleanup()
            self._file = None

    def _user_file(self) -> str:
        """The NTLM_USER_FILE for the current accounts, rewritten whenever accounts change."""
        accounts = tuple(sorted((a.address, a.password) for a in self.store.accounts.values()))
        if self._file is None:
            fd, self._file = tempfile.mkstemp(prefix="ews-emulator-ntlm-", suffix=".txt")
            os.close(fd)
            # Removed on close(), or when the emulator is dropped, or at interpreter exit.
            self._cleanup = weakref.finalize(self, _remove, self._file)
            self._file_accounts = None
        if accounts != self._file_accounts:
            # smbpasswd format (user:uid:LM:NT:flags:time) so that any password, colons included, can be stored.
            # exchangelib sends an e-mail-style user as "\\user": an empty domain, the address as the user name.
            lines = [
                f"{address}:0:{lmowfv1(password).hex()}:{ntowfv1(password).hex()}:[U]:LCT-00000000"
                for address, password in accounts
            ]
            with open(self._file, "w", encoding="utf-8") as handle:
                handle.write("\n".join(lines) + "\n")
            self._file_accounts = accounts
        return self._file

    def _run(self, fn: Any) -> Any:
        with _ENV_LOCK:
            previous = os.environ.get("NTLM_USER_FILE")
            os.environ["NTLM_USER_FILE"] = self._user_file()
            try:
                return fn()
            finally:
                if previous is None:
                    del os.environ["NTLM_USER_FILE"]
                else:
                    os.environ["NTLM_USER_FILE"] = previous

    def authenticated(self, request: web.Request) -> Principal | None:
        """The principal of a connection that completed the NTLM handshake earlier (IIS keeps it authenticated)."""
        state = self._connections.get(request.transport) if request.transport is not None else None
        if isinstance(state, Principal) and state.name in self.store.accounts:
            return state
        return None

    def step(
        self, request: web.Request, scheme: str, token: str, host: str
    ) -> Principal | web.StreamResponse:
        """Advance the handshake of this connection: Type 1 → 401 with a Type 2 challenge, Type 3 → the user."""
        transport = request.transport
        try:
            data = base64.b64decode(token, validate=True)
        except (binascii.Error, ValueError):
            data = b""
        if transport is None or len(data) < 12 or not data.startswith(b"NTLMSSP\x00"):
            return challenge(host)
        message_type = int.from_bytes(data[8:12], "little")
        prefix = "Negotiate" if scheme == "negotiate" else "NTLM"
        if message_type == 1:
            try:
                acceptor = self._run(lambda: spnego.server(protocol="ntlm"))
                reply = self._run(lambda: acceptor.step(data))
            except SpnegoError:
                return challenge(host)
            self._connections[transport] = acceptor
            # Keep-alive matters: the client must send Type 3 on this same connection.
            return web.Response(
                status=401,
                headers={"WWW-Authenticate": f"{prefix} {base64.b64encode(reply or b'').decode()}"},
                text="401 - Unauthorized: Access is denied due to invalid credentials.",
            )
        acceptor = self._connections.pop(transport, None)
        if message_type != 3 or acceptor is None or isinstance(acceptor, Principal):
            return challenge(host)
        try:
            self._run(lambda: acceptor.step(data))
        except SpnegoError:
            # Wrong password, unknown user, or a tampered message: start over, as IIS does.
            return challenge(host)
        if not acceptor.complete or not acceptor.client_principal:
            return challenge(host)
        user = normalize_address(str(acceptor.client_principal).split("\\")[-1])
        if user not in self.store.accounts:
            return challenge(host)
        principal = Principal("user", user)
        self._connections[transport] = principal
        return principal


_ENV_LOCK = threading.Lock()


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
