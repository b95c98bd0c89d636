"""``JrniCheck``: the way to one integration's JRNI, step by step, through the same client calsync syncs with.

A fresh client (never a cached login) logs in as the parent company's administrator, so a changed password shows
at once; then the company tree is read as the booking source reads it. Reference: ../shared/reference/jrni-api.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from urllib.parse import urlsplit

import requests

from calsync.adapters.jrni.bookings import JrniBookingSource
from calsync.adapters.jrni.client import JrniClient, JrniLoginError
from calsync.adapters.network import ConnectionFailure, connection_failure
from calsync.domain import CalsyncError, JrniConnection, RetryableError
from calsync.domain.diagnosis import JRNI_COMPANIES, JRNI_LOGIN, JRNI_REACHABLE, Check

# Each JRNI request of the test: well inside the test's overall deadline.
CHECK_TIMEOUT_SECONDS = 8.0
_SECRET_FIELDS = '{"app_id", "app_key", "email", "password"}'


class JrniDiagnosis:
    """The checks of one integration's JRNI; ``secret`` reads its credentials when the test runs."""

    def __init__(
        self,
        connection: JrniConnection,
        secret: Callable[[], Mapping[str, str]],
        *,
        timeout: float = CHECK_TIMEOUT_SECONDS,
    ) -> None:
        self.connection = connection
        self._secret = secret
        self._timeout = timeout

    def check(self) -> Iterator[Check]:
        """Reachable, login, the company tree; nothing more after a failure."""
        name = self.connection.secret_name
        try:
            client = JrniClient(self.connection, self._secret(), timeout=self._timeout)
        except CalsyncError as exc:
            yield Check.skipped(JRNI_REACHABLE, "not checked: the JRNI credentials cannot be read")
            yield Check.failed(JRNI_LOGIN, str(exc), f"store {_SECRET_FIELDS} in the secret {name!r}")
            return
        try:
            yield from self._checks(client)
        finally:
            client.close()

    def _checks(self, client: JrniClient) -> Iterator[Check]:
        host = urlsplit(client.base_url).netloc
        company_id = self.connection.company_id
        try:
            client.login()
        except RetryableError as exc:
            yield _unreachable(host, exc, self._timeout)
            return
        except JrniLoginError as exc:
            yield Check.ok(JRNI_REACHABLE, f"JRNI answers at {host}")
            yield _login_refused(exc, self.connection)
            return
        except CalsyncError as exc:
            yield Check.ok(JRNI_REACHABLE, f"JRNI answers at {host}")
            yield Check.failed(JRNI_LOGIN, str(exc), "correct what the detail names, then test again")
            return
        yield Check.ok(JRNI_REACHABLE, f"JRNI answers at {host}")
        yield Check.ok(JRNI_LOGIN, f"logged in as the administrator of company {company_id}")
        try:
            companies = JrniBookingSource(client).companies()
        except CalsyncError as exc:
            yield Check.failed(
                JRNI_COMPANIES,
                f"the administrator cannot read the company tree of {company_id}: {exc}",
                "log in with an administrator of the parent company (not of a child), with access to its children",
            )
            return
        (_, parent), children = companies[0], companies[1:]
        listed = ", ".join(f"{n} ({i})" for i, n in children[:10]) + (" ..." if len(children) > 10 else "")
        yield Check.ok(
            JRNI_COMPANIES,
            f"the parent company {parent} ({company_id}) and {len(children)} child compan"
            f"{'y' if len(children) == 1 else 'ies'}" + (f": {listed}" if children else ""),
        )


def _login_refused(exc: JrniLoginError, connection: JrniConnection) -> Check:
    name, company_id = connection.secret_name, connection.company_id
    if exc.status == 403:
        return Check.failed(
            JRNI_LOGIN,
            f"the administrator in the secret {name!r} does not administer JRNI company {company_id}",
            "use an administrator of the parent company, or correct the integration's company id",
        )
    if exc.status == 404:
        return Check.failed(
            JRNI_LOGIN, f"JRNI knows no company {company_id}", "correct the integration's company id"
        )
    return Check.failed(
        JRNI_LOGIN,
        f"JRNI refused the administrator's login for company {company_id} (HTTP 401): the e-mail or password, "
        f"or the app id or key, is wrong",
        f"check email and password (and app_id, app_key) in the secret {name!r} against JRNI's administrator and "
        f"API app",
    )


def _unreachable(host: str, exc: RetryableError, timeout: float) -> Check:
    failure = connection_failure(exc)
    if failure is ConnectionFailure.UNRESOLVED:
        return Check.failed(
            JRNI_REACHABLE,
            f"the host name {urlsplit('//' + host).hostname} does not resolve",
            "correct the integration's JRNI base_url (e.g. https://<tenant>.jrni.com)",
        )
    if failure is ConnectionFailure.REFUSED:
        return Check.failed(
            JRNI_REACHABLE,
            f"{host} refused the connection",
            "correct the JRNI base_url's host and port, and check the firewall",
        )
    if isinstance(exc.__cause__, requests.Timeout):
        return Check.failed(
            JRNI_REACHABLE,
            f"JRNI at {host} did not answer within {timeout:g} s",
            "check that the firewall lets calsync reach JRNI, and JRNI's status page; then test again",
        )
    return Check.failed(
        JRNI_REACHABLE,
        f"JRNI at {host} could not be reached or is failing: {exc}",
        "check the integration's JRNI base_url and JRNI's status page; then test again",
    )
