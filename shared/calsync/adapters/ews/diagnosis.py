"""``ExchangeCheck`` for Exchange Web Services: each step from calsync to a mailbox's calendar, told apart.

The endpoint is first reached without credentials (a plain HTTPS request, verified against the same CA bundle
exchangelib uses), so that an unreachable host, a refused port and a certificate that does not verify are three
different answers. Then the connection's own exchangelib Protocol and Accounts (``AccountCache``, as the provider
and the feed use them) authenticate, read the server version Exchange answers and open each mailbox's calendar.
Reference: ../shared/reference/ews-notes.md.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import requests
from exchangelib import errors as ews
from exchangelib.fields import FieldPath
from exchangelib.folders import Calendar, FolderCollection
from exchangelib.properties import ENTRY_ID, EWS_ID, AlternateId
from exchangelib.services import ConvertId
from oauthlib.oauth2 import OAuth2Error

from calsync.adapters.ews.connection import version_for
from calsync.adapters.ews.session import MailboxSession, calendar_of, create_item, delete_item, ews_utc
from calsync.adapters.network import ConnectionFailure, causes, connection_failure
from calsync.domain import AccessType, CalsyncError, ExchangeAuth, ExchangeConnection
from calsync.domain.diagnosis import (
    EXCHANGE_AUTHENTICATION,
    EXCHANGE_AUTODISCOVER,
    EXCHANGE_REACHABLE,
    EXCHANGE_TLS,
    EXCHANGE_VERSION,
    Check,
    CheckState,
    mailbox_checks,
)

# The unauthenticated first request: a connection within 5 s, an answer within 10 s.
REACH_TIMEOUT = (5.0, 10.0)
PROBE_SUBJECT = "calsync connection test (deleted at once; safe to delete)"
_RIGHTS = FieldPath(field=Calendar.get_field_by_fieldname("effective_rights"))


class EwsDiagnosis:
    """The checks of one integration's Exchange; ``secret`` reads its credentials when they are first needed, so a
    missing secret is a failed check like any other."""

    def __init__(self, connection: ExchangeConnection, secret: Callable[[], dict[str, str]]) -> None:
        self.connection = connection
        self._secret = secret
        self._session: _Session | None = None

    # ---- the connection ----------------------------------------------------------------------------------------

    def check(self) -> Iterator[Check]:
        """Reachable, TLS, authentication, the server version, autodiscover; nothing more after a failure."""
        reached = self._reach()
        yield from reached
        if any(check.state is CheckState.FAILED for check in reached):
            return
        session = self._open_session()
        if isinstance(session, Check):
            yield session
            return
        if self.connection.auth is ExchangeAuth.OAUTH2:
            yield from self._oauth_token(session)
            return
        yield from self._version(session)

    def _reach(self) -> list[Check]:
        endpoint = self.connection.endpoint
        parts = urlsplit(endpoint)
        where = f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
        https = parts.scheme == "https"
        try:
            answer = requests.get(endpoint, timeout=REACH_TIMEOUT, allow_redirects=False)
        except requests.exceptions.SSLError as exc:
            if self.connection.verify_tls:
                return [
                    Check.ok(EXCHANGE_REACHABLE, f"{where} answers, over TLS"),
                    Check.failed(
                        EXCHANGE_TLS,
                        f"the TLS certificate of {where} could not be verified ({_tls_reason(exc)})",
                        f"install a certificate on {parts.hostname} issued by a public certificate authority (with "
                        f"its intermediate certificates), or set verify_tls false for this integration (not "
                        f"advised: anyone on the way could read the credentials)",
                    ),
                ]
            return self._reach_unverified(where, _tls_reason(exc))
        except requests.exceptions.RequestException as exc:
            return [_unreachable(where, exc)]
        reached = Check.ok(
            EXCHANGE_REACHABLE, f"{where} answers (HTTP {answer.status_code} without credentials)"
        )
        if answer.status_code == 404:
            return [
                Check.failed(
                    EXCHANGE_REACHABLE,
                    f"{where} answers, but has no EWS at {parts.path or '/'} (HTTP 404)",
                    "set the integration's endpoint to the EWS URL, usually https://<mail host>/EWS/Exchange.asmx",
                )
            ]
        if not https:
            return [
                reached,
                Check.skipped(EXCHANGE_TLS, "the endpoint is plain http (test integrations only)"),
            ]
        if not self.connection.verify_tls:
            return [
                reached,
                Check.warning(
                    EXCHANGE_TLS,
                    f"TLS verification is off for this integration, though the certificate of {where} is valid",
                    "set verify_tls true for this integration",
                ),
            ]
        return [reached, Check.ok(EXCHANGE_TLS, f"the TLS certificate of {where} is valid and trusted")]

    def _reach_unverified(self, where: str, reason: str) -> list[Check]:
        try:
            requests.get(self.connection.endpoint, timeout=REACH_TIMEOUT, allow_redirects=False, verify=False)
        except requests.exceptions.RequestException as exc:
            return [_unreachable(where, exc)]
        return [
            Check.ok(EXCHANGE_REACHABLE, f"{where} answers, over TLS"),
            Check.warning(
                EXCHANGE_TLS,
                f"TLS verification is off for this integration; the certificate of {where} would not verify "
                f"({reason})",
                "install a certificate issued by a public certificate authority on the server, then set verify_tls "
                "true (until then anyone on the way could read the credentials)",
            ),
        ]

    def _open_session(self) -> _Session | Check:
        if self._session is not None:
            return self._session
        name = self.connection.secret_name
        try:
            version_for(self.connection.server_version)
        except CalsyncError as exc:
            return Check.failed(EXCHANGE_AUTHENTICATION, str(exc), "correct the integration's server_version")
        try:
            secret = self._secret()
            self._session = _Session(self.connection, secret)
        except CalsyncError as exc:
            fields = (
                '{"tenant_id", "client_id", "client_secret"}'
                if self.connection.auth is ExchangeAuth.OAUTH2
                else '{"username", "password"}'
            )
            return Check.failed(
                EXCHANGE_AUTHENTICATION,
                f"calsync cannot read the Exchange credentials: {exc}",
                f"store {fields} in the secret {name!r}",
            )
        return self._session

    def _oauth_token(self, session: _Session) -> Iterator[Check]:
        protocol = session.protocol()
        try:
            protocol.release_session(protocol.get_session())  # a new session fetches a token
        except Exception as exc:  # the token endpoint's answer, or the way to it
            yield _refused(EXCHANGE_AUTHENTICATION, exc, session, self.connection)
            return
        yield Check.ok(EXCHANGE_AUTHENTICATION, f"the token endpoint issued an access token to {session.who}")
        yield Check.skipped(
            EXCHANGE_VERSION,
            "an OAuth application's requests always act for a mailbox: the mailbox checks below show whether "
            "Exchange accepts the server version",
        )
        yield _no_autodiscover()

    def _version(self, session: _Session) -> Iterator[Check]:
        protocol = session.protocol()
        # exchangelib's own version probe: a ConvertId of a dummy id needs no mailbox, is refused as malformed, and
        # its answer carries ServerVersionInfo (which exchangelib records on the Protocol).
        probe = AlternateId(id="DUMMY", format=EWS_ID, mailbox=session.who)
        try:
            list(ConvertId(protocol=protocol).call([probe], ENTRY_ID))
        except ews.ResponseMessageError:
            pass  # the dummy id refused: expected
        except Exception as exc:
            yield _refused(EXCHANGE_AUTHENTICATION, exc, session, self.connection)
            return
        auth = self.connection.auth.value.upper() if self.connection.auth is ExchangeAuth.NTLM else "Basic"
        yield Check.ok(EXCHANGE_AUTHENTICATION, f"Exchange accepted the {auth} credentials of {session.who}")
        version = protocol.config.version
        asked = self.connection.server_version
        build = version.build if version is not None else None
        if version is None or version.api_version != asked:
            answered = version.api_version if version is not None else "nothing"
            yield Check.failed(
                EXCHANGE_VERSION,
                f"Exchange refused requests as {asked} and answered as {answered} (build {build})",
                f"set the integration's server_version to {answered}",
            )
            return
        yield Check.ok(EXCHANGE_VERSION, f"Exchange (build {build}) answers requests as {asked}")
        yield _no_autodiscover()

    # ---- a mailbox ---------------------------------------------------------------------------------------------

    def open_mailbox(self, mailbox: str, *, write: bool) -> Iterator[Check]:
        """The mailbox opened (by impersonation or as a delegate) and its calendar read with calsync's rights;
        ``write``: a private, free probe item created and deleted at once."""
        names = mailbox_checks(mailbox, write=write)
        session = self._open_session()
        if isinstance(session, Check):
            yield Check.failed(names[0], session.detail, session.fix or "")
            return
        try:
            account = session.account(mailbox)
            [folder] = FolderCollection(account=account, folders=[calendar_of(account, mailbox)]).get_folders(
                additional_fields={_RIGHTS}
            )
            if isinstance(folder, Exception):
                raise folder
        except Exception as exc:
            yield _refused(names[0], exc, session, self.connection, mailbox)
            return
        access = "as a delegate" if self._delegate else "by impersonation"
        rights = folder.effective_rights
        missing = [
            name
            for name, granted in (
                ("read", rights.read if rights else True),
                ("create", rights.create_contents if rights else True),
                ("change", rights.modify if rights else True),
                ("delete", rights.delete if rights else True),
            )
            if not granted
        ]
        if missing:
            yield Check.failed(
                names[0],
                f"{session.who} opens {mailbox} {access} but may not {' or '.join(missing)} items in its calendar",
                _editor(session.who, mailbox, self.connection),
            )
            return
        yield Check.ok(
            names[0], f"{session.who} opens the calendar of {mailbox} {access}, with Editor rights"
        )
        if write:
            yield from self._write_probe(session, account, mailbox, names[1:])

    @property
    def _delegate(self) -> bool:
        return (
            self.connection.access_type is AccessType.DELEGATE
            and self.connection.auth is not ExchangeAuth.OAUTH2
        )

    def _write_probe(
        self, session: _Session, account: Any, mailbox: str, names: tuple[str, ...]
    ) -> Iterator[Check]:
        created_name, deleted_name = names
        # At 03:00 UTC the next day, for five minutes, private and free: nobody is disturbed and no time is blocked.
        start = (datetime.now(UTC) + timedelta(days=1)).replace(hour=3, minute=0, second=0, microsecond=0)
        try:
            created = create_item(
                account,
                mailbox,
                subject=PROBE_SUBJECT,
                start=ews_utc(start),
                end=ews_utc(start + timedelta(minutes=5)),
                legacy_free_busy_status="Free",
                sensitivity="Private",
            )
        except Exception as exc:
            yield _refused(created_name, exc, session, self.connection, mailbox)
            return
        yield Check.ok(
            created_name, f"created a private, free probe item in {mailbox} at {start:%Y-%m-%d %H:%M} UTC"
        )
        try:
            deleted = delete_item(account, created.id, created.changekey)
            if isinstance(deleted, Exception):
                raise deleted
        except Exception as exc:
            refused = _refused(deleted_name, exc, session, self.connection, mailbox)
            yield Check.failed(
                deleted_name,
                f"the probe item was created but not deleted: {refused.detail}",
                f"delete {PROBE_SUBJECT!r} at {start:%Y-%m-%d %H:%M} UTC from {mailbox}'s calendar; {refused.fix}",
            )
            return
        yield Check.ok(deleted_name, f"deleted the probe item from {mailbox} again")


class _Session(MailboxSession):
    """The connection's Accounts and Protocol, as the provider and the feed reach them."""

    @property
    def who(self) -> str:
        return self._who

    def account(self, mailbox: str) -> Any:
        return self._accounts.account(self.connection, self._secret, mailbox, self._timeout)

    def protocol(self) -> Any:
        return self._accounts.protocol(self.connection, self._secret, self._timeout)


def _no_autodiscover() -> Check:
    return Check.skipped(
        EXCHANGE_AUTODISCOVER,
        "not configured: the integration names its EWS endpoint, so autodiscover is not used",
    )


def _tls_reason(exc: BaseException) -> str:
    """What the TLS library said about the certificate (``self-signed certificate``, ``certificate has expired``)."""
    for cause in causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return str(cause.verify_message or cause.reason or cause)
    return str(exc)[:300]


def _unreachable(where: str, exc: BaseException) -> Check:
    host = where.rsplit(":", 1)[0]
    firewall = (
        "that the firewall lets calsync's outbound address (the VPC's NAT gateway) through to it, and that the "
        "server is running"
    )
    failure = connection_failure(exc)
    if failure is ConnectionFailure.UNRESOLVED:
        return Check.failed(
            EXCHANGE_REACHABLE,
            f"the host name {host} does not resolve",
            "correct the endpoint's host name (it must resolve in public DNS, or in the VPC's DNS)",
        )
    if failure is ConnectionFailure.REFUSED:
        return Check.failed(
            EXCHANGE_REACHABLE,
            f"{where} refused the connection: nothing listens there",
            f"check the endpoint's port, {firewall}",
        )
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return Check.failed(
            EXCHANGE_REACHABLE,
            f"no connection to {where} within {REACH_TIMEOUT[0]:g} s",
            f"check the endpoint's host and port, {firewall}",
        )
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return Check.failed(
            EXCHANGE_REACHABLE,
            f"{where} took the connection but did not answer within {REACH_TIMEOUT[1]:g} s",
            "check the health of the Exchange server (or the proxy in front of it)",
        )
    return Check.failed(
        EXCHANGE_REACHABLE,
        f"{where} could not be reached ({type(exc).__name__}: {str(exc)[:200]})",
        f"check the endpoint, {firewall}",
    )


def _editor(who: str, mailbox: str, connection: ExchangeConnection) -> str:
    if connection.access_type is AccessType.DELEGATE and connection.auth is not ExchangeAuth.OAUTH2:
        return (
            f"give {who} Editor on {mailbox}'s calendar (Add-MailboxFolderPermission -Identity {mailbox}:\\Calendar "
            f"-User {who} -AccessRights Editor; Set-MailboxFolderPermission if it has a lesser role)"
        )
    return _impersonation_fix(who, mailbox, connection)


def _impersonation_fix(who: str, mailbox: str, connection: ExchangeConnection) -> str:
    if connection.auth is ExchangeAuth.OAUTH2:
        return (
            f"grant the application {who} the full_access_as_app permission (Office 365 Exchange Online, with admin "
            f"consent), and include {mailbox} in any application access policy that limits it"
        )
    return (
        f"grant ApplicationImpersonation to {who} (New-ManagementRoleAssignment -Name calsync-impersonation -Role "
        f"ApplicationImpersonation -User {who}, with a management scope that includes {mailbox})"
    )


def _refused(
    name: str,
    exc: BaseException,
    session: _Session,
    connection: ExchangeConnection,
    mailbox: str | None = None,
) -> Check:
    """The failed check for what Exchange (or the way to it) answered."""
    who, secret = session.who, connection.secret_name
    if isinstance(exc, ews.UnauthorizedError):
        return Check.failed(
            name,
            f"Exchange at {connection.endpoint} refused the credentials of {who} (HTTP 401)",
            f"check the user name and password in the secret {secret!r}, that the account is not locked out and its "
            f"password has not expired, and that Exchange accepts {connection.auth.value} authentication",
        )
    if isinstance(exc, OAuth2Error):
        if exc.error in ("invalid_client", "unauthorized_client", "invalid_grant", "invalid_scope"):
            return Check.failed(
                name,
                f"the token endpoint refused {who} ({exc.error})",
                f"check tenant_id, client_id and client_secret in the secret {secret!r}, and that the client secret "
                f"has not expired (Entra ID: the app registration's Certificates & secrets)",
            )
        return Check.failed(
            name,
            f"no OAuth token for {who} ({exc.error})",
            "test again; if it persists, check the token endpoint",
        )
    if isinstance(exc, ews.ErrorImpersonateUserDenied):
        return Check.failed(
            name,
            f"{who} may not impersonate {mailbox} (ErrorImpersonateUserDenied)",
            _impersonation_fix(who, mailbox or "the mailboxes", connection),
        )
    if isinstance(exc, ews.ErrorNonExistentMailbox):
        return Check.failed(
            name,
            f"Exchange has no mailbox {mailbox} (ErrorNonExistentMailbox)",
            "check the address: map the staff member or resource to the mailbox's primary SMTP address",
        )
    if isinstance(exc, ews.ErrorAccessDenied | ews.ErrorFolderNotFound | ews.ErrorItemNotFound):
        return Check.failed(
            name,
            f"{who} may not open the calendar of {mailbox} ({type(exc).__name__})",
            _editor(who, mailbox or "the mailbox", connection),
        )
    if isinstance(exc, ews.ErrorInvalidServerVersion | ews.ErrorInvalidSchemaVersionForMailboxVersion):
        return Check.failed(
            name,
            f"Exchange refused requests as {connection.server_version} ({type(exc).__name__})",
            "set the integration's server_version to the server's Exchange version",
        )
    if isinstance(exc, ews.ErrorServerBusy):
        return Check.failed(
            name,
            f"Exchange is throttling {who} (ErrorServerBusy)",
            "test again in a minute, when fewer requests run",
        )
    if isinstance(exc, requests.exceptions.SSLError) or "CERTIFICATE_VERIFY_FAILED" in str(exc):
        return Check.failed(
            name,
            f"the TLS certificate of {connection.endpoint} could not be verified ({_tls_reason(exc)})",
            "install a certificate issued by a public certificate authority on the server, or set verify_tls false",
        )
    if isinstance(exc, requests.exceptions.RequestException | ews.TransportError | OSError):
        return Check.failed(
            name,
            f"no answer from Exchange at {connection.endpoint} ({type(exc).__name__}: {str(exc)[:200]})",
            "check the server's health and the way to it, then test again",
        )
    if isinstance(exc, ews.EWSError):
        return Check.failed(
            name,
            f"Exchange refused: {type(exc).__name__}: {str(exc)[:200]}",
            "look the code up in Microsoft's EWS reference (ResponseCode) and correct what it names",
        )
    if isinstance(exc, CalsyncError):
        return Check.failed(name, str(exc), "correct what the detail names, then test again")
    raise exc
