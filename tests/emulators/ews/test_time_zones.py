"""Time zones: series across DST (London, New York), GetServerTimeZones, and Exchange 2007's MeetingTimeZone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests
from exchangelib import Account, CalendarItem, EWSDate, EWSDateTime, EWSTimeZone
from exchangelib.properties import TimeZone
from exchangelib.recurrence import DailyPattern, Recurrence, WeeklyPattern
from exchangelib.winzone import MS_TIMEZONE_TO_IANA_MAP
from lxml import etree

from emulators.ews.testing import EwsEmulator
from tests.emulators.ews.conftest import PASSWORD

ALICE = "alice@example.com"
NEW_YORK = EWSTimeZone("America/New_York")
T = "{http://schemas.microsoft.com/exchange/services/2006/types}"


def test_new_york_series_keeps_its_local_time_when_the_clocks_change(
    ews: EwsEmulator, alice: Account
) -> None:
    # US daylight saving ends on Sunday 2 November 2025: 09:00 EDT is 13:00Z, 09:00 EST is 14:00Z.
    start = EWSDateTime(2025, 10, 27, 9, tzinfo=NEW_YORK)
    item = CalendarItem(
        account=alice,
        folder=alice.calendar,
        subject="Stand-up NY",
        start=start,
        end=start + timedelta(minutes=15),
        recurrence=Recurrence(
            pattern=WeeklyPattern(interval=1, weekdays=[1, 3]), start=EWSDate(2025, 10, 27), number=4
        ),
    )
    item.save(send_meeting_invitations="SendToNone")

    stored = ews.items(ALICE, start="2025-10-20T00:00:00Z", end="2025-11-20T00:00:00Z")
    assert [s["start"] for s in stored] == [
        "2025-10-27T13:00:00Z",
        "2025-10-29T13:00:00Z",
        "2025-11-03T14:00:00Z",
        "2025-11-05T14:00:00Z",
    ]
    view = alice.calendar.view(start=start - timedelta(days=7), end=start + timedelta(days=30))
    assert {v.start.astimezone(NEW_YORK).strftime("%H:%M") for v in view} == {"09:00"}
    assert alice.calendar.get(id=item.id)._start_timezone == NEW_YORK


def test_london_daily_series_over_the_last_sunday_of_october(ews: EwsEmulator, alice: Account) -> None:
    london = EWSTimeZone("Europe/London")
    start = EWSDateTime(2025, 10, 24, 8, 30, tzinfo=london)
    CalendarItem(
        account=alice,
        folder=alice.calendar,
        subject="Early",
        start=start,
        end=start + timedelta(hours=1),
        recurrence=Recurrence(pattern=DailyPattern(interval=1), start=EWSDate(2025, 10, 24), number=5),
    ).save(send_meeting_invitations="SendToNone")
    utc = [s["start"] for s in ews.items(ALICE, start="2025-10-01T00:00:00Z", end="2025-11-01T00:00:00Z")]
    # BST (UTC+1) up to Saturday 25th; the clocks go back at 02:00 on Sunday 26th.
    assert utc == [
        "2025-10-24T07:30:00Z",
        "2025-10-25T07:30:00Z",
        "2025-10-26T08:30:00Z",
        "2025-10-27T08:30:00Z",
        "2025-10-28T08:30:00Z",
    ]


@pytest.mark.parametrize(
    ("iana", "bias", "daylight"),
    [
        ("Europe/London", 0, (-60, 3, 5, 10, 5)),
        ("America/New_York", 300, (-60, 3, 2, 11, 1)),
        ("Australia/Sydney", -600, (-60, 10, 1, 4, 1)),  # southern hemisphere: summer time over the new year
        ("Asia/Kolkata", -330, None),  # no daylight saving
    ],
)
def test_server_time_zone_definitions_give_the_right_offsets(
    ews: EwsEmulator, alice: Account, iana: str, bias: int, daylight: tuple[int, int, int, int, int] | None
) -> None:
    [definition] = alice.protocol.get_timezones(timezones=[EWSTimeZone(iana)], return_full_timezone_data=True)
    assert definition.id == EWSTimeZone(iana).ms_id
    zone = TimeZone.from_server_timezone(tz_definition=definition, for_year=2025)
    assert zone.bias == bias
    if daylight is None:
        assert zone.daylight_time.bias == 0 and zone.standard_time.bias == 0
        return
    dst_bias, dst_month, dst_order, std_month, std_order = daylight
    assert (zone.daylight_time.bias, zone.daylight_time.iso_month, zone.daylight_time.occurrence) == (
        dst_bias,
        dst_month,
        dst_order,
    )
    assert (zone.standard_time.iso_month, zone.standard_time.occurrence) == (std_month, std_order)
    assert zone.daylight_time.weekday == zone.standard_time.weekday == 7  # Sunday
    # Cross-check with zoneinfo: the offset just after each change is what the definition says.
    tz = ZoneInfo(iana)
    summer_month = dst_month + 1 if dst_month < 12 else 1
    assert datetime(2025, summer_month, 20, 12, tzinfo=tz).utcoffset() == timedelta(
        minutes=-(bias + dst_bias)
    )
    winter_month = std_month + 1
    assert datetime(2025, winter_month, 20, 12, tzinfo=tz).utcoffset() == timedelta(minutes=-bias)


def test_server_time_zones_without_ids_lists_every_zone_exchangelib_knows(
    ews: EwsEmulator, alice: Account
) -> None:
    definitions = list(alice.protocol.get_timezones())
    assert {d.id for d in definitions} == set(MS_TIMEZONE_TO_IANA_MAP)
    # Without ReturnFullTimeZoneData the definitions are names only.
    assert all(not d.periods for d in definitions)


# ---- Exchange 2007 SP1: MeetingTimeZone -----------------------------------------------------------------------------
# exchangelib 5.6 cannot be used here: with an Exchange 2007 build it sends <t:MeetingTimeZone Id="…"/>, an attribute
# Microsoft's schema does not allow (TimeZoneType has TimeZoneName only), so the request is refused with
# ErrorSchemaValidation as Exchange would. These tests speak SOAP directly instead.

ENVELOPE = """<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"
  xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"
  xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">
<s:Header><t:RequestServerVersion Version="{version}"/></s:Header><s:Body>{body}</s:Body></s:Envelope>"""

CREATE_2007 = """<m:CreateItem SendMeetingInvitations="SendToNone">
<m:SavedItemFolderId><t:DistinguishedFolderId Id="calendar"/></m:SavedItemFolderId>
<m:Items><t:CalendarItem><t:Subject>Legacy series</t:Subject>
<t:Start>2025-10-27T13:00:00Z</t:Start><t:End>2025-10-27T14:00:00Z</t:End>
<t:Recurrence><t:DailyRecurrence><t:Interval>7</t:Interval></t:DailyRecurrence>
<t:NumberedRecurrence><t:StartDate>2025-10-27</t:StartDate><t:NumberOfOccurrences>2</t:NumberOfOccurrences></t:NumberedRecurrence>
</t:Recurrence><t:MeetingTimeZone TimeZoneName="Eastern Standard Time"/></t:CalendarItem></m:Items></m:CreateItem>"""

GET = """<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties>
<t:FieldURI FieldURI="calendar:Start"/><t:FieldURI FieldURI="calendar:MeetingTimeZone"/>
<t:FieldURI FieldURI="calendar:StartTimeZone"/></t:AdditionalProperties></m:ItemShape>
<m:ItemIds><t:ItemId Id="{id}"/></m:ItemIds></m:GetItem>"""


def soap(ews: EwsEmulator, body: str, version: str) -> etree._Element:
    reply = requests.post(
        ews.ews_url,
        data=ENVELOPE.format(version=version, body=body).encode(),
        auth=(ALICE, PASSWORD),
        headers={"Content-Type": "text/xml; charset=utf-8"},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    return etree.fromstring(reply.content)


def test_exchange_2007_series_uses_meeting_time_zone(ews: EwsEmulator, alice: Account) -> None:
    created = soap(ews, CREATE_2007, "Exchange2007_SP1")
    item_id = created.find(f".//{T}ItemId").get("Id")
    # The zone named in MeetingTimeZone governs the series: 09:00 New York on both sides of 2 November.
    assert [
        s["start"] for s in ews.items(ALICE, start="2025-10-01T00:00:00Z", end="2025-12-01T00:00:00Z")
    ] == [
        "2025-10-27T13:00:00Z",
        "2025-11-03T14:00:00Z",
    ]

    legacy = soap(ews, GET.format(id=item_id), "Exchange2007_SP1").find(f".//{T}CalendarItem")
    zone = legacy.find(f"{T}MeetingTimeZone")
    assert zone is not None and legacy.find(f"{T}StartTimeZone") is None
    assert zone.get("TimeZoneName") == "Eastern Standard Time"
    assert zone.findtext(f"{T}BaseOffset") == "PT5H"
    assert zone.findtext(f"{T}Daylight/{T}Offset") == "-PT1H"
    assert zone.findtext(f"{T}Daylight/{T}RelativeYearlyRecurrence/{T}Month") == "March"
    assert zone.findtext(f"{T}Standard/{T}RelativeYearlyRecurrence/{T}DayOfWeekIndex") == "First"

    modern = soap(ews, GET.format(id=item_id), "Exchange2016").find(f".//{T}CalendarItem")
    assert modern.find(f"{T}MeetingTimeZone") is None
    assert modern.find(f"{T}StartTimeZone").get("Id") == "Eastern Standard Time"
    assert modern.findtext(f"{T}Start") == datetime(2025, 10, 27, 13, tzinfo=UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


def test_unknown_time_zone_id_is_refused(ews: EwsEmulator, alice: Account) -> None:
    body = "<m:GetServerTimeZones><m:Ids><t:Id>Atlantis Standard Time</t:Id></m:Ids></m:GetServerTimeZones>"
    message = soap(ews, body, "Exchange2016").find(
        ".//{http://schemas.microsoft.com/exchange/services/2006/messages}GetServerTimeZonesResponseMessage"
    )
    assert message.get("ResponseClass") == "Error"
    assert (
        message.findtext("{http://schemas.microsoft.com/exchange/services/2006/messages}ResponseCode")
        == "ErrorTimeZone"
    )
