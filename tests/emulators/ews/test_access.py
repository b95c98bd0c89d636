"""Access to other people's calendars: ApplicationImpersonation and delegate permissions, granted or not."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import requests
from exchangelib import IMPERSONATION, Account, CalendarItem, EWSDateTime
from exchangelib.errors import ErrorAccessDenied, ErrorImpersonateUserDenied, ErrorNonExistentMailbox
from exchangelib.fields import FieldPath
from exchangelib.folders import Calendar, FolderCollection, Root
from exchangelib.properties import DistinguishedFolderId, Mailbox
from lxml import etree

from emulators.ews.testing import EwsEmulator
from tests.emulators.ews.conftest import PASSWORD, SERVICE, TZ

ALICE = "alice@example.com"
CAROL = "carol@example.com"
E_NS = "http://schemas.microsoft.com/exchange/services/2006/errors"


def at(day: int, hour: int) -> EWSDateTime:
    return EWSDateTime(2025, 7, day, hour, tzinfo=TZ)


@pytest.fixture(autouse=True)
def _people(ews: EwsEmulator) -> None:
    for address in (ALICE, CAROL, SERVICE):
        ews.add_account(address, PASSWORD)


def book(account: Account, subject: str) -> CalendarItem:
    item = CalendarItem(
        account=account, folder=account.calendar, subject=subject, start=at(7, 9), end=at(7, 10)
    )
    item.save(send_meeting_invitations="SendToNone")
    return item


def owner_books(ews: EwsEmulator, owner: str, subject: str) -> None:
    ews.control(
        "POST",
        f"mailboxes/{owner}/items",
        {"subject": subject, "start": "2025-07-08T09:00:00Z", "end": "2025-07-08T10:00:00Z"},
    )


def view(account: Account) -> list[str]:
    return sorted(i.subject for i in account.calendar.view(start=at(1, 0), end=at(31, 0)))


# ---- impersonation -------------------------------------------------------------------------------------------------


def test_impersonation_granted_for_all_mailboxes_works_on_the_owners_calendar(
    ews: EwsEmulator, account_for: Callable[..., Account]
) -> None:
    ews.control("POST", "impersonation", {"service_account": SERVICE, "mailboxes": ["*"]}, expect=201)
    owner_books(ews, ALICE, "Alice's own")
    account = account_for(ALICE, via=SERVICE, access_type=IMPERSONATION)
    book(account, "Booked through impersonation")
    assert view(account) == ["Alice's own", "Booked through impersonation"]
    assert ews.items(SERVICE) == []


def test_impersonation_not_granted_is_denied(ews: EwsEmulator, account_for: Callable[..., Account]) -> None:
    # Granted for Carol only: Alice stays out of reach.
    ews.control("POST", "impersonation", {"service_account": SERVICE, "mailboxes": [CAROL]}, expect=201)
    with pytest.raises(ErrorImpersonateUserDenied):
        book(account_for(ALICE, via=SERVICE, access_type=IMPERSONATION), "Must not land")
    assert ews.items(ALICE) == []
    book(account_for(CAROL, via=SERVICE, access_type=IMPERSONATION), "Lands")
    assert [i["subject"] for i in ews.items(CAROL)] == ["Lands"]


def test_impersonating_an_unknown_mailbox_is_reported_as_nonexistent(
    ews: EwsEmulator, account_for: Callable[..., Account]
) -> None:
    ews.control("POST", "impersonation", {"service_account": SERVICE, "mailboxes": ["*"]}, expect=201)
    with pytest.raises(ErrorNonExistentMailbox):
        account_for("nobody@example.com", via=SERVICE, access_type=IMPERSONATION).calendar.refresh()


def impersonating_get_folder(form: str, target: str) -> bytes:
    """GetFolder(calendar) with the ConnectingSID form ews-javascript-api (SmtpAddress) or others send."""
    return f"""<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"
  xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"
  xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">
<soap:Header><t:RequestServerVersion Version="Exchange2013"/>
<t:ExchangeImpersonation><t:ConnectingSID><t:{form}>{target}</t:{form}></t:ConnectingSID></t:ExchangeImpersonation>
</soap:Header>
<soap:Body><m:GetFolder><m:FolderShape><t:BaseShape>AllProperties</t:BaseShape></m:FolderShape>
<m:FolderIds><t:DistinguishedFolderId Id="calendar"/></m:FolderIds></m:GetFolder></soap:Body></soap:Envelope>""".encode()


def fault_code(response: requests.Response) -> str | None:
    root = etree.fromstring(response.content)
    code = root.find(f".//{{{E_NS}}}ResponseCode")
    return code.text if code is not None else None


@pytest.mark.parametrize("form", ["SmtpAddress", "PrincipalName", "PrimarySmtpAddress"])
def test_every_connecting_sid_form_is_checked(ews: EwsEmulator, form: str) -> None:
    ews.control("POST", "impersonation", {"service_account": SERVICE, "mailboxes": [ALICE]}, expect=201)
    owner_books(ews, ALICE, "One")
    headers = {"Content-Type": "text/xml; charset=utf-8"}

    granted = requests.post(
        ews.ews_url,
        data=impersonating_get_folder(form, ALICE.upper()),
        headers=headers,
        auth=(SERVICE, PASSWORD),
        timeout=10,
    )
    assert granted.status_code == 200, granted.text
    root = etree.fromstring(granted.content)
    # The calendar answered is Alice's (one item), not the service account's (none).
    assert root.findtext(".//{*}CalendarFolder/{*}TotalCount") == "1"

    denied = requests.post(
        ews.ews_url,
        data=impersonating_get_folder(form, CAROL),
        headers=headers,
        auth=(SERVICE, PASSWORD),
        timeout=10,
    )
    assert denied.status_code == 500 and fault_code(denied) == "ErrorImpersonateUserDenied"


# ---- delegate access -----------------------------------------------------------------------------------------------


def grant(ews: EwsEmulator, permission: str) -> None:
    ews.control(
        "POST", "delegates", {"owner": ALICE, "delegate": SERVICE, "permission": permission}, expect=201
    )


def test_editor_delegate_reads_and_writes_the_owners_calendar(
    ews: EwsEmulator, account_for: Callable[..., Account]
) -> None:
    grant(ews, "Editor")
    owner_books(ews, ALICE, "Alice's own")
    account = account_for(ALICE, via=SERVICE)
    item = book(account, "By the delegate")
    item.subject = "By the delegate, edited"
    item.save(update_fields=["subject"], send_meeting_invitations="SendToNone")
    assert view(account) == ["Alice's own", "By the delegate, edited"]
    assert sorted(i["subject"] for i in ews.items(ALICE)) == ["Alice's own", "By the delegate, edited"]


def test_reviewer_delegate_reads_but_cannot_create(
    ews: EwsEmulator, account_for: Callable[..., Account]
) -> None:
    grant(ews, "Reviewer")
    owner_books(ews, ALICE, "Alice's own")
    account = account_for(ALICE, via=SERVICE)
    assert view(account) == ["Alice's own"]
    with pytest.raises(ErrorAccessDenied):
        book(account, "Must not land")
    assert [i["subject"] for i in ews.items(ALICE)] == ["Alice's own"]


@pytest.mark.parametrize("permission", ["None", None])
def test_delegate_without_rights_is_denied_cleanly(
    ews: EwsEmulator, account_for: Callable[..., Account], permission: str | None
) -> None:
    if permission is not None:
        grant(ews, permission)
    owner_books(ews, ALICE, "Private")
    account = account_for(ALICE, via=SERVICE)
    # exchangelib falls back from GetFolder(calendar) to its FindItem/FindFolder probes: all must say AccessDenied.
    with pytest.raises(ErrorAccessDenied):
        view(account)
    with pytest.raises(ErrorAccessDenied):
        book(account_for(ALICE, via=SERVICE), "Must not land")
    assert [i["subject"] for i in ews.items(ALICE)] == ["Private"]


def test_delegate_access_to_an_unknown_mailbox_is_nonexistent(account_for: Callable[..., Account]) -> None:
    with pytest.raises(ErrorNonExistentMailbox):
        account_for("nobody@example.com", via=SERVICE).calendar.refresh()


# ---- the acting user's rights, as a client asks for them ----------------------------------------------------------


def test_effective_rights_asked_as_an_additional_property_are_the_delegates_own(
    ews: EwsEmulator, account_for: Callable[..., Account]
) -> None:
    """exchangelib asks for EffectiveRights with an IdOnly shape and ``folder:EffectiveRights`` among the
    AdditionalProperties; Exchange answers them as it does for AllProperties."""
    account = account_for(ALICE, via=SERVICE)
    calendar = Calendar(
        root=Root(account=account),
        _distinguished_id=DistinguishedFolderId(id="calendar", mailbox=Mailbox(email_address=ALICE)),
    )
    rights_field = {FieldPath(field=Calendar.get_field_by_fieldname("effective_rights"))}

    def rights() -> tuple[bool, bool, bool, bool]:
        [folder] = FolderCollection(account=account, folders=[calendar]).get_folders(
            additional_fields=rights_field
        )
        found = folder.effective_rights
        return found.read, found.create_contents, found.modify, found.delete

    ews.control("POST", "delegates", {"owner": ALICE, "delegate": SERVICE, "permission": "Reviewer"})
    assert rights() == (True, False, False, False)
    ews.control("POST", "delegates", {"owner": ALICE, "delegate": SERVICE, "permission": "Editor"})
    assert rights() == (True, True, True, True)
    # Without asking for them, none come back.
    [plain] = FolderCollection(account=account, folders=[calendar]).get_folders(additional_fields=set())
    assert plain.effective_rights is None
