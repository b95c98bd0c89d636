"""GetUserAvailability: free/busy of one or more mailboxes over a time window (series expanded).

https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/getuseravailability-operation

The request element is ``GetUserAvailabilityRequest`` and the answer carries a ``FreeBusyResponseArray`` (one
``FreeBusyResponse`` per ``MailboxData``, in order) instead of ``ResponseMessages``. Behaviour chosen to match
Exchange's defaults:

* Any authenticated user may read anyone's free/busy (the calendar's Default permission is AvailabilityOnly), but
  subjects and locations (``Detailed`` / ``DetailedMerged``) only go to the owner, a delegate with at least Reviewer,
  an impersonating service account or an application granted the mailbox; everyone else's requested view is
  downgraded to ``FreeBusy`` / ``FreeBusyMerged``, as Exchange does.
* Private items show as busy time with ``IsPrivate`` and no subject or location, except to the owner.
* Items marked Free and cancelled items are not published as events; MergedFreeBusy digits are Free 0, Tentative 1,
  Busy 2, OOF 3, WorkingElsewhere 4, NoData 5; where items overlap in one interval the strongest status wins
  (OOF > Busy > Tentative > WorkingElsewhere > Free).
* Event times are naive local times in the request's ``t:TimeZone``.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from lxml import etree

from emulators.ews import soap, timezones
from emulators.ews.context import RequestContext
from emulators.ews.errors import EwsError, SoapFault
from emulators.ews.itemxml import ItemView
from emulators.ews.model import CalendarItem, Mailbox, Occurrence
from emulators.ews.operations import operation
from emulators.ews.operations.find_item import calendar_view
from emulators.ews.xml import M_NS, T_NS, child, children, m, parse_datetime, sub, t, text_of

DIGITS = {"Free": "0", "Tentative": "1", "Busy": "2", "OOF": "3", "WorkingElsewhere": "4", "NoData": "5"}
_STRENGTH = {"Free": 0, "WorkingElsewhere": 1, "Tentative": 2, "Busy": 3, "OOF": 4, "NoData": -1}
_DOWNGRADE = {"Detailed": "FreeBusy", "DetailedMerged": "FreeBusyMerged"}
VIEWS = ("MergedOnly", "FreeBusy", "FreeBusyMerged", "Detailed", "DetailedMerged")
# Exchange 2010 and later answer at most 62 days per request and merge in 5 to 1440-minute intervals.
MAX_WINDOW = timedelta(days=62)
INTERVAL_RANGE = (5, 1440)
# Outlook's default working hours, published with every non-merged-only view.
WORKING_DAYS = "Monday Tuesday Wednesday Thursday Friday"
WORKING_HOURS = (8 * 60, 17 * 60)


def _master(view: ItemView) -> CalendarItem:
    return view.master if isinstance(view, Occurrence) else (view.master or view)


def _field(view: ItemView, name: str) -> object:
    """A property of an occurrence (its series'), an exception or a single item."""
    return getattr(view.master if isinstance(view, Occurrence) else view, name)


def _may_see_details(ctx: RequestContext, mailbox: Mailbox) -> bool:
    try:
        ctx.check_access(mailbox, "read")
    except EwsError:
        return False
    return True


def _published(views: list[ItemView]) -> list[ItemView]:
    return [
        v for v in views if _field(v, "legacy_free_busy_status") != "Free" and not _field(v, "is_cancelled")
    ]


def _merged(views: list[ItemView], start: datetime, end: datetime, minutes: int) -> str:
    step = timedelta(minutes=minutes)
    count = math.ceil((end - start) / step)
    digits = []
    for n in range(count):
        low, high = start + n * step, start + (n + 1) * step
        status = "Free"
        for view in views:
            if view.start < high and view.end > low:
                candidate = str(_field(view, "legacy_free_busy_status"))
                if _STRENGTH.get(candidate, 0) > _STRENGTH[status]:
                    status = candidate
        digits.append(DIGITS[status])
    return "".join(digits)


def _local(zone: timezones.SerializableZone, instant: datetime) -> str:
    return zone.to_local(instant).strftime("%Y-%m-%dT%H:%M:%S")


def _write_event(
    parent: etree._Element, view: ItemView, zone: timezones.SerializableZone, details: bool, owner: bool
) -> None:
    event = sub(parent, t("CalendarEvent"))
    sub(event, t("StartTime"), _local(zone, view.start))
    sub(event, t("EndTime"), _local(zone, view.end))
    sub(event, t("BusyType"), _field(view, "legacy_free_busy_status"))
    if not details:
        return
    private = _field(view, "sensitivity") == "Private"
    info = sub(event, t("CalendarEventDetails"))
    sub(info, t("ID"), view.item_id)
    if owner or not private:
        sub(info, t("Subject"), _field(view, "subject"))
        location = _field(view, "location")
        if location:
            sub(info, t("Location"), location)
    kind = "Occurrence" if isinstance(view, Occurrence) else view.calendar_item_type
    sub(info, t("IsMeeting"), _master(view).is_meeting)
    sub(info, t("IsRecurring"), kind in ("Occurrence", "Exception"))
    sub(info, t("IsException"), kind == "Exception")
    sub(info, t("IsReminderSet"), _field(view, "reminder_is_set"))
    sub(info, t("IsPrivate"), private)


def _write_working_hours(parent: etree._Element, mailbox: Mailbox) -> None:
    hours = sub(parent, t("WorkingHours"))
    timezones.write_serializable(hours, t("TimeZone"), timezones.windows_id_for(mailbox.time_zone))
    periods = sub(hours, t("WorkingPeriodArray"))
    period = sub(periods, t("WorkingPeriod"))
    sub(period, t("DayOfWeek"), WORKING_DAYS)
    sub(period, t("StartTimeInMinutes"), WORKING_HOURS[0])
    sub(period, t("EndTimeInMinutes"), WORKING_HOURS[1])


def _options(request: etree._Element) -> tuple[datetime, datetime, int, str]:
    options = child(request, T_NS, "FreeBusyViewOptions")
    if options is None:
        raise SoapFault(
            "ErrorInvalidRequest", "The emulator answers free/busy requests only, not suggestions."
        )
    window = child(options, T_NS, "TimeWindow")
    start = parse_datetime(text_of(window, T_NS, "StartTime", "") or "")
    end = parse_datetime(text_of(window, T_NS, "EndTime", "") or "")
    if end <= start:
        raise SoapFault("ErrorInvalidTimeInterval", "The time window's end must be after its start.")
    if end - start > MAX_WINDOW:
        raise SoapFault("ErrorTimeIntervalTooBig", f"The time window is longer than {MAX_WINDOW.days} days.")
    interval = int(text_of(options, T_NS, "MergedFreeBusyIntervalInMinutes", "30") or 30)
    if not INTERVAL_RANGE[0] <= interval <= INTERVAL_RANGE[1]:
        raise SoapFault(
            "ErrorInvalidMergedFreeBusyInterval",
            f"MergedFreeBusyIntervalInMinutes must be between {INTERVAL_RANGE[0]} and {INTERVAL_RANGE[1]}.",
        )
    view = (text_of(options, T_NS, "RequestedView", "FreeBusy") or "FreeBusy").strip()
    if view not in VIEWS:
        raise SoapFault("ErrorInvalidFreeBusyViewType", f"The requested view '{view}' is not valid.")
    return start, end, interval, view


@operation("GetUserAvailabilityRequest")
def get_user_availability(ctx: RequestContext, request: etree._Element, body: etree._Element) -> None:
    zone = timezones.SerializableZone.parse(child(request, T_NS, "TimeZone"))
    start, end, interval, requested = _options(request)
    resp = etree.SubElement(body, m("GetUserAvailabilityResponse"), nsmap={"m": M_NS, "t": T_NS})
    array = sub(resp, m("FreeBusyResponseArray"))
    for data in children(child(request, M_NS, "MailboxDataArray"), T_NS, "MailboxData"):
        address = (text_of(child(data, T_NS, "Email"), T_NS, "Address", "") or "").strip()
        answer = sub(array, m("FreeBusyResponse"))
        mailbox = ctx.store.mailbox(address) if address else None
        if mailbox is None:
            # One unknown attendee fails only its own entry, never the request.
            message = sub(answer, m("ResponseMessage"), ResponseClass="Error")
            soap.fill_error(
                message,
                EwsError(
                    "ErrorMailRecipientNotFound",
                    f"Unable to resolve e-mail address <>;{address} to an Active Directory object.",
                ),
            )
            sub(sub(answer, m("FreeBusyView")), t("FreeBusyViewType"), "None")
            continue
        message = sub(answer, m("ResponseMessage"), ResponseClass="Success")
        sub(message, m("ResponseCode"), "NoError")
        view_type = requested if _may_see_details(ctx, mailbox) else _DOWNGRADE.get(requested, requested)
        views = _published(calendar_view(mailbox, start, end))
        free_busy = sub(answer, m("FreeBusyView"))
        sub(free_busy, t("FreeBusyViewType"), view_type)
        if "Merged" in view_type:
            sub(free_busy, t("MergedFreeBusy"), _merged(views, start, end, interval))
        if view_type == "MergedOnly":
            continue
        events = sub(free_busy, t("CalendarEventArray"))
        owner = ctx.acting_user == mailbox.address
        for view in views:
            _write_event(events, view, zone, view_type.startswith("Detailed"), owner)
        _write_working_hours(free_busy, mailbox)
