"""Authentication as exchangelib meets it on Exchange: Basic, a real NTLM handshake, OAuth2 client credentials."""

from __future__ import annotations

import base64
import contextlib
import time
from collections.abc import Callable, Iterator

import pytest
import requests
import spnego
from exchangelib import (
    BASIC,
    IMPERSONATION,
    NTLM,
    Account,
    Build,
    CalendarItem,
    Configuration,
    Credentials,
    EWSDateTime,
    Identity,
    OAuth2Credentials,
    Version,
)
from exchangelib.autodiscover.cache import autodiscover_cache
from exchangelib.autodiscover.protocol import AutodiscoverProtocol
from exchangelib.errors import ErrorImpersonateUserDenied, ErrorNonExistentMailbox, UnauthorizedError
from oauthlib.oauth2 import InvalidClientError, InvalidClientIdError
from requests_ntlm import HttpNtlmAuth

from emulators.ews.testing import EwsEmulator
from tests.emulators.ews.conftest import PASSWORD, TZ

ALICE = "alice@example.com"
TENANT = "contoso-tenant"
SECRET = "client-secret-for-tests"

# The smallest valid EWS request: GetFolder of one's own calendar.
GET_CALENDAR = b"""<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"
  xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"
  xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">
<s:Header><t:RequestServerVersion Version="Exchange2016"/></s:Header>
<s:Body><m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape>
<m:FolderIds><t:DistinguishedFolderId Id="calendar"/></m:FolderIds></m:GetFolder></s:Body></s:Envelope>"""
XML = {"Content-Type": "text/xml; charset=utf-8"}


def at(day: int, hour: int) -> EWSDateTime:
    return EWSDateTime(2025, 7, day, hour, tzinfo=TZ)


def book(account: Account, subject: str) -> CalendarItem:
    item = CalendarItem(
        account=account, folder=account.calendar, subject=subject, start=at(7, 9), end=at(7, 10)
    )
    item.save(send_meeting_invitations="SendToNone")
    return item


@pytest.fixture
def owner(ews: EwsEmulator) -> str:
    ews.add_account(ALICE, PASSWORD, display_name="Alice Adviser")
    return ALICE


# ---- Basic ---------------------------------------------------------------------------------------------------------


def test_basic_with_the_right_password_reaches_the_calendar(
    ews: EwsEmulator, owner: str, account_for: Callable[..., Account]
) -> None:
    book(account_for(owner), "Basic booking")
    assert [i["subject"] for i in ews.items(owner)] == ["Basic booking"]


def test_basic_with_a_wrong_password_is_unauthorized(
    ews: EwsEmulator, owner: str, account_for: Callable[..., Account]
) -> None:
    account = account_for(owner, password="not-the-password")
    with pytest.raises(UnauthorizedError):
        account.calendar.refresh()
    # Exchange offers every scheme it accepts; exchangelib's auth-type probe reads this header.
    response = requests.post(
        ews.ews_url, data=GET_CALENDAR, headers=XML, auth=(owner, "not-the-password"), timeout=10
    )
    assert response.status_code == 401
    offered = response.headers["WWW-Authenticate"]
    assert "NTLM" in offered and "Basic" in offered
    assert ews.items(owner) == []


# ---- NTLM ----------------------------------------------------------------------------------------------------------


def test_ntlm_handshake_lets_exchangelib_work_with_the_calendar(
    ews: EwsEmulator, owner: str, account_for: Callable[..., Account]
) -> None:
    account = account_for(owner, auth_type=NTLM)
    item = book(account, "NTLM booking")
    item.subject = "NTLM booking, moved"
    item.save(update_fields=["subject"], send_meeting_invitations="SendToNone")
    assert [i.subject for i in account.calendar.view(start=at(1, 0), end=at(31, 0))] == [
        "NTLM booking, moved"
    ]
    item.delete(send_meeting_cancellations="SendToNone")
    assert ews.items(owner) == []

    stats = ews.control("GET", "stats")
    # One handshake (anonymous 401, then the Type 2 challenge) served every later request on that connection.
    assert stats["http_statuses"]["401"] == 2
    assert stats["http_statuses"]["200"] >= 5


def test_ntlm_with_a_wrong_password_is_unauthorized(
    ews: EwsEmulator, owner: str, account_for: Callable[..., Account]
) -> None:
    with pytest.raises(UnauthorizedError):
        account_for(owner, auth_type=NTLM, password="not-the-password").calendar.refresh()


def test_ntlm_challenge_is_per_connection_and_the_connection_stays_authenticated(
    ews: EwsEmulator, owner: str
) -> None:
    client = spnego.client("\\" + owner, PASSWORD, protocol="ntlm")
    with requests.Session() as session:
        negotiate = base64.b64encode(client.step()).decode()
        response = session.post(
            ews.ews_url, data=GET_CALENDAR, headers={**XML, "Authorization": f"NTLM {negotiate}"}
        )
        assert response.status_code == 401
        scheme, _, challenge = response.headers["WWW-Authenticate"].partition(" ")
        type2 = base64.b64decode(challenge)
        assert scheme == "NTLM" and type2[:8] == b"NTLMSSP\x00" and type2[8] == 2

        authenticate = base64.b64encode(client.step(type2)).decode()
        response = session.post(
            ews.ews_url, data=GET_CALENDAR, headers={**XML, "Authorization": f"NTLM {authenticate}"}
        )
        assert response.status_code == 200 and b"NoError" in response.content

        # IIS keeps an NTLM-authenticated connection authenticated: no Authorization header needed on it.
        again = session.post(ews.ews_url, data=GET_CALENDAR, headers=XML)
        assert again.status_code == 200

    # A new connection starts unauthenticated.
    assert requests.post(ews.ews_url, data=GET_CALENDAR, headers=XML, timeout=10).status_code == 401


def test_ntlm_type3_on_another_connection_is_refused(ews: EwsEmulator, owner: str) -> None:
    client = spnego.client("\\" + owner, PASSWORD, protocol="ntlm")
    negotiate = base64.b64encode(client.step()).decode()
    with requests.Session() as first:
        response = first.post(
            ews.ews_url, data=GET_CALENDAR, headers={**XML, "Authorization": f"NTLM {negotiate}"}
        )
        type2 = base64.b64decode(response.headers["WWW-Authenticate"].split(" ", 1)[1])
    authenticate = base64.b64encode(client.step(type2)).decode()
    with requests.Session() as second:
        response = second.post(
            ews.ews_url, data=GET_CALENDAR, headers={**XML, "Authorization": f"NTLM {authenticate}"}
        )
    assert response.status_code == 401


def test_ntlm_sees_accounts_added_after_the_first_handshake(ews: EwsEmulator, owner: str) -> None:
    with requests.Session() as session:
        session.auth = HttpNtlmAuth("\\" + owner, PASSWORD)
        assert session.post(ews.ews_url, data=GET_CALENDAR, headers=XML).status_code == 200
    ews.add_account("bob@example.com", "bobs-password")
    with requests.Session() as session:
        session.auth = HttpNtlmAuth("\\bob@example.com", "bobs-password")
        assert session.post(ews.ews_url, data=GET_CALENDAR, headers=XML).status_code == 200


# ---- OAuth2 --------------------------------------------------------------------------------------------------------


class LocalOAuth2Credentials(OAuth2Credentials):
    """exchangelib's client-credentials flow, with the token endpoint moved from Entra ID to the emulator."""

    base_url = ""

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/{self.tenant_id}/oauth2/v2.0/token"


@pytest.fixture
def oauth_account(ews: EwsEmulator, owner: str) -> Iterator[Callable[..., Account]]:
    LocalOAuth2Credentials.base_url = ews.base_url

    def build(client_id: str, secret: str = SECRET, target: str = owner) -> Account:
        credentials = LocalOAuth2Credentials(
            client_id=client_id,
            client_secret=secret,
            tenant_id=TENANT,
            identity=Identity(primary_smtp_address=target),
        )
        config = Configuration(
            service_endpoint=ews.ews_url,
            credentials=credentials,
            version=Version(build=Build(15, 1, 2507, 6)),
        )
        return Account(
            target, config=config, autodiscover=False, access_type=IMPERSONATION, default_timezone=TZ
        )

    yield build


def add_app(ews: EwsEmulator, client_id: str, mailboxes: list[str]) -> None:
    ews.control(
        "POST",
        "oauth-apps",
        {"tenant_id": TENANT, "client_id": client_id, "client_secret": SECRET, "mailboxes": mailboxes},
        expect=201,
    )


def tokens_issued(ews: EwsEmulator) -> int:
    return int(ews.call(lambda: len(ews.emulator.store.tokens)))


def test_oauth_app_granted_every_mailbox_impersonates_the_owner(
    ews: EwsEmulator, owner: str, oauth_account: Callable[..., Account]
) -> None:
    add_app(ews, "sync-app", ["*"])
    item = book(oauth_account("sync-app"), "Booked by the app")
    [stored] = ews.items(owner)
    assert stored["id"] == item.id and stored["subject"] == "Booked by the app"
    assert tokens_issued(ews) == 1


def test_oauth_app_not_granted_the_mailbox_is_denied_impersonation(
    ews: EwsEmulator, owner: str, oauth_account: Callable[..., Account]
) -> None:
    ews.add_account("bob@example.com", PASSWORD)
    add_app(ews, "narrow-app", ["bob@example.com"])
    with pytest.raises(ErrorImpersonateUserDenied):
        oauth_account("narrow-app").calendar.refresh()
    assert ews.items(owner) == []
    # The same app works for the mailbox it was granted.
    book(oauth_account("narrow-app", target="bob@example.com"), "Allowed")
    assert len(ews.items("bob@example.com")) == 1


def test_oauth_wrong_client_secret_gets_no_token(
    ews: EwsEmulator, owner: str, oauth_account: Callable[..., Account]
) -> None:
    add_app(ews, "sync-app", ["*"])
    with pytest.raises(InvalidClientError, match="invalid_client"):
        oauth_account("sync-app", secret="not-the-secret").calendar.refresh()
    assert tokens_issued(ews) == 0


def test_oauth_expired_token_is_refused_and_exchangelib_cannot_refresh_it(
    ews: EwsEmulator, owner: str, oauth_account: Callable[..., Account]
) -> None:
    add_app(ews, "sync-app", ["*"])
    # Two seconds so the first call surely fits; oauthlib rounds its expiry time to the second, so the wait below
    # must pass it by more than half a second for the client to notice the expiry itself.
    ews.control("POST", "config", {"token_lifetime_seconds": 2})
    try:
        account = oauth_account("sync-app")
        account.calendar.refresh()
        [token] = ews.call(lambda: list(ews.emulator.store.tokens))
        time.sleep(2.7)

        # The server refuses the expired token with 401 and says why, as Exchange Online does.
        raw = requests.post(
            ews.ews_url, data=GET_CALENDAR, headers={**XML, "Authorization": f"Bearer {token}"}, timeout=10
        )
        assert raw.status_code == 401 and 'error="invalid_token"' in raw.headers["WWW-Authenticate"]

        # exchangelib (requests-oauthlib) notices the expiry itself and tries a refresh_token grant, which Entra ID
        # refuses for client credentials (exchangelib issue #1345): the error reaches the application, which must
        # build new credentials.
        with pytest.raises(InvalidClientIdError, match="refresh_token"):
            account.calendar.refresh()
    finally:
        ews.control("POST", "config", {"token_lifetime_seconds": 3600})


# ---- Autodiscover --------------------------------------------------------------------------------------------------


@pytest.fixture
def seeded_autodiscover(ews: EwsEmulator) -> Iterator[Credentials]:
    """exchangelib's discovery goes straight to the emulator when its cache already names the endpoint for the domain
    (real discovery needs DNS and https on autodiscover.<domain>)."""
    credentials = Credentials(ALICE, PASSWORD)
    key = ("example.com", credentials)
    autodiscover_cache[key] = AutodiscoverProtocol(
        config=Configuration(
            service_endpoint=f"{ews.base_url}/autodiscover/autodiscover.svc",
            credentials=credentials,
            auth_type=BASIC,
        )
    )
    yield credentials
    with contextlib.suppress(KeyError):
        del autodiscover_cache[key]


def test_autodiscover_finds_the_ews_url_and_exchangelib_uses_it(
    ews: EwsEmulator, owner: str, seeded_autodiscover: Credentials
) -> None:
    account = Account(owner, credentials=seeded_autodiscover, autodiscover=True, default_timezone=TZ)
    assert account.protocol.service_endpoint == ews.ews_url
    assert account.version.api_version == "Exchange2016"
    assert account.ad_response.user_settings["user_display_name"] == "Alice Adviser"
    assert account.ad_response.user_settings["grouping_information"]
    book(account, "Found by autodiscover")
    assert [i["subject"] for i in ews.items(owner)] == ["Found by autodiscover"]
    assert ews.control("GET", "stats")["operations"]["GetUserSettings"] == 1


def test_autodiscover_of_an_unknown_user_is_nonexistent(
    ews: EwsEmulator, owner: str, seeded_autodiscover: Credentials
) -> None:
    with pytest.raises(ErrorNonExistentMailbox):
        Account("nobody@example.com", credentials=seeded_autodiscover, autodiscover=True, default_timezone=TZ)


def test_autodiscover_needs_authentication(ews: EwsEmulator, owner: str) -> None:
    url = f"{ews.base_url}/autodiscover/autodiscover.svc"
    assert requests.post(url, data=b"<x/>", headers=XML, timeout=10).status_code == 401
    assert requests.post(url, data=b"<x/>", headers=XML, auth=(owner, "wrong"), timeout=10).status_code == 401
