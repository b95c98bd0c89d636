"""GetFolder and FindFolder: the root, the calendar and the calendar folders made beside it.

https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/getfolder-operation
"""

from __future__ import annotations

from lxml import etree

from emulators.ews.context import RequestContext, folder_ids
from emulators.ews.errors import EwsError
from emulators.ews.model import Mailbox, encode_folder_id
from emulators.ews.operations import operation
from emulators.ews.operations._common import each_message
from emulators.ews.soap import response
from emulators.ews.xml import M_NS, T_NS, child, children, m, sub, t, text_of

# The well-known folders a mailbox answers for; only calendar folders hold items here.
FOLDERS = {
    "root": ("Folder", "", "Root", None),
    "msgfolderroot": ("Folder", "IPF.Note", "Top of Information Store", "root"),
    "calendar": ("CalendarFolder", "IPF.Appointment", "Calendar", "msgfolderroot"),
}


def folder_spec(mailbox: Mailbox, name: str) -> tuple[str, str, str, str | None]:
    """(element, FolderClass, DisplayName, parent name) of a well-known folder or a calendar folder made beside one."""
    if name in FOLDERS:
        return FOLDERS[name]
    folder = mailbox.folders[name]
    return "CalendarFolder", "IPF.Appointment", folder.display_name, folder.parent


def child_folders(mailbox: Mailbox, name: str) -> list[str]:
    """The folders directly under ``name``, well-known ones first, then the made ones in the order they were made."""
    known = [n for n, spec in FOLDERS.items() if spec[3] == name]
    return known + [f.name for f in mailbox.folders.values() if f.parent == name]


def write_folder(
    parent: etree._Element, mailbox: Mailbox, name: str, with_rights: bool, rights: set[str] | None = None
) -> None:
    """Append the folder element (``t:CalendarFolder`` or ``t:Folder``) in schema order."""
    kind, folder_class, display_name, parent_name = folder_spec(mailbox, name)
    el = sub(parent, t(kind))
    sub(el, t("FolderId"), Id=encode_folder_id(mailbox.num, name), ChangeKey=mailbox.folder_change_key)
    if parent_name:
        sub(
            el,
            t("ParentFolderId"),
            Id=encode_folder_id(mailbox.num, parent_name),
            ChangeKey=mailbox.folder_change_key,
        )
    if folder_class:
        sub(el, t("FolderClass"), folder_class)
    sub(el, t("DisplayName"), display_name)
    sub(el, t("TotalCount"), len(mailbox.items_in(name)) if mailbox.is_calendar(name) else 0)
    sub(el, t("ChildFolderCount"), len(child_folders(mailbox, name)))
    if with_rights:
        # The acting user's own rights (all of them when the caller passes none).
        container = sub(el, t("EffectiveRights"))
        for right in ("CreateAssociated", "CreateContents", "CreateHierarchy", "Delete", "Modify", "Read"):
            sub(container, t(right), rights is None or right in rights)
    if kind == "Folder":
        sub(el, t("UnreadCount"), 0)


def resolve_known_folder(ctx: RequestContext, folder_el: etree._Element) -> tuple[Mailbox, str]:
    mailbox, name = ctx.resolve_folder(folder_el)
    ctx.check_access(mailbox, "read")
    if name not in FOLDERS and name not in mailbox.folders:
        raise EwsError("ErrorFolderNotFound", "The specified folder could not be found in the store.")
    return mailbox, name


def _asks_for_rights(folder_shape: etree._Element | None) -> bool:
    """Whether a FolderShape brings EffectiveRights: ``AllProperties``, or any shape naming
    ``folder:EffectiveRights`` among its AdditionalProperties (as exchangelib asks for it with ``IdOnly``)."""
    if text_of(folder_shape, T_NS, "BaseShape", "Default") == "AllProperties":
        return True
    extra = children(child(folder_shape, T_NS, "AdditionalProperties"), T_NS, "FieldURI")
    return any(uri.get("FieldURI") == "folder:EffectiveRights" for uri in extra)


@operation("GetFolder")
def get_folder(ctx: RequestContext, request: etree._Element, body: etree._Element) -> None:
    with_rights = _asks_for_rights(child(request, M_NS, "FolderShape"))
    _, messages = response(body, "GetFolder")

    def handle(folder_el: etree._Element, message: etree._Element) -> None:
        mailbox, name = resolve_known_folder(ctx, folder_el)
        folders = sub(message, m("Folders"))
        write_folder(folders, mailbox, name, with_rights, ctx.effective_rights(mailbox))

    each_message(messages, "GetFolder", folder_ids(child(request, M_NS, "FolderIds")), handle)


@operation("FindFolder")
def find_folder(ctx: RequestContext, request: etree._Element, body: etree._Element) -> None:
    deep = request.get("Traversal", "Shallow") == "Deep"
    _, messages = response(body, "FindFolder")

    def handle(folder_el: etree._Element, message: etree._Element) -> None:
        mailbox, name = resolve_known_folder(ctx, folder_el)
        below = child_folders(mailbox, name)
        if deep:
            # Depth first, as Exchange lists a hierarchy: each folder followed by the folders under it.
            below = []
            pending = list(reversed(child_folders(mailbox, name)))
            while pending:
                found = pending.pop()
                below.append(found)
                pending.extend(reversed(child_folders(mailbox, found)))
        root = sub(
            message,
            m("RootFolder"),
            IndexedPagingOffset=len(below),
            TotalItemsInView=len(below),
            IncludesLastItemInRange=True,
        )
        folders = sub(root, t("Folders"))
        for found in below:
            write_folder(folders, mailbox, found, False)

    each_message(messages, "FindFolder", folder_ids(child(request, M_NS, "ParentFolderIds")), handle)
