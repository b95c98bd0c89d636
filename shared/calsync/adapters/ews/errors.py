"""exchangelib's and the HTTP stack's errors, translated into the domain's: here and nowhere else.

Each message names the mailbox, the account and what an Exchange administrator has to change, because the operator
reading it in the integration's status is not the person who wrote this code.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import requests
from exchangelib import errors as ews
from oauthlib.oauth2 import OAuth2Error

from calsync.domain import (
    AccessType,
    ConflictError,
    PermanentError,
    RetryableError,
    ThrottledError,
    UnknownOutcomeError,
)

# exchangelib's own wait when Exchange asks for a back-off without saying how long (BaseProtocol.RETRY_WAIT).
DEFAULT_BACK_OFF_SECONDS = 10.0

# Transient by nature: the same request later will most likely work.
_TRANSIENT = (
    ews.ErrorInternalServerTransientError,
    ews.ErrorInternalServerError,
    ews.ErrorTimeoutExpired,
    ews.ErrorTooManyObjectsOpened,
    ews.ErrorExceededConnectionCount,
    ews.ErrorMailboxMoveInProgress,
    ews.ErrorMailboxStoreUnavailable,
    ews.ErrorConnectionFailed,
    ews.MalformedResponseError,  # an HTML error page (429, 502...) from a proxy in front of Exchange
    ews.RateLimitError,
)


@dataclass(frozen=True)
class Where:
    """What an error message must name: the mailbox, who connects as whom, and where the credentials live."""

    mailbox: str
    account: str  # the service account's user name, or the OAuth application's client id
    endpoint: str
    secret_name: str
    access_type: AccessType


def translate(exc: BaseException, where: Where) -> Exception | None:
    """The domain error for ``exc``, or None when it is not an error of Exchange or of the way to it."""
    mailbox, account = where.mailbox, where.account
    if _unanswered(exc):
        return UnknownOutcomeError(
            f"no answer from Exchange at {where.endpoint} for {mailbox} in time ({type(exc).__name__}: {exc}); what "
            f"was sent may still be carried out",
            delay_seconds=DEFAULT_BACK_OFF_SECONDS,
        )
    if isinstance(exc, ews.ErrorServerBusy):
        delay = float(exc.back_off) if exc.back_off else DEFAULT_BACK_OFF_SECONDS
        return ThrottledError(
            f"Exchange is throttling {account} (mailbox {mailbox}): retry in {delay:g} s", delay_seconds=delay
        )
    if isinstance(exc, ews.ErrorIrresolvableConflict):
        return ConflictError(
            f"Exchange refused a change to an item in {mailbox}: it changed in the meantime ({exc})"
        )
    if isinstance(exc, ews.UnauthorizedError):
        return PermanentError(
            f"Exchange at {where.endpoint} refused the credentials of {account}: check the user name and password "
            f"in secret {where.secret_name!r} (and that the account is not locked out)"
        )
    if isinstance(exc, ews.ErrorNonExistentMailbox):
        return PermanentError(f"Exchange knows no mailbox {mailbox}: check the address mapped to it")
    if isinstance(exc, ews.ErrorImpersonateUserDenied):
        return PermanentError(
            f"{account} may not impersonate {mailbox}: grant it the ApplicationImpersonation role over this mailbox "
            f"(New-ManagementRoleAssignment -Role ApplicationImpersonation -User {account}), or for an OAuth "
            f"application the full_access_as_app permission"
        )
    if isinstance(exc, ews.ErrorAccessDenied):
        how = (
            f"give {account} Editor rights on the calendar (Add-MailboxFolderPermission -Identity "
            f"{mailbox}:\\Calendar -User {account} -AccessRights Editor)"
            if where.access_type is AccessType.DELEGATE
            else f"grant {account} ApplicationImpersonation over {mailbox}"
        )
        return PermanentError(f"{account} has no write access to the calendar of {mailbox}: {how}")
    if isinstance(exc, ews.ErrorInvalidSchemaVersionForMailboxVersion | ews.ErrorInvalidServerVersion):
        return PermanentError(
            f"Exchange at {where.endpoint} does not accept the configured server version for mailbox {mailbox}: "
            f"set the integration's server_version to the server's Exchange version ({exc})"
        )
    refused = _http_refusal(exc)
    if refused is not None:
        status, text = refused
        return PermanentError(
            f"Exchange at {where.endpoint} refused the request for {mailbox} with HTTP {status} ({text}): sending it "
            f"again will not help; check the mailbox mapped and the integration's endpoint (the EWS URL, usually "
            f"https://<server>/EWS/Exchange.asmx)"
        )
    if isinstance(exc, _TRANSIENT):
        return RetryableError(
            f"Exchange did not answer for {mailbox} ({type(exc).__name__}: {exc})",
            delay_seconds=DEFAULT_BACK_OFF_SECONDS,
        )
    if isinstance(exc, requests.exceptions.SSLError) or (
        isinstance(exc, ews.TransportError) and "CERTIFICATE_VERIFY_FAILED" in str(exc)
    ):
        return PermanentError(
            f"the TLS certificate of {where.endpoint} could not be verified: install a certificate issued by a "
            f"public authority on the server, or turn verify_tls off for this integration ({exc})"
        )
    if isinstance(exc, ews.ResponseMessageError):
        # Any other Exchange response code is a property of the request or the mailbox: retrying will not help.
        return PermanentError(f"Exchange refused the request for {mailbox}: {type(exc).__name__}: {exc}")
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return RetryableError(  # never connected: nothing was sent
            f"could not reach Exchange at {where.endpoint} ({type(exc).__name__}: {exc})",
            delay_seconds=DEFAULT_BACK_OFF_SECONDS,
        )
    if isinstance(
        exc,
        requests.exceptions.ConnectionError
        | requests.exceptions.Timeout
        | ConnectionError
        | TimeoutError
        | ews.TransportError,
    ):
        # Sent, or maybe sent, with no answer: Exchange may have carried it out, or may still.
        return UnknownOutcomeError(
            f"no answer from Exchange at {where.endpoint} for {mailbox} ({type(exc).__name__}: {exc}); what was "
            f"sent may still be carried out",
            delay_seconds=DEFAULT_BACK_OFF_SECONDS,
        )
    if isinstance(exc, OAuth2Error):
        if exc.error in ("invalid_client", "unauthorized_client", "invalid_grant", "invalid_scope"):
            return PermanentError(
                f"the token endpoint refused OAuth application {account} ({exc.error}): check tenant_id, client_id "
                f"and client_secret in secret {where.secret_name!r}, and that the secret has not expired"
            )
        return RetryableError(
            f"could not get an OAuth token for {account} ({exc.error})",
            delay_seconds=DEFAULT_BACK_OFF_SECONDS,
        )
    if isinstance(exc, ews.EWSError):
        return PermanentError(f"Exchange could not be used for {mailbox}: {type(exc).__name__}: {exc}")
    return None


# exchangelib's message for an HTTP answer it has no better name for (BaseProtocol.raise_response_errors).
_UNKNOWN_FAILURE = re.compile(
    r"^Unknown failure in response\. Code: (\d{3}) headers: .*? content: (.*)$", re.DOTALL
)
# Refusals that are worth sending again: a timeout, throttling, and the lock or conflict answers of a busy server.
_RETRIED_STATUSES = frozenset({408, 409, 423, 425, 429})


def _http_refusal(exc: BaseException) -> tuple[int, str] | None:
    """The status and the start of the body of an HTTP 4xx answer retrying cannot change (a request the server
    cannot parse, a wrong path, a forbidden method), or None."""
    if not isinstance(exc, ews.MalformedResponseError):
        return None
    found = _UNKNOWN_FAILURE.match(str(exc))
    if found is None:
        return None
    status = int(found.group(1))
    if not 400 <= status < 500 or status in _RETRIED_STATUSES:
        return None
    text = " ".join(found.group(2).split())
    return status, (text[:120] + "...") if len(text) > 120 else (text or "no reason given")


def _unanswered(exc: BaseException) -> bool:
    """Whether ``exc`` means a request went out and no answer came back (a read timeout, a connection dropped midway),
    however exchangelib re-raised it: it turns them into ErrorTimeoutExpired, and that into ErrorServerBusy when it
    backs off. A connection never made (ConnectTimeout, a certificate refused) sent nothing."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, requests.exceptions.ConnectTimeout | requests.exceptions.SSLError):
            return False
        if isinstance(
            seen,
            requests.exceptions.Timeout
            | requests.exceptions.ConnectionError
            | requests.exceptions.ChunkedEncodingError
            | TimeoutError
            | ConnectionResetError,
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


@contextmanager
def translated(where: Where) -> Iterator[None]:
    """Raise the domain error for any Exchange error raised inside the block."""
    try:
        yield
    except Exception as exc:
        domain = translate(exc, where)
        if domain is None:
            raise
        raise domain from exc
