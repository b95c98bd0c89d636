"""The emulator's in-memory state: accounts, their calendars, and an ordered change log per calendar.

Every write goes through :class:`Store`, which stamps a new change key, advances the calendar's change sequence and
tells the listeners (subscriptions) — so a change made through EWS by any client and one made through the control
plane "as the owner in Outlook" look exactly the same to sync and notifications.
"""

from __future__ import annotations

import base64
import itertools
import secrets
import struct
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from emulators.ews.errors import ITEM_NOT_FOUND, EwsError

# (property set GUID lower-case | distinguished set name | "", name | "id:<n>" | "tag:<0x..>", MAPI type)
ExtKey = tuple[str, str, str]

FREE_BUSY_VALUES = ("Free", "Tentative", "Busy", "OOF", "WorkingElsewhere", "NoData")
SENSITIVITY_VALUES = ("Normal", "Personal", "Private", "Confidential")


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@dataclass
class Attendee:
    email: str
    name: str | None = None
    response: str = "Unknown"


@dataclass
class CalendarItem:
    """A calendar item as the mailbox stores it: a single item, a recurring master, or an exception of one."""

    num: int
    mailbox: Mailbox
    change_key: str
    start: datetime
    end: datetime
    subject: str = ""
    body: str = ""
    body_type: str = "Text"
    is_all_day: bool = False
    legacy_free_busy_status: str = "Busy"
    sensitivity: str = "Normal"
    location: str | None = None
    categories: list[str] = field(default_factory=list)
    importance: str = "Normal"
    reminder_is_set: bool = True
    reminder_minutes_before_start: int = 15
    extended_properties: dict[ExtKey, str | list[str]] = field(default_factory=dict)
    start_timezone: str | None = None
    end_timezone: str | None = None
    uid: str = field(default_factory=lambda: uuid.uuid4().hex.upper())
    organizer: str | None = None
    required_attendees: list[Attendee] = field(default_factory=list)
    optional_attendees: list[Attendee] = field(default_factory=list)
    is_cancelled: bool = False
    created: datetime = field(default_factory=utcnow)
    last_modified: datetime = field(default_factory=utcnow)
    # Recurrence: set on masters only (an object from emulators.ews.recurrence).
    recurrence: Any = None
    # Exceptions of a master, keyed by the occurrence's original start (UTC).
    exceptions: dict[datetime, CalendarItem] = field(default_factory=dict)
    deleted_occurrences: set[datetime] = field(default_factory=set)
    # On an exception: its master and the start the occurrence had in the pattern.
    master: CalendarItem | None = None
    original_start: datetime | None = None
    created_seq: int = 0
    modified_seq: int = 0
    # The calendar folder holding it: "calendar" (the default Calendar) or a folder made with Store.add_folder.
    folder: str = "calendar"

    @property
    def item_id(self) -> str:
        if self.master is not None and self.original_start is not None:
            return occurrence_id(self.master, self.original_start)
        return encode_item_id(self.mailbox.num, self.num)

    @property
    def calendar_item_type(self) -> str:
        if self.master is not None:
            return "Exception"
        return "RecurringMaster" if self.recurrence is not None else "Single"

    @property
    def is_meeting(self) -> bool:
        return bool(self.required_attendees or self.optional_attendees)


@dataclass
class Occurrence:
    """An unmodified occurrence of a recurring series, as CalendarView expands it (never stored)."""

    master: CalendarItem
    original_start: datetime
    index: int

    @property
    def item_id(self) -> str:
        return occurrence_id(self.master, self.original_start)

    @property
    def start(self) -> datetime:
        return self.original_start

    @property
    def end(self) -> datetime:
        from emulators.ews import recurrence

        # Wall-clock duration in the series' zones: an all-day occurrence ends at local midnight across DST too.
        return recurrence.occurrence_end(self.master, self.original_start)


# Names of the calendar folders a mailbox makes beside the well-known ones; no distinguished folder id looks so.
FOLDER_PREFIX = "cal:"


@dataclass(frozen=True)
class CalendarFolder:
    """A calendar folder other than the default Calendar (class IPF.Appointment), such as a "Branch rota"."""

    name: str  # the key inside the mailbox, carried in the folder id
    display_name: str
    parent: str  # "calendar", "msgfolderroot" or another such folder's name


@dataclass
class Mailbox:
    num: int
    address: str
    display_name: str
    time_zone: str
    items: dict[int, CalendarItem] = field(default_factory=dict)
    seq: int = 0
    # item number → (change sequence at which it was deleted, its folder): lets SyncFolderItems report the delete
    tombstones: dict[int, tuple[int, str]] = field(default_factory=dict)
    # The calendar folders besides the default one, by name, in the order they were made.
    folders: dict[str, CalendarFolder] = field(default_factory=dict)

    @property
    def calendar_folder_id(self) -> str:
        return encode_folder_id(self.num, "calendar")

    def folder_id(self, name: str) -> str:
        return encode_folder_id(self.num, name)

    def is_calendar(self, name: str) -> bool:
        """Whether ``name`` is one of this mailbox's calendar folders (the default Calendar or one made beside it)."""
        return name == "calendar" or name in self.folders

    def items_in(self, folder: str) -> list[CalendarItem]:
        return [item for item in self.items.values() if item.folder == folder]

    @property
    def root_folder_id(self) -> str:
        return encode_folder_id(self.num, "root")

    @property
    def folder_change_key(self) -> str:
        return "AgAAAA" + base64.b64encode(struct.pack(">I", self.seq)).decode()


@dataclass
class Account:
    address: str
    password: str
    display_name: str
    mailbox: Mailbox


@dataclass
class OAuthApp:
    tenant_id: str
    client_id: str
    client_secret: str
    mailboxes: set[str] | None  # None: every mailbox


@dataclass(frozen=True)
class ChangeEvent:
    """One change to one calendar, in the order it happened; what notifications are made of."""

    mailbox: Mailbox
    seq: int
    kind: str  # CreatedEvent | ModifiedEvent | DeletedEvent | MovedEvent
    item_id: str
    change_key: str
    timestamp: datetime
    old_item_id: str | None = None
    folder: str = "calendar"  # the calendar folder the item is in (was in, for a delete or move)


# ---- ids -----------------------------------------------------------------------------------------------------------
# Real ids are opaque base64 blobs that name the mailbox; ours are too, so any id can be traced back to its mailbox
# (and access-checked) without a lookup table.

_ITEM = 1
_OCCURRENCE = 2
_FOLDER = 3
_ID_PREFIX = (
    b"\x00\x00\x00\x2e"  # decoded real ids start "AAAAL..." / "AAMk..." depending on kind; ours start "AAAAL"
)


def _encode(payload: bytes) -> str:
    return base64.b64encode(_ID_PREFIX + payload).decode()


def _decode(value: str) -> bytes | None:
    try:
        raw = base64.b64decode(value.encode(), validate=True)
    except (ValueError, UnicodeEncodeError):
        return None
    if not raw.startswith(_ID_PREFIX):
        return None
    return raw[len(_ID_PREFIX) :]


def encode_item_id(mailbox_num: int, item_num: int) -> str:
    return _encode(struct.pack(">BII", _ITEM, mailbox_num, item_num))


def occurrence_id(master: CalendarItem, original_start: datetime) -> str:
    return _encode(
        struct.pack(">BIIq", _OCCURRENCE, master.mailbox.num, master.num, int(original_start.timestamp()))
    )


def encode_folder_id(mailbox_num: int, name: str) -> str:
    return _encode(struct.pack(">BI", _FOLDER, mailbox_num) + name.encode())


@dataclass(frozen=True)
class DecodedId:
    kind: str  # item | occurrence | folder
    mailbox_num: int
    item_num: int = 0
    original_start: datetime | None = None
    folder: str = ""


def decode_id(value: str) -> DecodedId | None:
    """Decode an item, occurrence or folder id; None when it is not one of ours (ErrorInvalidIdMalformed)."""
    raw = _decode(value)
    if not raw:
        return None
    try:
        kind = raw[0]
        if kind == _ITEM and len(raw) == 9:
            _, mbx, num = struct.unpack(">BII", raw)
            return DecodedId("item", mbx, num)
        if kind == _OCCURRENCE and len(raw) == 17:
            _, mbx, num, ts = struct.unpack(">BIIq", raw)
            return DecodedId("occurrence", mbx, num, datetime.fromtimestamp(ts, UTC))
        if kind == _FOLDER and len(raw) >= 5:
            _, mbx = struct.unpack(">BI", raw[:5])
            return DecodedId("folder", mbx, folder=raw[5:].decode())
    except (struct.error, UnicodeDecodeError, ValueError, OverflowError):
        return None
    return None


def new_change_key() -> str:
    # Exchange change keys are base64 blobs beginning "DwAAABYAAAA"; only their inequality matters to clients.
    return "DwAAABYAAAA" + base64.b64encode(secrets.token_bytes(9)).decode()


def normalize_address(address: str) -> str:
    return address.strip().lower()


# ---- the store -----------------------------------------------------------------------------------------------------


class Store:
    """All accounts, mailboxes and permissions; the one place calendars are changed."""

    def __init__(self) -> None:
        self.accounts: dict[str, Account] = {}
        self.mailboxes: dict[int, Mailbox] = {}
        self.impersonation: dict[str, set[str] | None] = {}  # service account → mailboxes (None: all)
        self.delegates: dict[tuple[str, str], str] = {}  # (owner, delegate) → permission level
        self.oauth_apps: dict[str, OAuthApp] = {}
        self.tokens: dict[str, tuple[str, float]] = {}  # bearer token → (client id, expiry epoch)
        self.listeners: list[Callable[[ChangeEvent], None]] = []
        self._mailbox_nums = itertools.count(1)
        self._item_nums = itertools.count(1)
        self._folder_nums = itertools.count(1)

    # -- accounts and permissions --

    def add_account(
        self, address: str, password: str, display_name: str | None = None, time_zone: str = "UTC"
    ) -> Account:
        key = normalize_address(address)
        if key in self.accounts:
            raise KeyError(address)
        mailbox = Mailbox(next(self._mailbox_nums), key, display_name or address.split("@")[0], time_zone)
        self.mailboxes[mailbox.num] = mailbox
        account = Account(key, password, mailbox.display_name, mailbox)
        self.accounts[key] = account
        return account

    def mailbox(self, address: str) -> Mailbox | None:
        account = self.accounts.get(normalize_address(address))
        return account.mailbox if account else None

    def grant_impersonation(self, service_account: str, mailboxes: list[str]) -> None:
        key = normalize_address(service_account)
        self.impersonation[key] = None if "*" in mailboxes else {normalize_address(m) for m in mailboxes}

    def can_impersonate(self, service_account: str, target: str) -> bool:
        key = normalize_address(service_account)
        if key not in self.impersonation:
            return False
        allowed = self.impersonation[key]
        return allowed is None or normalize_address(target) in allowed

    def delegate_permission(self, owner: str, delegate: str) -> str:
        return self.delegates.get((normalize_address(owner), normalize_address(delegate)), "None")

    # -- items --

    def find_item(self, item_id: str) -> CalendarItem | Occurrence:
        """Resolve an item or occurrence id; raises ErrorInvalidIdMalformed / ErrorItemNotFound."""
        decoded = decode_id(item_id)
        if decoded is None or decoded.kind == "folder":
            raise EwsError("ErrorInvalidIdMalformed", "Id is malformed.")
        mailbox = self.mailboxes.get(decoded.mailbox_num)
        item = mailbox.items.get(decoded.item_num) if mailbox else None
        if item is None:
            raise EwsError("ErrorItemNotFound", ITEM_NOT_FOUND)
        if decoded.kind == "occurrence":
            assert decoded.original_start is not None
            return self.occurrence(item, decoded.original_start)
        return item

    def occurrence(self, master: CalendarItem, original_start: datetime) -> CalendarItem | Occurrence:
        """The occurrence of ``master`` that the pattern puts at ``original_start`` (its exception if modified)."""
        from emulators.ews import recurrence

        if master.recurrence is None or original_start in master.deleted_occurrences:
            raise EwsError("ErrorItemNotFound", ITEM_NOT_FOUND)
        if original_start in master.exceptions:
            return master.exceptions[original_start]
        index = recurrence.index_of(master, original_start)
        if index is None:
            raise EwsError("ErrorItemNotFound", ITEM_NOT_FOUND)
        return Occurrence(master, original_start, index)

    def add_folder(self, mailbox: Mailbox, display_name: str, parent: str = "calendar") -> CalendarFolder:
        """Make a calendar folder under ``parent``; ErrorFolderExists when that parent has one of that name already
        (Exchange compares display names without regard to case)."""
        if parent not in ("calendar", "msgfolderroot") and parent not in mailbox.folders:
            raise EwsError("ErrorParentFolderNotFound", "The parent folder could not be found.")
        for existing in mailbox.folders.values():
            if existing.parent == parent and existing.display_name.lower() == display_name.lower():
                raise EwsError("ErrorFolderExists", "A folder with the specified name already exists.")
        folder = CalendarFolder(f"{FOLDER_PREFIX}{next(self._folder_nums)}", display_name, parent)
        mailbox.folders[folder.name] = folder
        return folder

    def create_item(self, mailbox: Mailbox, fields: dict[str, Any], folder: str = "calendar") -> CalendarItem:
        """Store a new item in ``folder`` and raise CreatedEvent; EwsError (nothing stored) when Exchange would refuse
        it."""
        if not mailbox.is_calendar(folder):
            raise EwsError("ErrorFolderNotFound", "The specified folder could not be found in the store.")
        item = CalendarItem(
            num=0,
            mailbox=mailbox,
            change_key=new_change_key(),
            start=fields.pop("start"),
            end=fields.pop("end"),
            folder=folder,
        )
        apply_fields(item, fields)
        settle(item)
        item.num = next(self._item_nums)
        mailbox.items[item.num] = item
        event = self._record(mailbox, "CreatedEvent", item)
        item.created_seq = event.seq
        return item

    def update_item(self, item: CalendarItem, fields: dict[str, Any]) -> CalendarItem:
        """Change fields of a stored item (or exception) and raise one ModifiedEvent; EwsError (nothing changed) when
        Exchange would refuse the result.

        Changing a series' start, end or pattern drops its exceptions and deleted occurrences, as Exchange does (they
        are keyed by original starts the new pattern no longer has).
        """
        trial = replace(item)
        apply_fields(trial, fields)
        settle(trial)
        series_changed = item.recurrence is not None and (
            (trial.start, trial.end, trial.recurrence) != (item.start, item.end, item.recurrence)
            or trial.start_timezone != item.start_timezone
        )
        for name in fields.keys() | {"start", "end"}:
            setattr(item, name, getattr(trial, name))
        if series_changed:
            item.exceptions = {}
            item.deleted_occurrences = set()
        item.change_key = new_change_key()
        item.last_modified = utcnow()
        if item.master is not None:
            # An exception's change is a change of its series.
            item.master.change_key = new_change_key()
        self._record(item.mailbox, "ModifiedEvent", item)
        return item

    def modify_occurrence(self, occurrence: Occurrence, fields: dict[str, Any]) -> CalendarItem:
        """Turn an occurrence into an exception carrying ``fields``."""
        master = occurrence.master
        exception = replace(
            master,
            num=0,
            change_key=new_change_key(),
            start=occurrence.start,
            end=occurrence.end,
            categories=list(master.categories),
            extended_properties=dict(master.extended_properties),
            required_attendees=list(master.required_attendees),
            optional_attendees=list(master.optional_attendees),
            recurrence=None,
            exceptions={},
            deleted_occurrences=set(),
            master=master,
            original_start=occurrence.original_start,
        )
        trial = replace(exception)
        apply_fields(trial, fields)
        settle(trial)  # refused before the exception exists
        master.exceptions[occurrence.original_start] = exception
        return self.update_item(exception, fields)

    def delete_item(self, item: CalendarItem | Occurrence, kind: str = "DeletedEvent") -> None:
        """Delete an item, a whole series, or one occurrence of a series; raises DeletedEvent (or MovedEvent)."""
        if isinstance(item, Occurrence) or item.master is not None:
            master = item.master
            assert master is not None and item.original_start is not None
            master.exceptions.pop(item.original_start, None)
            master.deleted_occurrences.add(item.original_start)
            master.change_key = new_change_key()
            # Deleting one occurrence modifies the series: clients see the master change.
            self._record(master.mailbox, "ModifiedEvent", master)
            return
        mailbox = item.mailbox
        mailbox.items.pop(item.num, None)
        event = self._record(mailbox, kind, item)
        mailbox.tombstones[item.num] = (event.seq, item.folder)

    def _record(self, mailbox: Mailbox, kind: str, item: CalendarItem) -> ChangeEvent:
        mailbox.seq += 1
        item.modified_seq = mailbox.seq
        if item.master is not None:
            item.master.modified_seq = mailbox.seq
        # Exceptions live inside their master: Exchange reports a change of one as a change of the master.
        reported = item.master or item
        event = ChangeEvent(
            mailbox,
            mailbox.seq,
            kind,
            reported.item_id,
            reported.change_key,
            utcnow(),
            folder=reported.folder,
        )
        for listener in list(self.listeners):
            listener(event)
        return event

    def iter_items(self, mailbox: Mailbox) -> Iterator[CalendarItem]:
        return iter(list(mailbox.items.values()))


def settle(item: CalendarItem) -> None:
    """What Exchange does to an item before it stores it: all-day items snap to midnight, and what it refuses (dates
    it cannot store, an end before the start, invalid series, an occurrence moved past its neighbours) raises."""
    from emulators.ews import recurrence, timezones
    from emulators.ews.xml import MAX_YEAR, MIN_YEAR, in_supported_range

    for value in (item.start, item.end):
        if not in_supported_range(value):
            raise EwsError(
                "ErrorInvalidValueForProperty", f"Dates must be between the years {MIN_YEAR} and {MAX_YEAR}."
            )
    if item.is_all_day:
        item.start, item.end = timezones.all_day_bounds(item.start, item.end, recurrence.zone_id(item))
    if item.end < item.start:
        raise EwsError("ErrorCalendarEndDateIsEarlierThanStartDate", "EndDate is earlier than StartDate")
    if item.master is None and item.recurrence is not None:
        recurrence.check_series(item)
    if item.master is not None:
        recurrence.check_exception_bounds(item)


def apply_fields(item: CalendarItem, fields: dict[str, Any]) -> None:
    """Set parsed field values on an item (names are CalendarItem attributes)."""
    for name, value in fields.items():
        if not hasattr(item, name):
            raise AttributeError(name)
        setattr(item, name, value)
