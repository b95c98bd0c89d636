"""A mailbox's busy time read from Exchange's free/busy (GetUserAvailability, the ``Detailed`` view), for the
operator's merged availability view.

Exchange decides how much it tells: times and busy types to anyone signed in; subjects and item ids only to the owner,
a delegate with Reviewer or more, or an application granted the mailbox (it answers the ``FreeBusy`` view to the
rest). exchangelib sends GetUserAvailability as the connection's own account (it carries no impersonation header), so
a service account that only impersonates sees times and busy types. A private item never shows its subject here,
whatever Exchange sends. Free items are not published by Exchange, and are left out if one came.

Requests: ``busy_times`` sends one GetServerTimeZones (exchangelib describes the request's zone with it) and one
GetUserAvailability, both within the current deadline.
https://learn.microsoft.com/exchange/client-developer/web-service-reference/getuseravailability-operation
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from oauthlib.oauth2 import InvalidClientIdError, TokenExpiredError

from calsync import deadline
from calsync.adapters.ews.connection import checked_mailbox
from calsync.adapters.ews.errors import Where, translated
from calsync.adapters.ews.session import MailboxSession, ews_utc
from calsync.domain import FreeBusy, TimeWindow
from calsync.domain.availability import BusyTime

# What Exchange is asked for: every item's times and busy type, and its details where it allows them.
REQUESTED_VIEW = "Detailed"
# The merged digits are not read, but Exchange wants an interval (5 to 1440 minutes).
MERGED_INTERVAL_MINUTES = 30
_DETAILED_VIEWS = frozenset({"Detailed", "DetailedMerged"})
_BUSY_TYPES = {value.value: value for value in FreeBusy}


class EwsAvailability(MailboxSession):
    """Free/busy of mailboxes reached through one ``ExchangeConnection`` with the credentials from its secret."""

    name = "ews"

    def busy_times(self, mailbox: str, window: TimeWindow) -> list[BusyTime]:
        """Every item of the mailbox that is not free and overlaps ``window``, sorted by start (then end): one
        GetServerTimeZones and one GetUserAvailability, each cut to the current deadline."""
        checked_mailbox(mailbox)
        where = Where(
            mailbox=mailbox,
            account=self._who,
            endpoint=self.connection.endpoint,
            secret_name=self.connection.secret_name,
            access_type=self.connection.access_type,
        )
        utc = window.utc()
        with translated(where):
            timeout = deadline.bounded(self._timeout, f"Exchange's free/busy of {mailbox}")
            protocol = self._accounts.protocol(self.connection, self._secret, timeout)
            try:
                views = _free_busy(protocol, mailbox, utc)
            except (InvalidClientIdError, TokenExpiredError):
                # As MailboxSession._call: an OAuth token expired in a warm process, noticed before anything was sent.
                views = _free_busy(protocol, mailbox, utc)
            found: list[BusyTime] = []
            for view in views:
                if isinstance(view, Exception):
                    raise view
                detailed = view.view_type in _DETAILED_VIEWS
                for event in view.calendar_events or ():
                    busy = _busy_time(event, detailed)
                    if busy is not None and busy.window.overlaps(utc):
                        found.append(busy)
        return sorted(found, key=lambda busy: (busy.window.start, busy.window.end))


def _free_busy(protocol: Any, mailbox: str, window: TimeWindow) -> list[Any]:
    """Exchange's FreeBusyView of the mailbox over ``window`` (in UTC, as its events' times come back)."""
    return list(
        protocol.get_free_busy_info(
            accounts=[(mailbox, "Required", False)],
            start=ews_utc(window.start),
            end=ews_utc(window.end),
            merged_free_busy_interval=MERGED_INTERVAL_MINUTES,
            requested_view=REQUESTED_VIEW,
        )
    )


def _busy_time(event: Any, detailed: bool) -> BusyTime | None:
    """One CalendarEvent as busy time; None for a free one. A busy type calsync does not know (NoData) is busy."""
    busy_type = _BUSY_TYPES.get(str(event.busy_type), FreeBusy.BUSY)
    if busy_type is FreeBusy.FREE:
        return None
    window = TimeWindow(_utc(event.start), _utc(event.end))
    details = event.details if detailed else None
    if details is None:
        return BusyTime(window, busy_type)
    private = bool(details.is_private)
    subject = None if private else str(details.subject or "")
    return BusyTime(
        window,
        busy_type,
        detailed=True,
        subject=subject,
        private=private,
        item_id=str(details.id) if details.id else None,
    )


def _utc(value: Any) -> datetime:
    return datetime.fromtimestamp(value.timestamp(), tz=UTC)
