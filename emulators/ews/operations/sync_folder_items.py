"""SyncFolderItems: the calendar's changes since a SyncState (Create / Update / Delete), in pages.

https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/syncfolderitems-operation

The SyncState is self-contained, like Exchange's (gzip, base64: "H4sI…"): the mailbox, the change sequence up to
which every change has been reported, and the item numbers the client has been told about. Changes are reported in
sequence order, so after a truncated page "everything up to the last reported change" still holds, and an item the
client never heard of is a Create however often it changed since; one created and deleted in between is not
reported at all.
"""

from __future__ import annotations

import base64
import gzip
import json
import zlib
from dataclasses import dataclass, field

from lxml import etree

from emulators.ews import soap
from emulators.ews.context import RequestContext, folder_ids
from emulators.ews.errors import EwsError
from emulators.ews.itemxml import Shape, write_calendar_item
from emulators.ews.model import CalendarItem, Mailbox, decode_id, encode_item_id
from emulators.ews.operations import operation
from emulators.ews.operations._common import item_id_elements
from emulators.ews.xml import M_NS, child, m, sub, t, text_of

_INVALID = "Synchronization state data is corrupt or otherwise invalid."


@dataclass
class SyncState:
    """What a client has been told: every change up to ``seq``, and the items it knows."""

    mailbox: int
    address: str
    folder: str = "calendar"
    seq: int = 0
    known: set[int] = field(default_factory=set)

    def encode(self) -> str:
        # Item numbers as deltas: a calendar of thousands of items keeps a state of a few kilobytes.
        nums = sorted(self.known)
        deltas = [b - a for a, b in zip([0, *nums], nums, strict=False)]
        payload = {"v": 1, "m": self.mailbox, "a": self.address, "f": self.folder, "s": self.seq, "k": deltas}
        return base64.b64encode(
            gzip.compress(json.dumps(payload, separators=(",", ":")).encode(), mtime=0)
        ).decode()

    @classmethod
    def decode(cls, value: str, mailbox: Mailbox, folder: str) -> SyncState:
        """Parse a SyncState for ``folder`` of ``mailbox``; ErrorInvalidSyncStateData when it is corrupt, foreign (another
        mailbox's or folder's) or from the future."""
        try:
            data = json.loads(gzip.decompress(base64.b64decode(value.encode(), validate=True)))
            nums, total = set(), 0
            for delta in data["k"]:
                total += int(delta)
                nums.add(total)
            state = cls(int(data["m"]), str(data["a"]), str(data.get("f", "calendar")), int(data["s"]), nums)
        except (ValueError, KeyError, TypeError, OSError, EOFError, zlib.error, UnicodeError):
            raise EwsError("ErrorInvalidSyncStateData", _INVALID) from None
        if data.get("v") != 1 or (state.mailbox, state.address, state.folder) != (
            mailbox.num,
            mailbox.address,
            folder,
        ):
            raise EwsError("ErrorInvalidSyncStateData", _INVALID)
        if state.seq > mailbox.seq:
            raise EwsError("ErrorInvalidSyncStateData", _INVALID)
        return state


def _changes(mailbox: Mailbox, state: SyncState) -> list[tuple[int, str, int, CalendarItem | None]]:
    """Every unreported change in the state's folder, oldest first: (seq, Create | Update | Delete, item number,
    item)."""
    changes: list[tuple[int, str, int, CalendarItem | None]] = []
    for item in mailbox.items_in(state.folder):
        if item.modified_seq > state.seq:
            changes.append(
                (item.modified_seq, "Update" if item.num in state.known else "Create", item.num, item)
            )
    for num, (seq, folder) in mailbox.tombstones.items():
        if seq > state.seq and folder == state.folder and num in state.known:
            changes.append((seq, "Delete", num, None))
    changes.sort(key=lambda change: change[0])
    return changes


def _ignored(request: etree._Element, mailbox: Mailbox) -> set[int]:
    nums = set()
    for id_el in item_id_elements(child(request, M_NS, "Ignore")):
        decoded = decode_id(id_el.get("Id", "") or id_el.get("RecurringMasterId", ""))
        if (
            decoded is not None
            and decoded.kind in ("item", "occurrence")
            and decoded.mailbox_num == mailbox.num
        ):
            nums.add(decoded.item_num)
    return nums


Page = list[tuple[str, int, CalendarItem | None]]


def _sync(ctx: RequestContext, request: etree._Element) -> tuple[SyncState, bool, Page]:
    found = folder_ids(child(request, M_NS, "SyncFolderId"))
    if not found:
        raise EwsError("ErrorSyncFolderNotFound", "The folder to synchronize was not found.")
    mailbox, folder = ctx.calendar_folder_of(found[0], "read")
    given = text_of(request, M_NS, "SyncState")
    state = (
        SyncState.decode(given, mailbox, folder) if given else SyncState(mailbox.num, mailbox.address, folder)
    )
    limit = int(text_of(request, M_NS, "MaxChangesReturned", "100") or 100)
    ignored = _ignored(request, mailbox)
    pending = _changes(mailbox, state)
    page: Page = []
    consumed = 0
    for seq, kind, num, item in pending:
        if len(page) == limit:
            break
        consumed += 1
        state.seq = seq
        if kind == "Delete":
            state.known.discard(num)
        else:
            state.known.add(num)
        if num in ignored:
            # Ignored items (typically the client's own writes) advance the state without being reported.
            continue
        page.append((kind, num, item))
    complete = consumed == len(pending)
    if complete:
        state.seq = mailbox.seq
    return state, complete, page


@operation("SyncFolderItems")
def sync_folder_items(ctx: RequestContext, request: etree._Element, body: etree._Element) -> None:
    """One page of changes, with the SyncState to continue from."""
    shape = Shape.parse(child(request, M_NS, "ItemShape"))
    _, messages = soap.response(body, "SyncFolderItems")
    try:
        state, complete, page = _sync(ctx, request)
    except EwsError as err:
        message = soap.error(messages, "SyncFolderItems", err)
        # exchangelib reads SyncState and IncludesLastItemInRange before it looks at the ResponseCode.
        sub(message, m("SyncState"), text_of(request, M_NS, "SyncState") or "")
        sub(message, m("IncludesLastItemInRange"), True)
        return
    message = soap.success(messages, "SyncFolderItems")
    sub(message, m("SyncState"), state.encode())
    sub(message, m("IncludesLastItemInRange"), complete)
    changes = sub(message, m("Changes"))
    for kind, num, item in page:
        change = sub(changes, t(kind))
        if item is None:
            # Deletes carry the id only: the item and its change key are gone.
            sub(change, t("ItemId"), Id=encode_item_id(state.mailbox, num))
        else:
            write_calendar_item(change, item, shape, ctx.uses_meeting_time_zone)
