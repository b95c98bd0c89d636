"""``CalendarFeed`` for Exchange Web Services: a mailbox calendar's changes since a SyncState, series expanded.

One ``SyncFolderItems`` loop (pages of up to 512 changes, until ``IncludesLastItemInRange``) reads every change with
every property sync needs in the same requests; only when a recurring series changed does one ``FindItem``
CalendarView over the sync window follow, to expand the changed series into their occurrences (exceptions at their
moved times, deleted occurrences absent). The calendar is addressed by its well-known name, never looked up.

``complete_series`` names every changed series, and also every single item reported as updated: a series turned
into a single item keeps its id, and none of its occurrences is left.
https://learn.microsoft.com/exchange/client-developer/web-service-reference/syncfolderitems-operation
https://learn.microsoft.com/exchange/client-developer/exchange-web-services/calendars-and-ews-in-exchange
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, time, timedelta
from typing import Any

from exchangelib import CalendarItem
from exchangelib.errors import ErrorInvalidSyncStateData
from exchangelib.fields import FieldPath
from exchangelib.items import ID_ONLY, SHALLOW
from exchangelib.properties import CalendarView
from exchangelib.services import FindItem
from exchangelib.util import xml_text_to_value
from exchangelib.version import EXCHANGE_2010

from calsync.adapters.ews.connection import (
    DEFAULT_TIMEOUT_SECONDS,
    AccountCache,
)
from calsync.adapters.ews.session import MailboxSession, calendar_of, ews_utc
from calsync.adapters.ews.stamps import INTEGRATION_FIELD, JRNI_KEY_FIELD, is_schedule_item
from calsync.domain import ExchangeConnection, FreeBusy, JrniKey, ResyncRequiredError, Stamp, TimeWindow
from calsync.domain.inbound import CalendarEvent, MailboxChanges

# Microsoft's upper bound for one SyncFolderItems page.
MAX_CHANGES_RETURNED = 512
# Exchange's default find-count limit: a CalendarView never returns more, so a fuller one is split in two.
VIEW_PAGE_SIZE = 1000
# A CalendarView may span at most two years (Exchange answers ErrorCalendarViewRangeTooBig beyond).
_MAX_VIEW_SPAN = timedelta(days=730)
# A truncated view is split until its halves are this short; a minute holding over 1000 items is not a calendar.
_MIN_VIEW_SPAN = timedelta(minutes=1)

# NoData (an item that says nothing about availability, as some importers write) blocks like Busy: for a booking
# platform a double booking costs more than a slot kept free for nothing.
_FREE_BUSY = {
    "Free": FreeBusy.FREE,
    "Tentative": FreeBusy.TENTATIVE,
    "Busy": FreeBusy.BUSY,
    "OOF": FreeBusy.OOF,
    "WorkingElsewhere": FreeBusy.WORKING_ELSEWHERE,
    "NoData": FreeBusy.BUSY,
}
_PRIVATE = frozenset({"Private", "Confidential"})
_SERIES_PARTS = frozenset({"Occurrence", "Exception"})

# What sync needs of every item. Duration (end - start, exact) gives an all-day item's end: exchangelib turns an
# all-day End into a date by going back 24 hours, a day too far when that day is 23 hours long (spring forward).
_ITEM_FIELDS = (
    "subject",
    "start",
    "end",
    "duration",
    "is_all_day",
    "legacy_free_busy_status",
    "sensitivity",
    "is_cancelled",
    "type",
    "uid",
    "last_modified_time",
    INTEGRATION_FIELD,
    JRNI_KEY_FIELD,
)
# Recipient lists cannot be asked for in FindItem (ErrorInvalidPropertyRequest; exchangelib would add a GetItem):
# occurrences take their master's, which SyncFolderItems does return.
_ATTENDEE_FIELDS = ("required_attendees", "optional_attendees")


class EwsFeed(MailboxSession):
    """Mailbox change feeds (``CalendarFeed``) reached through one ``ExchangeConnection`` with its secret."""

    name = "ews"

    def __init__(
        self,
        connection: ExchangeConnection,
        secret: dict[str, str],
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        accounts: AccountCache | None = None,
        max_changes_returned: int = MAX_CHANGES_RETURNED,
        view_page_size: int = VIEW_PAGE_SIZE,
    ) -> None:
        if not 1 <= max_changes_returned <= MAX_CHANGES_RETURNED:
            raise ValueError(f"max_changes_returned must be 1..{MAX_CHANGES_RETURNED}")
        super().__init__(connection, secret, timeout=timeout, accounts=accounts)
        self._max_changes = max_changes_returned
        self._view_page_size = view_page_size
        version = self._version
        # Exchange 2007 has one MeetingTimeZone; 2010 and later a zone per end.
        zones = (
            ("_start_timezone", "_end_timezone") if version.build >= EXCHANGE_2010 else ("_meeting_timezone",)
        )
        self._view_fields = [*_ITEM_FIELDS, *zones]
        self._sync_fields = [*self._view_fields, *_ATTENDEE_FIELDS]
        self._view_paths = {
            FieldPath(field=CalendarItem.get_field_by_fieldname(name)) for name in self._view_fields
        }

    # ---- CalendarFeed ----------------------------------------------------------------------------------------------

    def changes(self, mailbox: str, cursor: str | None, window: TimeWindow) -> MailboxChanges:
        """Everything that changed since ``cursor`` (None: every item, as created), series expanded inside ``window``.

        ResyncRequiredError when Exchange no longer accepts ``cursor``: sync again with None.
        """
        return self._call(mailbox, lambda account: self._changes(account, mailbox, cursor, window))

    # ---- the requests ----------------------------------------------------------------------------------------------

    def _changes(self, account: Any, mailbox: str, cursor: str | None, window: TimeWindow) -> MailboxChanges:
        calendar = calendar_of(account, mailbox)
        latest: dict[str, CalendarItem] = {}  # by id, the item as its last reported change has it
        updated: set[str] = set()  # items the previous sync already reported
        removed: dict[str, None] = {}  # ordered set
        try:
            for change, item in calendar.sync_items(
                sync_state=cursor, only_fields=self._sync_fields, max_changes_returned=self._max_changes
            ):
                if isinstance(item, Exception):
                    raise item
                if change == "delete":
                    latest.pop(item.id, None)
                    removed[item.id] = None
                elif change in ("create", "update") and isinstance(item, CalendarItem):
                    removed.pop(item.id, None)
                    latest[item.id] = item
                    if change == "update":
                        updated.add(item.id)
                # read_flag_change: nothing a calendar shows
        except ErrorInvalidSyncStateData as exc:
            raise ResyncRequiredError(
                f"Exchange no longer accepts the sync state of {mailbox}'s calendar: it must be synced from scratch"
            ) from exc
        upserts: list[CalendarEvent] = []
        masters: dict[str, CalendarItem] = {}  # by UID: occurrences carry their master's
        complete: list[str] = []
        for item in latest.values():
            if is_schedule_item(item):
                continue  # time outside working hours, calsync's own: nothing an adviser booked
            if item.type == "RecurringMaster":
                if item.uid:
                    masters[item.uid] = item
                complete.append(item.id)
            else:
                upserts.append(_event(item))
                if item.id in updated:
                    # It may have been a series until now: a series turned into a single item keeps its id, and
                    # none of its occurrences is left.
                    complete.append(item.id)
        if masters:
            upserts.extend(self._occurrences(account, mailbox, masters, window))
        return MailboxChanges(
            mailbox=mailbox,
            upserts=upserts,
            removed=list(removed),
            complete_series=complete,
            cursor=calendar.item_sync_state,
        )

    def _occurrences(
        self, account: Any, mailbox: str, masters: dict[str, CalendarItem], window: TimeWindow
    ) -> list[CalendarEvent]:
        """Every occurrence and exception of ``masters`` overlapping ``window``: one CalendarView over the window.

        EWS cannot combine a CalendarView with a restriction, so the view shows the whole calendar and only the
        changed series' parts are kept (a 90-day window of one mailbox is a few hundred items at most).
        """
        utc = window.utc()
        found: dict[str, CalendarEvent] = {}
        for item in self._view(account, mailbox, utc.start, utc.end):
            master = masters.get(item.uid) if item.type in _SERIES_PARTS else None
            if master is None or item.id in found:
                continue
            event = _event(item, series=master)
            if event.window.end > utc.start:  # EWS also returns items that end exactly where the view starts
                found[item.id] = event
        return sorted(found.values(), key=lambda e: (e.window.start, e.remote_id))

    def _view(self, account: Any, mailbox: str, start: datetime, end: datetime) -> Iterable[CalendarItem]:
        """The calendar between ``start`` and ``end``, in views of at most two years that Exchange did not truncate."""
        if end - start > _MAX_VIEW_SPAN:
            middle = start + _MAX_VIEW_SPAN
            yield from self._view(account, mailbox, start, middle)
            yield from self._view(account, mailbox, middle, end)
            return
        # The FindItem service itself rather than folders.view().only(): exchangelib counts UID and extended
        # properties as "complex" and would add a GetItem for them, while Exchange returns both in a FindItem
        # (ICalUid in a CalendarView is how the EWS Managed API ties occurrences to their series).
        view = CalendarView(start=ews_utc(start), end=ews_utc(end), max_items=self._view_page_size)
        found = FindItem(account=account, page_size=self._view_page_size).call(
            folders=[calendar_of(account, mailbox)],
            additional_fields=self._view_paths,
            restriction=None,
            order_fields=None,
            shape=ID_ONLY,
            query_string=None,
            depth=SHALLOW,
            calendar_view=view,
            max_items=self._view_page_size,
            offset=0,
        )
        items = []
        for item in found:
            if isinstance(item, Exception):
                raise item
            items.append(item)
        if len(items) < self._view_page_size or end - start <= _MIN_VIEW_SPAN:
            yield from items
            return
        # Possibly truncated (a view has no offset to page on): narrow the range, halves overlapping items repeat.
        middle = start + (end - start) / 2
        yield from self._view(account, mailbox, start, middle)
        yield from self._view(account, mailbox, middle, end)


# ---- translation ---------------------------------------------------------------------------------------------------


def _event(item: CalendarItem, series: CalendarItem | None = None) -> CalendarEvent:
    """The CalendarEvent an item (or, with ``series``, one of that series' occurrences) shows as."""
    attendees_of = series or item
    return CalendarEvent(
        remote_id=item.id,
        version=item.changekey or "",
        window=_window(item),
        free_busy=_FREE_BUSY.get(item.legacy_free_busy_status or "", FreeBusy.BUSY),
        subject=item.subject or "",
        is_private=item.sensitivity in _PRIVATE,
        is_all_day=bool(item.is_all_day),
        is_cancelled=bool(item.is_cancelled),
        series_id=series.id if series is not None else None,
        stamp=_stamp(item),
        has_attendees=bool(attendees_of.required_attendees or attendees_of.optional_attendees),
        modified_at=_utc(item.last_modified_time) if item.last_modified_time else None,
    )


def _window(item: CalendarItem) -> TimeWindow:
    """The item's time in UTC; an all-day item's is its days from midnight to midnight in the item's own zone."""
    if not item.is_all_day:
        return TimeWindow(_utc(item.start), _utc(item.end))
    # exchangelib gives all-day starts and ends as dates in the item's zones (read with the item).
    zone = getattr(item, "_start_timezone", None) or getattr(item, "_meeting_timezone", None) or UTC
    start = datetime.combine(item.start, time(0), tzinfo=zone).astimezone(UTC)
    duration = xml_text_to_value(item.duration, timedelta) if item.duration else None
    if duration is not None:
        return TimeWindow(start, start + duration)
    # No Duration (Exchange always sends it when asked): exchangelib's end date, a day short when the last day is a
    # spring-forward day.
    end_zone = getattr(item, "_end_timezone", None) or zone
    end = datetime.combine(item.end + timedelta(days=1), time(0), tzinfo=end_zone).astimezone(UTC)
    return TimeWindow(start, max(start, end))


def _utc(value: Any) -> datetime:
    return datetime.fromtimestamp(value.timestamp(), tz=UTC)


def _stamp(item: CalendarItem) -> Stamp | None:
    """Our stamp, when the item carries both parts of it (a half or malformed stamp is not ours)."""
    integration_id = getattr(item, INTEGRATION_FIELD, None)
    jrni_key = getattr(item, JRNI_KEY_FIELD, None)
    if not integration_id or not jrni_key:
        return None
    try:
        return Stamp(integration_id, JrniKey.parse(jrni_key))
    except ValueError:
        return None
