"""Everything needed to talk to one Exchange: credentials, version, TLS, and cached exchangelib Accounts.

Building an Account sends nothing (exchangelib >= 5.5.1): the server version is configured instead of probed, the
authentication type instead of detected, and autodiscover is off, so the first request to Exchange is the one the
caller asked for.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from collections import OrderedDict
from typing import Any
from urllib.parse import urlsplit

import requests
from exchangelib import (
    BASIC,
    DELEGATE,
    IMPERSONATION,
    NTLM,
    OAUTH2,
    UTC,
    Account,
    Configuration,
    Credentials,
    OAuth2Credentials,
    Version,
)
from exchangelib.protocol import BaseProtocol, FailFast, Protocol
from exchangelib.version import EXCHANGE_2013, VERSIONS

from calsync.domain import (
    AccessType,
    ExchangeAuth,
    ExchangeConnection,
    InvalidInputError,
    PermanentError,
    validation,
)

_AUTH_TYPES = {ExchangeAuth.BASIC: BASIC, ExchangeAuth.NTLM: NTLM, ExchangeAuth.OAUTH2: OAUTH2}
# A Lambda has a deadline: a hung Exchange must become a retryable error well before it.
DEFAULT_TIMEOUT_SECONDS = 30.0
# Connections per Exchange server and credentials in one process: Microsoft advises at most 10 open requests.
MAX_CONNECTIONS = 4


def version_for(server_version: str) -> Any:
    """The exchangelib Version for a RequestServerVersion name, with a build that matches it, so nothing is probed."""
    for build, api_version, _ in VERSIONS:
        if api_version == server_version:
            return Version(build=build, api_version=api_version)
    known = sorted({api_version for _, api_version, _ in VERSIONS})
    raise PermanentError(f"unknown Exchange server_version {server_version!r}: use one of {', '.join(known)}")


def supports_working_elsewhere(version: Any) -> bool:
    """LegacyFreeBusyStatus WorkingElsewhere exists from Exchange 2013 on."""
    return bool(version.build >= EXCHANGE_2013)


def checked_mailbox(mailbox: str) -> str:
    """``mailbox`` unchanged when it is an address Exchange can be asked about; otherwise PermanentError, before
    anything is sent (an address with a NUL in ``X-AnchorMailbox`` makes Exchange refuse every request, for ever)."""
    try:
        validation.mailbox_address(mailbox)
    except InvalidInputError as exc:
        raise PermanentError(
            f"mailbox {mailbox!r} is not a valid address, so nothing was sent to Exchange for it: fix the mapping "
            f"(map the staff member or resource to the mailbox's SMTP address, name@domain)"
        ) from exc
    return mailbox


# ---- TLS -----------------------------------------------------------------------------------------------------------


def origin(url: str) -> tuple[str, str, int]:
    """Scheme, host and port of ``url``: what TLS verification is decided on."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or (443 if scheme == "https" else 80)


class SelectiveVerifyHTTPAdapter(requests.adapters.HTTPAdapter):
    """Verifies TLS certificates except for the endpoints an integration turned verification off for.

    exchangelib's adapter class is process-wide (``BaseProtocol.HTTP_ADAPTER_CLS``) while one Lambda process serves
    many integrations, so the decision is made per request from a registry of origins, never globally.
    """

    _unverified: set[tuple[str, str, int]] = set()
    _lock = threading.Lock()

    @classmethod
    def skip_verification_for(cls, url: str) -> None:
        """Stop verifying certificates for ``url``'s origin (this integration's endpoint only)."""
        with cls._lock:
            cls._unverified = cls._unverified | {origin(url)}

    @classmethod
    def verifies(cls, url: str) -> bool:
        """Whether certificates of ``url``'s origin are verified."""
        return origin(url) not in cls._unverified

    @classmethod
    def forget(cls) -> None:
        """Verify everything again (tests)."""
        with cls._lock:
            cls._unverified = set()

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        super().cert_verify(conn, url, verify if self.verifies(url) else False, cert)

    def get_connection_with_tls_context(
        self, request: Any, verify: Any, proxies: Any = None, cert: Any = None
    ) -> Any:
        # requests >= 2.32.3 decides verification here, when it picks a pooled connection.
        verify = verify if self.verifies(request.url) else False
        return super().get_connection_with_tls_context(request, verify, proxies=proxies, cert=cert)


def install_tls_adapter() -> None:
    """Make exchangelib use the selective adapter (idempotent)."""
    if BaseProtocol.HTTP_ADAPTER_CLS is not SelectiveVerifyHTTPAdapter:
        BaseProtocol.HTTP_ADAPTER_CLS = SelectiveVerifyHTTPAdapter


# ---- credentials ---------------------------------------------------------------------------------------------------


class ScopedCredentials(Credentials):  # type: ignore[misc]
    """User name and password that also carry how they are used.

    exchangelib caches one Protocol (session pool, authenticated connections, version) per endpoint and credentials,
    whatever the auth type; the extra attribute takes part in equality, so two integrations using the same account
    with, say, Basic and NTLM never share a connection.
    """

    def __init__(self, username: str, password: str, *, scope: tuple[str, ...]) -> None:
        super().__init__(username, password)
        self.scope = scope


class TenantOAuth2Credentials(OAuth2Credentials):  # type: ignore[misc]
    """Client-credentials grant whose token endpoint may be moved from Entra ID's (tests, sovereign clouds)."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        tenant_id: str,
        token_url: str | None,
        scope: tuple[str, ...],
    ) -> None:
        super().__init__(client_id=client_id, client_secret=client_secret, tenant_id=tenant_id)
        # Both take part in equality (and so in exchangelib's Protocol cache key).
        self.custom_token_url = token_url.format(tenant=tenant_id) if token_url else None
        self.scope_key = scope

    @property
    def token_url(self) -> str:
        return self.custom_token_url or str(super().token_url)

    def _key(self) -> tuple[Any, ...]:
        return self.client_id, self.client_secret, self.tenant_id, self.custom_token_url, self.scope_key

    # exchangelib's own equality reads every attribute, including the OAuth client it caches on first use, which would
    # change the hash and defeat its Protocol cache: every mailbox would then fetch its own token.
    def __eq__(self, other: object) -> bool:
        return isinstance(other, TenantOAuth2Credentials) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


def _field(secret: dict[str, str], name: str, secret_name: str) -> str:
    value = secret.get(name)
    if not value:
        raise PermanentError(f"secret {secret_name!r} has no {name!r}")
    return value


def build_credentials(connection: ExchangeConnection, secret: dict[str, str]) -> tuple[Any, str]:
    """exchangelib credentials from the secret's fields, and the name of who connects (for messages)."""
    scope = (connection.auth.value, connection.server_version)
    if connection.auth is ExchangeAuth.OAUTH2:
        client_id = _field(secret, "client_id", connection.secret_name)
        credentials = TenantOAuth2Credentials(
            client_id=client_id,
            client_secret=_field(secret, "client_secret", connection.secret_name),
            tenant_id=_field(secret, "tenant_id", connection.secret_name),
            token_url=connection.token_url,
            scope=scope,
        )
        return credentials, f"OAuth application {client_id}"
    username = _field(secret, "username", connection.secret_name)
    password = _field(secret, "password", connection.secret_name)
    return ScopedCredentials(username, password, scope=scope), username


# ---- accounts ------------------------------------------------------------------------------------------------------


def secret_fingerprint(secret: dict[str, str]) -> str:
    """Identifies a secret's values without keeping them in a cache key."""
    return hashlib.sha256(json.dumps(secret, sort_keys=True).encode()).hexdigest()


class AccountCache:
    """exchangelib Accounts per connection, secret and mailbox: cheap to build, but their Protocol holds the pooled
    (possibly NTLM-authenticated) connection and the OAuth token, which are worth keeping across invocations.

    The key includes the secret's values, so a rotated secret gets new Accounts, and the old secret's connections are
    closed and dropped from exchangelib's process-wide cache.
    """

    def __init__(self, max_accounts: int = 1024) -> None:
        self._accounts: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self._credentials: dict[tuple[ExchangeConnection, str], Any] = {}
        self._max = max_accounts
        self._lock = threading.Lock()

    def account(
        self, connection: ExchangeConnection, secret: dict[str, str], mailbox: str, timeout: float
    ) -> Any:
        """The Account for ``mailbox`` reached through ``connection`` with the credentials in ``secret``;
        PermanentError for a mailbox that is not an address (nothing is sent for it)."""
        checked_mailbox(mailbox)
        fingerprint = secret_fingerprint(secret)
        key = (connection, fingerprint, mailbox.lower(), timeout)
        with self._lock:
            account = self._accounts.get(key)
            if account is not None:
                self._accounts.move_to_end(key)
                return account
            credentials = self._credentials_for(connection, secret, fingerprint)
            account = _new_account(connection, credentials, mailbox, timeout)
            self._accounts[key] = account
            while len(self._accounts) > self._max:
                self._accounts.popitem(last=False)
            return account

    def protocol(self, connection: ExchangeConnection, secret: dict[str, str], timeout: float) -> Any:
        """The exchangelib Protocol (pooled connections, OAuth token, the version Exchange answered) that the
        connection's Accounts share: for requests that act for no mailbox."""
        with self._lock:
            credentials = self._credentials_for(connection, secret, secret_fingerprint(secret))
        protocol = Protocol(config=configuration(connection, credentials))
        protocol.TIMEOUT = timeout
        return protocol

    def _credentials_for(
        self, connection: ExchangeConnection, secret: dict[str, str], fingerprint: str
    ) -> Any:
        """The one credentials object of a connection and secret (under the lock); an older secret's are dropped."""
        for stale in [k for k in self._credentials if k[0] == connection and k[1] != fingerprint]:
            self._forget(*stale)
        credentials = self._credentials.get((connection, fingerprint))
        if credentials is None:
            credentials, _ = build_credentials(connection, secret)
            self._credentials[(connection, fingerprint)] = credentials
        return credentials

    def _forget(self, connection: ExchangeConnection, fingerprint: str) -> None:
        credentials = self._credentials.pop((connection, fingerprint))
        for key in [k for k in self._accounts if k[0] == connection and k[1] == fingerprint]:
            del self._accounts[key]
        # The old secret's sessions (and token) must not linger in exchangelib's process-wide Protocol cache.
        with contextlib.suppress(KeyError):
            protocol, _ = Protocol._protocol_cache.pop((connection.endpoint, credentials))
            if isinstance(protocol, Protocol):
                protocol.close()

    def clear(self) -> None:
        """Forget every Account (tests)."""
        with self._lock:
            self._accounts.clear()
            self._credentials.clear()


def _new_account(connection: ExchangeConnection, credentials: Any, mailbox: str, timeout: float) -> Any:
    config = configuration(connection, credentials)
    # OAuth2 client credentials act through impersonation (an app-only token has no user to delegate from); the
    # ExchangeImpersonation header then comes from the Account, so one token serves every mailbox.
    impersonate = connection.access_type is AccessType.IMPERSONATION or connection.auth is ExchangeAuth.OAUTH2
    account = Account(
        primary_smtp_address=mailbox,
        config=config,
        autodiscover=False,
        access_type=IMPERSONATION if impersonate else DELEGATE,
        default_timezone=UTC,
    )
    # Per Protocol instance (shadowing the class default of 120 s), which this connection's Accounts share.
    account.protocol.TIMEOUT = timeout
    return account


def configuration(connection: ExchangeConnection, credentials: Any) -> Any:
    """The exchangelib Configuration of every Account of ``connection`` (and so of their shared Protocol)."""
    return Configuration(
        service_endpoint=connection.endpoint,
        credentials=credentials,
        auth_type=_AUTH_TYPES[connection.auth],
        version=version_for(connection.server_version),
        retry_policy=FailFast(),  # a Lambda must not sleep: throttling becomes RetryableError(delay_seconds)
        # A booking's mailboxes are written at once (Executor); exchangelib's default is one connection per server
        # and credentials, which would make them queue for it.
        max_connections=MAX_CONNECTIONS,
    )
