"""UpdateItem: set, append and delete fields; change keys guard against lost updates.

https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/updateitem-operation
"""

from __future__ import annotations

from typing import Any

from lxml import etree

from emulators.ews.context import RequestContext
from emulators.ews.errors import EwsError
from emulators.ews.itemxml import (
    _CLEARED,
    FIELD_URIS,
    IGNORED_WRITABLE,
    WRITABLE,
    check_times,
    ext_key,
    finish_recurrence,
    parse_calendar_item,
    resolve_times,
)
from emulators.ews.model import CalendarItem, Occurrence
from emulators.ews.operations import operation
from emulators.ews.operations._common import change_key_of, each_message, item_id_elements, resolve_item
from emulators.ews.soap import response
from emulators.ews.xml import M_NS, T_NS, child, children, local, m, sub, t

_LIST_FIELDS = {"categories", "required_attendees", "optional_attendees"}


def _field_name(uri: etree._Element) -> str:
    element = FIELD_URIS.get(uri.get("FieldURI", ""))
    if element is None or (element not in WRITABLE and element not in IGNORED_WRITABLE):
        raise EwsError("ErrorInvalidPropertySet", f"The property {uri.get('FieldURI')} cannot be set.")
    return element


def collect_updates(item: CalendarItem | Occurrence, updates: etree._Element) -> dict[str, Any]:
    """The field values the Updates element asks for, merged over the item's current ones where needed."""
    current: CalendarItem = item.master if isinstance(item, Occurrence) else item
    fields: dict[str, Any] = {}
    ext = dict(current.extended_properties)
    ext_changed = False
    for update in updates:
        if not isinstance(update.tag, str):
            continue
        kind = local(update)
        uri = next(
            (
                el
                for el in update
                if isinstance(el.tag, str)
                and local(el) in ("FieldURI", "ExtendedFieldURI", "IndexedFieldURI")
            ),
            None,
        )
        if uri is None:
            raise EwsError("ErrorInvalidPropertySet", "An update names no property.")
        if local(uri) == "ExtendedFieldURI":
            key = ext_key(uri)
            if kind == "DeleteItemField":
                ext.pop(key, None)
            else:
                item_el = child(update, T_NS, "CalendarItem")
                value = (
                    parse_calendar_item(item_el).get("extended_properties", {}) if item_el is not None else {}
                )
                if key not in value:
                    raise EwsError(
                        "ErrorInvalidPropertySet", "The update carries no value for its extended property."
                    )
                ext[key] = value[key]
            ext_changed = True
            continue
        element = _field_name(uri)
        if element in IGNORED_WRITABLE:
            continue
        attr = WRITABLE[element]
        if kind == "DeleteItemField":
            if attr in ("start", "end"):
                raise EwsError("ErrorInvalidPropertyDelete", f"{element} cannot be deleted.")
            fields[attr] = _CLEARED.get(attr)
            continue
        item_el = child(update, T_NS, "CalendarItem")
        if item_el is None:
            raise EwsError("ErrorIncorrectUpdatePropertyCount", "An update must carry one CalendarItem.")
        parsed = parse_calendar_item(item_el)
        if "_recurrence_el" in parsed:
            fields["_recurrence_el"] = parsed.pop("_recurrence_el")
            continue
        if attr not in parsed:
            raise EwsError("ErrorIncorrectUpdatePropertyCount", f"The update carries no {element}.")
        value = parsed[attr]
        if kind == "AppendToItemField":
            if attr not in _LIST_FIELDS:
                raise EwsError("ErrorInvalidPropertyAppend", f"{element} cannot be appended to.")
            value = list(getattr(current, attr)) + list(value)
        fields[attr] = value
        if attr == "body":
            fields["body_type"] = parsed.get("body_type", "Text")
    if ext_changed:
        fields["extended_properties"] = ext
    return fields


@operation("UpdateItem")
def update_item(ctx: RequestContext, request: etree._Element, body: etree._Element) -> None:
    resolution = request.get("ConflictResolution", "AutoResolve")
    invitations = request.get("SendMeetingInvitationsOrCancellations")
    _, messages = response(body, "UpdateItem")
    changes = children(child(request, M_NS, "ItemChanges"), T_NS, "ItemChange")

    def handle(change: etree._Element, message: etree._Element) -> None:
        ids = item_id_elements(change)
        if not ids:
            raise EwsError("ErrorInvalidIdEmpty", "ItemChange names no item.")
        item = resolve_item(ctx, ids[0], "write")
        if invitations is None:
            # Exchange insists on being told whether to send updates for calendar items (all items are, here).
            raise EwsError(
                "ErrorSendMeetingInvitationsOrCancellationsRequired",
                "SendMeetingInvitationsOrCancellations attribute is required for Calendar items.",
            )
        sent_key = ids[0].get("ChangeKey")
        if resolution == "NeverOverwrite" and sent_key and sent_key != change_key_of(item):
            # The item changed since the caller read it: refuse rather than lose the other change.
            raise EwsError(
                "ErrorIrresolvableConflict",
                "The send or update operation could not be performed because the change key passed in the request "
                "does not match the current change key for the item.",
            )
        updates = child(change, T_NS, "Updates")
        if updates is None:
            raise EwsError("ErrorIncorrectUpdatePropertyCount", "ItemChange carries no Updates.")
        fields = collect_updates(item, updates)
        resolve_times(fields, ctx.time_zone)
        start = fields.get("start", item.start)
        end = fields.get("end", item.end)
        check_times(start, end)
        finish_recurrence(fields, start)
        if isinstance(item, Occurrence):
            updated = ctx.store.modify_occurrence(item, fields)
        else:
            updated = ctx.store.update_item(item, fields)
        container = sub(message, m("Items"))
        calendar_item = sub(container, t("CalendarItem"))
        sub(calendar_item, t("ItemId"), Id=updated.item_id, ChangeKey=updated.change_key)
        conflicts = sub(message, m("ConflictResults"))
        sub(conflicts, t("Count"), 0)

    each_message(messages, "UpdateItem", changes, handle)
