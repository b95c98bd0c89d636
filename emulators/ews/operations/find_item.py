"""FindItem: a calendar view (series expanded), or a paged list of items with an optional restriction.

https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/finditem-operation
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from lxml import etree

from emulators.ews import recurrence
from emulators.ews.context import RequestContext, folder_ids
from emulators.ews.errors import EwsError
from emulators.ews.itemxml import ItemView, Shape, ext_key, write_calendar_item
from emulators.ews.model import CalendarItem, Mailbox, Occurrence
from emulators.ews.operations import operation
from emulators.ews.operations._common import each_message
from emulators.ews.soap import response
from emulators.ews.xml import M_NS, T_NS, child, local, m, parse_datetime, sub, t

# Exchange refuses calendar views longer than two years (plus a day of slack for time zones).
MAX_VIEW_SPAN = timedelta(days=2 * 365 + 2)


def calendar_view(
    mailbox: Mailbox, start: datetime, end: datetime, folder: str = "calendar"
) -> list[ItemView]:
    """Singles, occurrences and exceptions of one calendar folder overlapping [start, end), series expanded, sorted
    by start."""
    found: list[ItemView] = []
    for item in mailbox.items_in(folder):
        if item.recurrence is None:
            if item.end > start and item.start < end:
                found.append(item)
            continue
        # A day of slack: an occurrence's wall-clock duration may be an hour longer than the master's across DST.
        for original_start, index in recurrence.expand(
            item, start - (item.end - item.start) - timedelta(days=1), end
        ):
            if original_start in item.deleted_occurrences:
                continue
            view: ItemView = item.exceptions.get(original_start) or Occurrence(item, original_start, index)
            if view.end > start and view.start < end:
                found.append(view)
        # An exception moved into the window from an occurrence outside it still shows.
        for exception in item.exceptions.values():
            if exception.end > start and exception.start < end and all(v is not exception for v in found):
                found.append(exception)
    found.sort(key=lambda v: (v.start, v.end, v.item_id))
    return found


# ---- restrictions --------------------------------------------------------------------------------------------------

_FIELD_GETTERS: dict[str, Callable[[CalendarItem], Any]] = {
    "item:Subject": lambda i: i.subject,
    "item:Categories": lambda i: i.categories,
    "calendar:Start": lambda i: i.start,
    "calendar:End": lambda i: i.end,
    "calendar:UID": lambda i: i.uid,
    "calendar:Location": lambda i: i.location,
    "calendar:LegacyFreeBusyStatus": lambda i: i.legacy_free_busy_status,
    "calendar:CalendarItemType": lambda i: i.calendar_item_type,
    "calendar:IsAllDayEvent": lambda i: i.is_all_day,
}

_MISSING = object()


_INTEGER_TYPES = {"Integer", "Long", "Short"}
_FLOAT_TYPES = {"Double", "Float", "Currency", "ApplicationTime"}


def _typed(value: str, prop_type: str) -> Any:
    """An extended property's stored text as the value its PropertyType says (restrictions compare typed values)."""
    base = prop_type.removesuffix("Array")
    try:
        if base in _INTEGER_TYPES:
            return int(value)
        if base in _FLOAT_TYPES:
            return float(value)
        if base == "Boolean":
            return value.strip().lower() in ("true", "1")
        if base == "SystemTime":
            return parse_datetime(value)
    except ValueError:
        return value
    return value


def _value_of(item: CalendarItem, path: etree._Element) -> Any:
    kind = local(path)
    if kind == "ExtendedFieldURI":
        key = ext_key(path)
        if key not in item.extended_properties:
            return _MISSING
        stored = item.extended_properties[key]
        if isinstance(stored, list):
            return [_typed(v, key[2]) for v in stored]
        return _typed(stored, key[2])
    if kind == "FieldURI":
        getter = _FIELD_GETTERS.get(path.get("FieldURI", ""))
        if getter is None:
            raise EwsError(
                "ErrorUnsupportedPathForQuery",
                f"The property {path.get('FieldURI')} cannot be used in a restriction.",
            )
        value = getter(item)
        return _MISSING if value is None else value
    raise EwsError("ErrorUnsupportedPathForQuery", f"{kind} cannot be used in a restriction.")


def _constant(expr: etree._Element, sample: Any) -> Any:
    holder = child(expr, T_NS, "FieldURIOrConstant")
    constant = child(holder, T_NS, "Constant")
    if constant is None:
        raise EwsError("ErrorUnsupportedQueryFilter", "Only comparisons with constants are supported.")
    raw = constant.get("Value", "")
    try:
        if isinstance(sample, datetime):
            return parse_datetime(raw)
        if isinstance(sample, bool):
            return raw.strip().lower() in ("true", "1")
        if isinstance(sample, int):
            return int(raw)
        if isinstance(sample, float):
            return float(raw)
    except ValueError as exc:
        raise EwsError(
            "ErrorInvalidValueForProperty", f"'{raw}' is not a valid value for that property."
        ) from exc
    return raw


def _contains(value: Any, expr: etree._Element) -> bool:
    """Contains with its ContainmentMode (FullString, Prefixed, Substring, PrefixOnWords, ExactPhrase) and
    ContainmentComparison (Exact, IgnoreCase, IgnoreNonSpacingCharacters, Loose, and their combinations)."""
    constant = child(expr, T_NS, "Constant")
    needle = constant.get("Value", "") if constant is not None else ""
    mode = expr.get("ContainmentMode", "Substring")
    comparison = expr.get("ContainmentComparison", "IgnoreCase")
    haystacks = [str(v) for v in value] if isinstance(value, list) else [str(value)]
    if "IgnoreCase" in comparison or comparison.startswith("Loose"):
        needle = needle.lower()
        haystacks = [h.lower() for h in haystacks]
    for text in haystacks:
        if mode == "FullString" and text == needle:
            return True
        if mode == "Prefixed" and text.startswith(needle):
            return True
        if mode == "Substring" and needle in text:
            return True
        if mode == "PrefixOnWords" and any(word.startswith(needle) for word in re.split(r"\W+", text)):
            return True
        if mode == "ExactPhrase" and re.search(r"(?<!\w)" + re.escape(needle) + r"(?!\w)", text):
            return True
    return False


def _path(expr: etree._Element) -> etree._Element:
    path = next(
        (
            el
            for el in expr
            if isinstance(el.tag, str) and local(el) in ("FieldURI", "ExtendedFieldURI", "IndexedFieldURI")
        ),
        None,
    )
    if path is None:
        raise EwsError("ErrorUnsupportedQueryFilter", "A restriction names no property.")
    return path


_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "IsEqualTo": lambda a, b: a == b,
    "IsNotEqualTo": lambda a, b: a != b,
    "IsGreaterThan": lambda a, b: a > b,
    "IsGreaterThanOrEqualTo": lambda a, b: a >= b,
    "IsLessThan": lambda a, b: a < b,
    "IsLessThanOrEqualTo": lambda a, b: a <= b,
}


def matches(item: CalendarItem, expr: etree._Element) -> bool:
    """Evaluate a search expression (the child of ``m:Restriction``) against an item."""
    kind = local(expr)
    if kind == "And":
        return all(matches(item, e) for e in expr if isinstance(e.tag, str))
    if kind == "Or":
        return any(matches(item, e) for e in expr if isinstance(e.tag, str))
    if kind == "Not":
        return not any(matches(item, e) for e in expr if isinstance(e.tag, str))
    if kind == "Exists":
        return _value_of(item, _path(expr)) is not _MISSING
    if kind == "Contains":
        value = _value_of(item, _path(expr))
        return value is not _MISSING and _contains(value, expr)
    if kind in _COMPARISONS:
        value = _value_of(item, _path(expr))
        if value is _MISSING:
            return kind == "IsNotEqualTo"
        if isinstance(value, list):
            return any(_COMPARISONS[kind](v, _constant(expr, v)) for v in value)
        return bool(_COMPARISONS[kind](value, _constant(expr, value)))
    raise EwsError("ErrorUnsupportedQueryFilter", f"The restriction {kind} is not supported.")


# ---- the operation -------------------------------------------------------------------------------------------------


@operation("FindItem")
def find_item(ctx: RequestContext, request: etree._Element, body: etree._Element) -> None:
    shape_el = child(request, M_NS, "ItemShape")
    calendar = child(request, M_NS, "CalendarView")
    paged = child(request, M_NS, "IndexedPageItemView")
    restriction = child(request, M_NS, "Restriction")
    expression = (
        next((e for e in restriction if isinstance(e.tag, str)), None) if restriction is not None else None
    )
    _, messages = response(body, "FindItem")

    def handle(folder_el: etree._Element, message: etree._Element) -> None:
        shape = Shape.parse(shape_el, find_item=True)
        mailbox, folder = ctx.calendar_folder_of(folder_el, "read")
        offset = 0
        if calendar is not None:
            if expression is not None:
                raise EwsError(
                    "ErrorRestrictionTooComplex", "Restrictions cannot be used with a CalendarView."
                )
            start = ctx.datetime_value(calendar.get("StartDate", ""))
            end = ctx.datetime_value(calendar.get("EndDate", ""))
            if end < start:
                raise EwsError(
                    "ErrorCalendarEndDateIsEarlierThanStartDate", "EndDate is earlier than StartDate"
                )
            if end - start > MAX_VIEW_SPAN:
                raise EwsError(
                    "ErrorCalendarViewRangeTooBig", "The time span between StartDate and EndDate is too big."
                )
            views = calendar_view(mailbox, start, end, folder)
            total = len(views)
            asked = int(calendar.get("MaxEntriesReturned", "0") or 0)
            limit = min(asked, ctx.settings.find_count_limit) if asked else ctx.settings.find_count_limit
            page: list[ItemView] = views[:limit]
            # Truncated at MaxEntriesReturned or the find-count limit: not the last item, as Exchange answers
            # (a calendar view has no offset to continue from: the client must narrow the range; see README).
            includes_last = len(page) >= total
        else:
            items: list[ItemView] = [
                i for i in mailbox.items_in(folder) if expression is None or matches(i, expression)
            ]
            items.sort(key=lambda i: i.num if isinstance(i, CalendarItem) else 0)
            total = len(items)
            limit = ctx.settings.find_count_limit
            if paged is not None:
                limit = min(int(paged.get("MaxEntriesReturned", limit) or limit), limit)
                offset = int(paged.get("Offset", "0") or 0)
                if paged.get("BasePoint") == "End":
                    offset = max(total - offset - limit, 0)
            page = items[offset : offset + limit]
            includes_last = offset + len(page) >= total
        root = sub(message, m("RootFolder"), TotalItemsInView=total, IncludesLastItemInRange=includes_last)
        if calendar is None:
            root.set("IndexedPagingOffset", str(offset + len(page)))
        container = sub(root, t("Items"))
        for view in page:
            write_calendar_item(container, view, shape, ctx.uses_meeting_time_zone)

    each_message(messages, "FindItem", folder_ids(child(request, M_NS, "ParentFolderIds")), handle)
