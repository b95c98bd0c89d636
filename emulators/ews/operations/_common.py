"""Helpers shared by the item operations: resolving item ids of every kind, one response message per input."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TypeVar

from lxml import etree

from emulators.ews import soap
from emulators.ews.context import RequestContext
from emulators.ews.errors import ITEM_NOT_FOUND, EwsError
from emulators.ews.model import CalendarItem, Occurrence, decode_id
from emulators.ews.xml import local, parse_datetime

ItemView = CalendarItem | Occurrence
T = TypeVar("T")

ITEM_ID_TAGS = ("ItemId", "OccurrenceItemId", "RecurringMasterItemId")


def item_id_elements(parent: etree._Element | None) -> list[etree._Element]:
    if parent is None:
        return []
    return [el for el in parent if isinstance(el.tag, str) and local(el) in ITEM_ID_TAGS]


def resolve_item(ctx: RequestContext, id_el: etree._Element, need: str = "read") -> ItemView:
    """The item an ItemId / OccurrenceItemId / RecurringMasterItemId names, access-checked."""
    kind = local(id_el)
    if kind == "ItemId":
        item = ctx.store.find_item(id_el.get("Id", ""))
    elif kind == "OccurrenceItemId":
        master = ctx.store.find_item(id_el.get("RecurringMasterId", ""))
        if not isinstance(master, CalendarItem) or master.recurrence is None:
            raise EwsError("ErrorItemNotFound", ITEM_NOT_FOUND)
        item = _occurrence_by_index(ctx, master, int(id_el.get("InstanceIndex", "0")))
    else:  # RecurringMasterItemId: the series an occurrence belongs to
        found = ctx.store.find_item(id_el.get("OccurrenceId", ""))
        series = found.master  # an occurrence's or an exception's series; None for a single item
        if series is None:
            raise EwsError("ErrorItemNotFound", ITEM_NOT_FOUND)
        item = series
    mailbox = item.master.mailbox if isinstance(item, Occurrence) else item.mailbox
    ctx.check_access(mailbox, need)
    return item


def _occurrence_by_index(ctx: RequestContext, master: CalendarItem, index: int) -> ItemView:
    from emulators.ews import recurrence

    start = recurrence.start_of_index(master, index)
    if start is None:
        raise EwsError(
            "ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange",
            "Occurrence index is out of recurrence range.",
        )
    if start in master.deleted_occurrences:
        raise EwsError(
            "ErrorCalendarOccurrenceIsDeletedFromRecurrence",
            "Occurrence has been deleted from the recurrence.",
        )
    return ctx.store.occurrence(master, start)


def change_key_of(view: ItemView) -> str:
    return view.master.change_key if isinstance(view, Occurrence) else view.change_key


def each_message(
    messages: etree._Element, operation: str, inputs: Iterable[T], handle: Callable[[T, etree._Element], None]
) -> None:
    """One response message per input, in order; an EwsError fails that input only."""
    for value in inputs:
        scratch = etree.Element("scratch")
        try:
            handle(value, scratch)
        except EwsError as err:
            soap.error(messages, operation, err)
            continue
        except (ValueError, OverflowError) as exc:
            # A value the schema lets through but no calendar can hold (hour 24, a date out of range, ...).
            soap.error(
                messages, operation, EwsError("ErrorInvalidValueForProperty", f"A value is not valid: {exc}")
            )
            continue
        message = soap.success(messages, operation)
        for node in scratch:
            message.append(node)


def is_folder_id(value: str) -> bool:
    decoded = decode_id(value)
    return decoded is not None and decoded.kind == "folder"


def parse_optional_datetime(value: str | None) -> datetime | None:
    return parse_datetime(value) if value else None
