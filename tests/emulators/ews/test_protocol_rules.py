"""Where Exchange is strict and a loose emulator would let a client pass its tests and fail on a customer: time zones,
truncated calendar views, FindItem shapes, required send flags, mailbox targeting, app-only tokens, the concurrency
budget and streaming, extended-property identity and typed comparisons, hostile values, lost events, rights."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests
from exchangelib import Account, CalendarItem, EWSDateTime
from exchangelib.errors import ErrorInvalidPropertyRequest
from exchangelib.fields import FieldPath
from exchangelib.services import FindItem
from lxml import etree

from emulators.ews import notifications
from emulators.ews.operations import get_streaming_events
from emulators.ews.testing import EwsEmulator
from emulators.ews.xml import format_datetime
from tests.emulators.ews.conftest import PASSWORD, TZ

ALICE = "alice@example.com"
BOB = "bob@example.com"
M = "{http://schemas.microsoft.com/exchange/services/2006/messages}"
T = "{http://schemas.microsoft.com/exchange/services/2006/types}"
E = "{http://schemas.microsoft.com/exchange/services/2006/errors}"
CAL = f'<t:DistinguishedFolderId Id="calendar"><t:Mailbox><t:EmailAddress>{ALICE}</t:EmailAddress></t:Mailbox></t:DistinguishedFolderId>'
VERSION = '<t:RequestServerVersion Version="Exchange2016"/>'


def envelope(body: str, header: str = VERSION) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" '
        'xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">'
        f"<s:Header>{header}</s:Header><s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


def post(
    ews: EwsEmulator, body: str, user: str = ALICE, header: str = VERSION, **kwargs: Any
) -> requests.Response:
    return requests.post(
        ews.ews_url,
        data=envelope(body, header),
        auth=(user, PASSWORD),
        timeout=30,
        headers={"Content-Type": "text/xml; charset=utf-8", **kwargs.pop("headers", {})},
        **kwargs,
    )


def codes(response: requests.Response) -> list[str]:
    root = etree.fromstring(response.content)
    return [el.text or "" for el in root.iter(f"{M}ResponseCode", f"{E}ResponseCode")]


def create(ews: EwsEmulator, item: str, header: str = VERSION) -> requests.Response:
    return post(
        ews,
        f'<m:CreateItem SendMeetingInvitations="SendToNone"><m:SavedItemFolderId>{CAL}</m:SavedItemFolderId>'
        f"<m:Items>{item}</m:Items></m:CreateItem>",
        header=header,
    )


def item_xml(start: str, end: str, extra: str = "", subject: str = "Item") -> str:
    return f"<t:CalendarItem><t:Subject>{subject}</t:Subject>{extra}<t:Start>{start}</t:Start><t:End>{end}</t:End></t:CalendarItem>"


@pytest.fixture(autouse=True)
def _alice(ews: EwsEmulator, request: pytest.FixtureRequest) -> None:
    if "alice" not in request.fixturenames:  # the conftest's alice fixture makes her account itself
        ews.add_account(ALICE, PASSWORD, time_zone="GMT Standard Time")


def at(day: int, hour: int) -> EWSDateTime:
    return EWSDateTime(2025, 7, day, hour, tzinfo=TZ)


def book(account: Account, subject: str, day: int = 7, hour: int = 9) -> CalendarItem:
    item = CalendarItem(
        account=account,
        folder=account.calendar,
        subject=subject,
        start=at(day, hour),
        end=at(day, hour + 1),
        body="Notes",
    )
    item.save(send_meeting_invitations="SendToNone")
    return item


# ---- #5: time zones -------------------------------------------------------------------------------------------------


def test_unknown_time_zone_in_create_item_is_refused(ews: EwsEmulator) -> None:
    zones = '<t:StartTimeZone Id="Mars/Olympus Mons"/><t:EndTimeZone Id="GMT Standard Time"/>'
    response = create(
        ews, item_xml("2025-07-07T09:00:00Z", "2025-07-07T10:00:00Z").replace("</t:End>", "</t:End>" + zones)
    )
    assert codes(response) == ["ErrorTimeZone"]
    assert ews.items(ALICE) == []


def test_times_without_offset_are_read_in_the_item_zone_else_the_time_zone_context(ews: EwsEmulator) -> None:
    context = (
        VERSION + '<t:TimeZoneContext><t:TimeZoneDefinition Id="Pacific Standard Time"/></t:TimeZoneContext>'
    )
    create(ews, item_xml("2025-01-06T09:00:00", "2025-01-06T10:00:00", subject="Context"), header=context)
    zoned = item_xml("2025-01-06T09:00:00", "2025-01-06T10:00:00", subject="Own zone").replace(
        "</t:End>",
        '</t:End><t:StartTimeZone Id="Tokyo Standard Time"/><t:EndTimeZone Id="Tokyo Standard Time"/>',
    )
    create(ews, zoned, header=context)
    create(ews, item_xml("2025-01-06T09:00:00", "2025-01-06T10:00:00", subject="Neither"))
    starts = {i["subject"]: i["start"] for i in ews.items(ALICE)}
    assert starts == {
        "Context": "2025-01-06T17:00:00Z",
        "Own zone": "2025-01-06T00:00:00Z",
        "Neither": "2025-01-06T09:00:00Z",
    }
    bad_context = VERSION + '<t:TimeZoneContext><t:TimeZoneDefinition Id="Atlantis"/></t:TimeZoneContext>'
    assert codes(create(ews, item_xml("2025-01-06T09:00:00", "2025-01-06T10:00:00"), header=bad_context)) == [
        "ErrorTimeZone"
    ]


# ---- #6: a truncated calendar view says so ---------------------------------------------------------------------------


def test_truncated_calendar_view_is_not_the_last_item_in_range(ews: EwsEmulator, alice: Account) -> None:
    for day in range(7, 12):
        book(alice, f"Day {day}", day=day)
    view = (
        '<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape>'
        '<m:CalendarView MaxEntriesReturned="{n}" StartDate="2025-07-01T00:00:00Z" EndDate="2025-07-31T00:00:00Z"/>'
        f"<m:ParentFolderIds>{CAL}</m:ParentFolderIds></m:FindItem>"
    )
    for n, last in ((3, "false"), (5, "true"), (10, "true")):
        root = etree.fromstring(post(ews, view.format(n=n)).content).find(f".//{M}RootFolder")
        assert (root.get("IncludesLastItemInRange"), root.get("TotalItemsInView")) == (last, "5")
    ews.control("POST", "config", {"find_count_limit": 2})
    root = etree.fromstring(post(ews, view.format(n=10)).content).find(f".//{M}RootFolder")
    assert root.get("IncludesLastItemInRange") == "false" and len(root.find(f"{T}Items")) == 2
    ews.control("POST", "config", {"find_count_limit": 1000})
    # exchangelib: with max_items it stops after them (one request); an ordinary view of the range gets everything.
    before = ews.control("GET", "stats")["operations"].get("FindItem", 0)
    assert [
        i.subject for i in alice.calendar.view(start=at(1, 0), end=at(31, 0), max_items=3).only("subject")
    ] == ["Day 7", "Day 8", "Day 9"]
    assert ews.control("GET", "stats")["operations"]["FindItem"] == before + 1
    assert len(list(alice.calendar.view(start=at(1, 0), end=at(31, 0)))) == 5


# ---- #7: FindItem never returns bodies or recipient lists -----------------------------------------------------------


def test_find_item_refuses_body_and_attendees_but_exchangelib_queries_still_work(
    ews: EwsEmulator, alice: Account
) -> None:
    book(alice, "Review")
    for uri in ("item:Body", "calendar:RequiredAttendees", "item:TextBody"):
        response = post(
            ews,
            '<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape>'
            f'<t:AdditionalProperties><t:FieldURI FieldURI="{uri}"/></t:AdditionalProperties></m:ItemShape>'
            '<m:CalendarView StartDate="2025-07-01T00:00:00Z" EndDate="2025-07-31T00:00:00Z"/>'
            f"<m:ParentFolderIds>{CAL}</m:ParentFolderIds></m:FindItem>",
        )
        assert codes(response) == ["ErrorInvalidPropertyRequest"], uri
    # AllProperties in FindItem leaves them out.
    response = post(
        ews,
        '<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>AllProperties</t:BaseShape></m:ItemShape>'
        f'<m:IndexedPageItemView MaxEntriesReturned="10" Offset="0" BasePoint="Beginning"/>'
        f"<m:ParentFolderIds>{CAL}</m:ParentFolderIds></m:FindItem>",
    )
    found = etree.fromstring(response.content).find(f".//{T}CalendarItem")
    assert found.find(f"{T}Subject") is not None and found.find(f"{T}Body") is None
    # exchangelib fetches complex fields with GetItem after FindItem: these still work.
    [viewed] = alice.calendar.view(start=at(1, 0), end=at(31, 0)).only(
        "subject", "body", "required_attendees"
    )
    assert (viewed.subject, viewed.body) == ("Review", "Notes")
    assert [i.subject for i in alice.calendar.filter(subject="Review").only("subject", "start")] == ["Review"]
    assert [i.body for i in alice.calendar.all().only("body")] == ["Notes"]
    with pytest.raises(ErrorInvalidPropertyRequest):
        # FindItem asked for a body by hand (exchangelib itself never does).
        body_field = FieldPath(field=CalendarItem.get_field_by_fieldname("body"))
        list(
            FindItem(account=alice).call(
                folders=[alice.calendar],
                additional_fields={body_field},
                restriction=None,
                order_fields=None,
                shape="IdOnly",
                query_string=None,
                depth="Shallow",
                calendar_view=None,
                max_items=None,
                offset=0,
            )
        )


# ---- #9: the send flags are required for calendar items -------------------------------------------------------------


def test_update_and_delete_without_send_flags_are_refused(ews: EwsEmulator, alice: Account) -> None:
    item = book(alice, "Flagless")
    update = (
        f'<m:UpdateItem ConflictResolution="AlwaysOverwrite"><m:ItemChanges><t:ItemChange><t:ItemId Id="{item.id}"/>'
        '<t:Updates><t:SetItemField><t:FieldURI FieldURI="item:Subject"/><t:CalendarItem><t:Subject>x</t:Subject>'
        "</t:CalendarItem></t:SetItemField></t:Updates></t:ItemChange></m:ItemChanges></m:UpdateItem>"
    )
    assert codes(post(ews, update)) == ["ErrorSendMeetingInvitationsOrCancellationsRequired"]
    delete = f'<m:DeleteItem DeleteType="HardDelete"><m:ItemIds><t:ItemId Id="{item.id}"/></m:ItemIds></m:DeleteItem>'
    assert codes(post(ews, delete)) == ["ErrorSendMeetingCancellationsRequired"]
    assert [i["subject"] for i in ews.items(ALICE)] == ["Flagless"]


# ---- #10, #11: which mailbox a request acts on ----------------------------------------------------------------------


def test_x_anchor_mailbox_does_not_choose_the_mailbox(ews: EwsEmulator, alice: Account) -> None:
    book(alice, "Alice's")
    ews.add_account(BOB, PASSWORD)
    ews.control("POST", "delegates", {"owner": ALICE, "delegate": BOB, "permission": "Editor"})
    find = (
        '<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape>'
        '<m:IndexedPageItemView MaxEntriesReturned="10" Offset="0" BasePoint="Beginning"/>'
        '<m:ParentFolderIds><t:DistinguishedFolderId Id="calendar"/></m:ParentFolderIds></m:FindItem>'
    )
    root = etree.fromstring(post(ews, find, user=BOB, headers={"X-AnchorMailbox": ALICE}).content)
    assert root.find(f".//{M}RootFolder").get("TotalItemsInView") == "0"  # Bob's own (empty) calendar


def test_app_only_token_without_impersonation_is_refused(ews: EwsEmulator) -> None:
    ews.control(
        "POST",
        "oauth-apps",
        {"tenant_id": "t1", "client_id": "c1", "client_secret": "s1", "mailboxes": ["*"]},
    )
    token = requests.post(
        f"{ews.base_url}/t1/oauth2/v2.0/token",
        timeout=10,
        data={"grant_type": "client_credentials", "client_id": "c1", "client_secret": "s1", "scope": "x"},
    ).json()["access_token"]
    get_folder = (
        f"<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape><m:FolderIds>{CAL}"
        "</m:FolderIds></m:GetFolder>"
    )
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "text/xml"}
    response = requests.post(ews.ews_url, data=envelope(get_folder), headers=headers, timeout=10)
    assert response.status_code == 500 and codes(response) == ["ErrorInvalidExchangeImpersonationHeaderData"]
    impersonating = VERSION + (
        f"<t:ExchangeImpersonation><t:ConnectingSID><t:PrimarySmtpAddress>{ALICE}"
        "</t:PrimarySmtpAddress></t:ConnectingSID></t:ExchangeImpersonation>"
    )
    response = requests.post(
        ews.ews_url, data=envelope(get_folder, impersonating), headers=headers, timeout=10
    )
    assert codes(response) == ["NoError"]


# ---- #12: open streams do not hold concurrency slots ----------------------------------------------------------------


def subscribe_streaming(ews: EwsEmulator) -> str:
    response = post(
        ews,
        f"<m:Subscribe><m:StreamingSubscriptionRequest><t:FolderIds>{CAL}</t:FolderIds><t:EventTypes>"
        "<t:EventType>CreatedEvent</t:EventType></t:EventTypes></m:StreamingSubscriptionRequest></m:Subscribe>",
    )
    return str(etree.fromstring(response.content).findtext(f".//{M}SubscriptionId"))


def stream(ews: EwsEmulator, sub_id: str) -> requests.Response:
    body = (
        f"<m:GetStreamingEvents><m:SubscriptionIds><t:SubscriptionId>{sub_id}</t:SubscriptionId></m:SubscriptionIds>"
        "<m:ConnectionTimeout>1</m:ConnectionTimeout></m:GetStreamingEvents>"
    )
    return requests.post(
        ews.ews_url,
        data=envelope(body),
        auth=(ALICE, PASSWORD),
        stream=True,
        timeout=10,
        headers={"Content-Type": "text/xml; charset=utf-8"},
    )


def test_open_streams_leave_the_concurrency_budget(ews: EwsEmulator) -> None:
    ews.control("POST", "config", {"max_concurrency": 2, "heartbeat_seconds": 0.2})
    streams = [stream(ews, subscribe_streaming(ews)) for _ in range(2)]
    try:
        for response in streams:
            response.raw.read(20)  # the stream is open and answering
        get_folder = (
            f"<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape><m:FolderIds>{CAL}"
            "</m:FolderIds></m:GetFolder>"
        )
        response = post(ews, get_folder)
        assert response.status_code == 200 and codes(response) == ["NoError"]
    finally:
        for response in streams:
            response.close()


# ---- #13: extended property identity and typed comparisons ----------------------------------------------------------


def prop(attrs: str, value: str) -> str:
    return f"<t:ExtendedProperty><t:ExtendedFieldURI {attrs}/><t:Value>{value}</t:Value></t:ExtendedProperty>"


def find_where(ews: EwsEmulator, restriction: str) -> list[str]:
    response = post(
        ews,
        '<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape>'
        '<t:AdditionalProperties><t:FieldURI FieldURI="item:Subject"/></t:AdditionalProperties></m:ItemShape>'
        '<m:IndexedPageItemView MaxEntriesReturned="50" Offset="0" BasePoint="Beginning"/>'
        f"<m:Restriction>{restriction}</m:Restriction><m:ParentFolderIds>{CAL}</m:ParentFolderIds></m:FindItem>",
    )
    return sorted(el.text or "" for el in etree.fromstring(response.content).iter(f"{T}Subject"))


def test_public_strings_by_name_or_guid_and_typed_comparisons(ews: EwsEmulator) -> None:
    by_name = 'DistinguishedPropertySetId="PublicStrings" PropertyName="Rank" PropertyType="Integer"'
    by_guid = (
        'PropertySetId="00020329-0000-0000-C000-000000000046" PropertyName="Rank" PropertyType="Integer"'
    )
    when = 'PropertySetId="4f0c2b9e-6d1a-4c3e-9b57-2a8e61c0d7f3" PropertyName="Due" PropertyType="SystemTime"'
    for subject, rank, due in (
        ("Nine", "9", "2025-07-01T09:00:00Z"),
        ("Ten", "10", "2025-06-30T23:00:00-02:00"),
    ):
        extra = prop(by_name, rank) + prop(when, due)
        create(ews, item_xml("2025-07-07T09:00:00Z", "2025-07-07T10:00:00Z", extra, subject))
    constant = '<t:FieldURIOrConstant><t:Constant Value="{v}"/></t:FieldURIOrConstant>'
    # Numbers compare as numbers ("10" > "9"), and the GUID names the same property as PublicStrings.
    assert find_where(
        ews, f"<t:IsGreaterThan><t:ExtendedFieldURI {by_guid}/>{constant.format(v=9)}</t:IsGreaterThan>"
    ) == ["Ten"]
    assert find_where(
        ews, f"<t:IsEqualTo><t:ExtendedFieldURI {by_guid}/>{constant.format(v='09')}</t:IsEqualTo>"
    ) == ["Nine"]
    # Times compare as instants: 23:00-02:00 on the 30th is 01:00Z on the 1st, before 09:00Z.
    later = constant.format(v="2025-07-01T05:00:00Z")
    assert find_where(ews, f"<t:IsLessThan><t:ExtendedFieldURI {when}/>{later}</t:IsLessThan>") == ["Ten"]


def test_contains_honours_containment_mode_and_comparison(ews: EwsEmulator) -> None:
    for subject in ("Budget review", "Review of budget", "budget"):
        create(ews, item_xml("2025-07-07T09:00:00Z", "2025-07-07T10:00:00Z", subject=subject))

    def contains(mode: str, comparison: str, value: str) -> list[str]:
        return find_where(
            ews,
            f'<t:Contains ContainmentMode="{mode}" ContainmentComparison="{comparison}">'
            f'<t:FieldURI FieldURI="item:Subject"/><t:Constant Value="{value}"/></t:Contains>',
        )

    assert contains("FullString", "Exact", "budget") == ["budget"]
    assert contains("FullString", "IgnoreCase", "BUDGET") == ["budget"]
    assert contains("Prefixed", "Exact", "Budget") == ["Budget review"]
    assert contains("Prefixed", "IgnoreCase", "budget") == ["Budget review", "budget"]
    assert contains("Substring", "Exact", "budget") == ["Review of budget", "budget"]
    assert contains("PrefixOnWords", "IgnoreCase", "rev") == ["Budget review", "Review of budget"]


# ---- #14: values no calendar can hold -------------------------------------------------------------------------------


def test_impossible_and_out_of_range_dates_are_invalid_values(ews: EwsEmulator) -> None:
    for start, end in (
        ("2025-01-06T24:00:00Z", "2025-01-07T01:00:00Z"),
        ("0001-01-01T00:00:00Z", "0001-01-01T01:00:00Z"),
        ("4501-01-01T00:00:00Z", "4501-01-01T01:00:00Z"),
    ):
        response = create(ews, item_xml(start, end))
        assert response.status_code == 200 and codes(response) == ["ErrorInvalidValueForProperty"], start
    assert ews.items(ALICE) == []
    created = ews.control(
        "POST",
        f"mailboxes/{ALICE}/items",
        {"subject": "Early", "start": "1601-01-02T00:00:00Z", "end": "1601-01-02T01:00:00Z"},
        expect=201,
    )
    assert created["start"] == "1601-01-02T00:00:00Z"
    ews.control(
        "POST",
        f"mailboxes/{ALICE}/items",
        {"subject": "Too early", "start": "0001-01-01T00:00:00Z", "end": "0001-01-01T01:00:00Z"},
        expect=400,
    )


def test_datetimes_are_always_written_with_four_digit_years() -> None:
    from datetime import UTC, datetime

    assert format_datetime(datetime(1, 1, 1, tzinfo=UTC)) == "0001-01-01T00:00:00Z"
    assert format_datetime(datetime(999, 12, 31, 23, 59, 59, tzinfo=UTC)) == "0999-12-31T23:59:59Z"


# ---- #16: streaming never loses events silently ---------------------------------------------------------------------


def test_pending_overflow_is_reported_as_missed_events(
    ews: EwsEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(notifications, "PENDING_LIMIT", 3)
    sub_id = subscribe_streaming(ews)
    for n in range(4):
        ews.control(
            "POST",
            f"mailboxes/{ALICE}/items",
            {"subject": f"N{n}", "start": "2025-07-07T09:00:00Z", "end": "2025-07-07T10:00:00Z"},
            expect=201,
        )
    with stream(ews, sub_id) as response:
        text = response.raw.read(4000).decode()
    assert "ErrorMissedNotificationEvents" in text and sub_id in text


def test_events_survive_a_failed_write(ews: EwsEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    sub_id = subscribe_streaming(ews)
    ews.control(
        "POST",
        f"mailboxes/{ALICE}/items",
        {"subject": "Kept", "start": "2025-07-07T09:00:00Z", "end": "2025-07-07T10:00:00Z"},
        expect=201,
    )
    original = get_streaming_events._Stream.status
    failures = []

    async def failing(self: Any, status: str, batch: Any = None) -> None:
        if batch and not failures:
            failures.append(status)
            raise ConnectionResetError("client went away")
        await original(self, status, batch)

    monkeypatch.setattr(get_streaming_events._Stream, "status", failing)
    with stream(ews, sub_id) as response:
        response.raw.read(10, decode_content=False)
    assert failures == ["OK"]
    deadline = time.monotonic() + 3
    while ews.control("GET", "stats")["streaming_connections"] and time.monotonic() < deadline:
        time.sleep(0.02)
    created_event = ""
    with stream(ews, sub_id) as response:
        while "CreatedEvent" not in created_event and time.monotonic() < deadline + 3:
            created_event += response.raw.read(1, decode_content=False).decode(errors="replace")
    assert "CreatedEvent" in created_event


# ---- #17: effective rights are the acting user's ---------------------------------------------------------------------


def test_get_folder_reports_the_delegates_own_rights(ews: EwsEmulator) -> None:
    ews.add_account(BOB, PASSWORD)
    get_folder = (
        f"<m:GetFolder><m:FolderShape><t:BaseShape>AllProperties</t:BaseShape></m:FolderShape><m:FolderIds>{CAL}"
        "</m:FolderIds></m:GetFolder>"
    )

    def rights(user: str) -> dict[str, str]:
        found = etree.fromstring(post(ews, get_folder, user=user).content).find(f".//{T}EffectiveRights")
        return {el.tag.split("}")[1]: el.text or "" for el in found}

    assert set(rights(ALICE).values()) == {"true"}
    for permission, granted in (
        ("Reviewer", {"Read"}),
        ("Author", {"Read", "CreateContents"}),
        ("Editor", {"Read", "CreateContents", "Modify", "Delete"}),
    ):
        ews.control("POST", "delegates", {"owner": ALICE, "delegate": BOB, "permission": permission})
        assert {k for k, v in rights(BOB).items() if v == "true"} == granted, permission
