"""``CalendarProvider`` for Exchange Web Services, through exchangelib.

Every operation is exactly one EWS request (plus, with OAuth2, a token request when the process has no valid token):
the calendar is addressed as ``DistinguishedFolderId("calendar")`` with the mailbox, never looked up, and no version,
auth-type or autodiscover probe is sent. Items are plain appointments: nobody is ever invited or notified.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, time
from typing import Any

from exchangelib import CalendarItem
from exchangelib.errors import ErrorItemNotFound, ErrorServerBusy
from exchangelib.folders import FolderCollection
from exchangelib.items import (
    ALWAYS_OVERWRITE,
    NEVER_OVERWRITE,
    SAVE_ONLY,
    SEND_TO_NONE,
)
from exchangelib.properties import Body, HTMLBody

from calsync.adapters.ews.connection import (
    supports_working_elsewhere,
)
from calsync.adapters.ews.session import (
    MailboxSession,
    calendar_of,
    create_item,
    create_items,
    delete_item,
    ews_utc,
)
from calsync.adapters.ews.stamps import INTEGRATION_FIELD, JRNI_KEY_FIELD, is_schedule_item, stamp_values
from calsync.domain import CalsyncError, FreeBusy, JrniKey, PermanentError, ThrottledError, TimeWindow
from calsync.domain.model import EventContent, Stamp
from calsync.ports import RemoteRef, StampedItem

# Items per FindItem page when listing our items: Exchange's default find-count limit is 1000.
OUR_ITEMS_PAGE = 1000

# The fields update_event overwrites: what JRNI decides. Location, categories and the like stay as Outlook has them.
_UPDATED_FIELDS = ["subject", "body", "start", "end", "legacy_free_busy_status"]


class EwsCalendar(MailboxSession):
    """Exchange calendars reached through one ``ExchangeConnection`` with the credentials from its secret."""

    name = "ews"
    # One CreateItem carries up to 100 items (Microsoft's advice for batched EWS requests).
    MAX_BATCH = 100

    # ---- CalendarProvider ------------------------------------------------------------------------------------------

    def create_event(self, mailbox: str, content: EventContent) -> RemoteRef:
        """Write a new appointment carrying ``content.stamp``: one CreateItem."""

        def create(account: Any) -> RemoteRef:
            created = create_item(account, mailbox, **self._fields(content), **stamp_values(content.stamp))
            return RemoteRef(created.id, created.changekey)

        return self._call(mailbox, create)

    def create_events(self, mailbox: str, contents: Sequence[EventContent]) -> list[RemoteRef | CalsyncError]:
        """Write new appointments, each carrying its stamp: one CreateItem for up to ``MAX_BATCH``."""
        if len(contents) > self.MAX_BATCH:
            raise ValueError(f"at most {self.MAX_BATCH} items in one CreateItem")

        def create(account: Any) -> list[RemoteRef | CalsyncError]:
            items = [{**self._fields(content), **stamp_values(content.stamp)} for content in contents]
            results = create_items(account, mailbox, items, chunk_size=self.MAX_BATCH)
            return [_created(result, mailbox) for result in results]

        return self._call(mailbox, create)

    def update_event(
        self, mailbox: str, remote_id: str, content: EventContent, *, if_version: str | None = None
    ) -> RemoteRef | None:
        """Overwrite subject, body, times and free/busy (JRNI is the source of truth): one UpdateItem.

        With ``if_version`` the item's change key is sent with NeverOverwrite, so Exchange refuses the write
        (ErrorIrresolvableConflict → ConflictError) when the item changed after the version it was decided on."""

        def update(account: Any) -> RemoteRef | None:
            item = CalendarItem(account=account, id=remote_id, changekey=if_version, **self._fields(content))
            # AlwaysOverwrite when JRNI changed: an Outlook edit in between loses, no change key needed. NeverOverwrite
            # when answering an Outlook change: a newer Outlook change must be read and decided on, not overwritten.
            resolution = ALWAYS_OVERWRITE if if_version is None else NEVER_OVERWRITE
            [result] = account.bulk_update(
                items=[(item, _UPDATED_FIELDS)],
                conflict_resolution=resolution,
                message_disposition=SAVE_ONLY,
                send_meeting_invitations_or_cancellations=SEND_TO_NONE,
                suppress_read_receipts=True,
            )
            if isinstance(result, ErrorItemNotFound):
                return None
            if isinstance(result, Exception):
                raise result
            item_id, changekey = result
            return RemoteRef(item_id, changekey)

        return self._call(mailbox, update)

    def delete_event(self, mailbox: str, remote_id: str) -> None:
        """Hard-delete the item (no cancellation sent); an item already gone counts as deleted: one DeleteItem."""

        def delete(account: Any) -> None:
            result = delete_item(account, remote_id)
            if isinstance(result, Exception) and not isinstance(result, ErrorItemNotFound):
                raise result

        self._call(mailbox, delete)

    def find_stamped(self, mailbox: str, stamp: Stamp) -> list[RemoteRef]:
        """Items in the calendar carrying both parts of ``stamp``: one FindItem with an IsEqualTo restriction on each."""

        def find(account: Any) -> list[RemoteRef]:
            found = FolderCollection(account=account, folders=[calendar_of(account, mailbox)])
            items = found.filter(**stamp_values(stamp)).only("id", "changekey")
            return [RemoteRef(item.id, item.changekey) for item in items]

        return self._call(mailbox, find)

    def our_items(self, mailbox: str, integration_id: str) -> list[StampedItem]:
        """Every item of the calendar stamped by ``integration_id``, with the JRNI object each shows: FindItem with an
        IsEqualTo restriction, ``OUR_ITEMS_PAGE`` items a request."""

        def find(account: Any) -> list[StampedItem]:
            found = FolderCollection(account=account, folders=[calendar_of(account, mailbox)])
            query = found.filter(**{INTEGRATION_FIELD: integration_id}).only(
                "id", "changekey", "start", "end", JRNI_KEY_FIELD
            )
            query.page_size = OUR_ITEMS_PAGE
            items = []
            for item in query:
                if is_schedule_item(item):
                    continue  # time outside working hours: no booking's item
                try:
                    key = JrniKey.parse(str(getattr(item, JRNI_KEY_FIELD, "") or ""))
                except ValueError:
                    continue  # stamped by us but naming nothing JRNI could have: not ours to touch
                window = TimeWindow(_utc(item.start), _utc(item.end))
                items.append(StampedItem(key, RemoteRef(item.id, item.changekey), window))
            return items

        return self._call(mailbox, find)

    # ---- helpers ---------------------------------------------------------------------------------------------------

    def _fields(self, content: EventContent) -> dict[str, Any]:
        free_busy = content.free_busy
        if free_busy is FreeBusy.WORKING_ELSEWHERE and not supports_working_elsewhere(self._version):
            free_busy = FreeBusy.BUSY  # Exchange 2010 and older have no WorkingElsewhere: the nearest is Busy
        window = content.window.utc()
        return {
            "subject": content.subject,
            "body": HTMLBody(content.body) if content.is_html else Body(content.body),
            "start": ews_utc(window.start),
            "end": ews_utc(window.end),
            "legacy_free_busy_status": free_busy.value,
        }


def _utc(value: Any) -> datetime:
    """An EWSDateTime (or, for an item turned all-day in Outlook, an EWSDate) as a plain UTC datetime."""
    if isinstance(value, datetime):
        return datetime.fromtimestamp(value.timestamp(), tz=UTC)
    return datetime.combine(value, time(), tzinfo=UTC)


def _created(result: Any, mailbox: str) -> RemoteRef | CalsyncError:
    """One item's answer in a batched CreateItem."""
    if isinstance(result, ErrorServerBusy):
        return ThrottledError(f"Exchange is throttling writes to {mailbox}: {result}", delay_seconds=10.0)
    if isinstance(result, Exception):
        return PermanentError(f"Exchange refused an item in {mailbox}: {type(result).__name__}: {result}")
    return RemoteRef(result.id, result.changekey)
