"""Calendar items to and from EWS XML: request parsing, item shapes, and responses in the schema's element order."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from lxml import etree

from emulators.ews import recurrence, timezones
from emulators.ews.errors import EwsError
from emulators.ews.model import (
    FREE_BUSY_VALUES,
    SENSITIVITY_VALUES,
    Attendee,
    CalendarItem,
    ExtKey,
    Occurrence,
)
from emulators.ews.xml import (
    MAX_YEAR,
    MIN_YEAR,
    T_NS,
    child,
    children,
    in_supported_range,
    local,
    parse_bool,
    parse_naive_or_aware,
    sub,
    t,
    text_of,
)

ItemView = CalendarItem | Occurrence

# FieldURI → the element it names in a CalendarItem (and the attribute it sets, for writable ones).
FIELD_URIS: dict[str, str] = {
    "item:ItemId": "ItemId",
    "item:ParentFolderId": "ParentFolderId",
    "item:ItemClass": "ItemClass",
    "item:Subject": "Subject",
    "item:Sensitivity": "Sensitivity",
    "item:Body": "Body",
    "item:DateTimeReceived": "DateTimeReceived",
    "item:Size": "Size",
    "item:Categories": "Categories",
    "item:Importance": "Importance",
    "item:DateTimeSent": "DateTimeSent",
    "item:DateTimeCreated": "DateTimeCreated",
    "item:ReminderIsSet": "ReminderIsSet",
    "item:ReminderMinutesBeforeStart": "ReminderMinutesBeforeStart",
    "item:DisplayCc": "DisplayCc",
    "item:DisplayTo": "DisplayTo",
    "item:HasAttachments": "HasAttachments",
    "item:Culture": "Culture",
    "item:LastModifiedName": "LastModifiedName",
    "item:LastModifiedTime": "LastModifiedTime",
    "item:IsAssociated": "IsAssociated",
    "item:TextBody": "TextBody",
    "calendar:UID": "UID",
    "calendar:RecurrenceId": "RecurrenceId",
    "calendar:DateTimeStamp": "DateTimeStamp",
    "calendar:Start": "Start",
    "calendar:End": "End",
    "calendar:OriginalStart": "OriginalStart",
    "calendar:IsAllDayEvent": "IsAllDayEvent",
    "calendar:LegacyFreeBusyStatus": "LegacyFreeBusyStatus",
    "calendar:Location": "Location",
    "calendar:IsMeeting": "IsMeeting",
    "calendar:IsCancelled": "IsCancelled",
    "calendar:IsRecurring": "IsRecurring",
    "calendar:MeetingRequestWasSent": "MeetingRequestWasSent",
    "calendar:IsResponseRequested": "IsResponseRequested",
    "calendar:CalendarItemType": "CalendarItemType",
    "calendar:MyResponseType": "MyResponseType",
    "calendar:Organizer": "Organizer",
    "calendar:RequiredAttendees": "RequiredAttendees",
    "calendar:OptionalAttendees": "OptionalAttendees",
    "calendar:Duration": "Duration",
    "calendar:AppointmentSequenceNumber": "AppointmentSequenceNumber",
    "calendar:AppointmentState": "AppointmentState",
    "calendar:Recurrence": "Recurrence",
    "calendar:FirstOccurrence": "FirstOccurrence",
    "calendar:LastOccurrence": "LastOccurrence",
    "calendar:ModifiedOccurrences": "ModifiedOccurrences",
    "calendar:DeletedOccurrences": "DeletedOccurrences",
    "calendar:MeetingTimeZone": "MeetingTimeZone",
    "calendar:StartTimeZone": "StartTimeZone",
    "calendar:EndTimeZone": "EndTimeZone",
}

# What UpdateItem may set, by element, and the CalendarItem attribute each sets (the rest are read-only).
WRITABLE: dict[str, str] = {
    "Subject": "subject",
    "Sensitivity": "sensitivity",
    "Body": "body",
    "Categories": "categories",
    "Importance": "importance",
    "ReminderIsSet": "reminder_is_set",
    "ReminderMinutesBeforeStart": "reminder_minutes_before_start",
    "UID": "uid",
    "Start": "start",
    "End": "end",
    "IsAllDayEvent": "is_all_day",
    "LegacyFreeBusyStatus": "legacy_free_busy_status",
    "Location": "location",
    "RequiredAttendees": "required_attendees",
    "OptionalAttendees": "optional_attendees",
    "Recurrence": "recurrence",
    "MeetingTimeZone": "start_timezone",
    "StartTimeZone": "start_timezone",
    "EndTimeZone": "end_timezone",
}

# Fields Outlook lets a user set but that we do not model: accepted and dropped, as a plain store would ignore them.
IGNORED_WRITABLE = {"ItemClass", "IsResponseRequested", "AllowNewTimeProposal", "Culture", "Resources"}

_CLEARED: dict[str, Any] = {
    "subject": "",
    "body": "",
    "categories": [],
    "location": None,
    "required_attendees": [],
    "optional_attendees": [],
    "recurrence": None,
    "reminder_is_set": False,
    "sensitivity": "Normal",
    "importance": "Normal",
}


# ---- extended properties -------------------------------------------------------------------------------------------


# The distinguished property sets (DistinguishedPropertySetType) and their GUIDs: a set named either way is the same set.
# https://learn.microsoft.com/en-us/office/client-developer/outlook/mapi/commonly-used-property-sets
DISTINGUISHED_SETS = {
    "00062004-0000-0000-c000-000000000046": "Address",
    "00062002-0000-0000-c000-000000000046": "Appointment",
    "11000e07-b51b-40d6-af21-caa85edab1d0": "CalendarAssistant",
    "00062008-0000-0000-c000-000000000046": "Common",
    "00020386-0000-0000-c000-000000000046": "InternetHeaders",
    "6ed8da90-450b-101b-98da-00aa003f1305": "Meeting",
    "00020329-0000-0000-c000-000000000046": "PublicStrings",
    "00062040-0000-0000-c000-000000000046": "Sharing",
    "00062003-0000-0000-c000-000000000046": "Task",
    "4442858e-a9e3-4e80-b900-317a210cc15b": "UnifiedMessaging",
}


def ext_key(uri: etree._Element) -> ExtKey:
    """The storage key of an ExtendedFieldURI: property set, name / id / tag, and MAPI type.

    A distinguished set's GUID is the same set as its name (PublicStrings is {00020329-…}): both give ``ds:<name>``.
    """
    guid = uri.get("PropertySetId", "").lower()
    if guid in DISTINGUISHED_SETS:
        prop_set = "ds:" + DISTINGUISHED_SETS[guid]
    elif guid:
        prop_set = "guid:" + guid
    elif uri.get("DistinguishedPropertySetId"):
        prop_set = "ds:" + uri.get("DistinguishedPropertySetId", "")
    else:
        prop_set = ""
    if uri.get("PropertyName") is not None:
        name = "name:" + uri.get("PropertyName", "")
    elif uri.get("PropertyId") is not None:
        name = f"id:{int(uri.get('PropertyId', '0'), 0)}"
    elif uri.get("PropertyTag") is not None:
        name = f"tag:{int(uri.get('PropertyTag', '0'), 0):#06x}"
    else:
        raise EwsError("ErrorInvalidExtendedProperty", "The extended property names no property.")
    return prop_set, name, uri.get("PropertyType", "String")


def write_ext_uri(parent: etree._Element, key: ExtKey) -> etree._Element:
    prop_set, name, prop_type = key
    attrs: dict[str, str] = {}
    if prop_set.startswith("guid:"):
        attrs["PropertySetId"] = prop_set[5:]
    elif prop_set.startswith("ds:"):
        attrs["DistinguishedPropertySetId"] = prop_set[3:]
    kind, _, value = name.partition(":")
    attrs[{"name": "PropertyName", "id": "PropertyId", "tag": "PropertyTag"}[kind]] = value
    attrs["PropertyType"] = prop_type
    return sub(parent, t("ExtendedFieldURI"), **attrs)


def parse_ext_property(el: etree._Element) -> tuple[ExtKey, str | list[str]]:
    uri = child(el, T_NS, "ExtendedFieldURI")
    if uri is None:
        raise EwsError("ErrorInvalidExtendedProperty", "ExtendedProperty without ExtendedFieldURI.")
    key = ext_key(uri)
    values = child(el, T_NS, "Values")
    if values is not None:
        return key, [v.text or "" for v in children(values, T_NS, "Value")]
    return key, text_of(el, T_NS, "Value", "") or ""


# ---- parsing a CalendarItem from a request -------------------------------------------------------------------------


def _attendees(el: etree._Element) -> list[Attendee]:
    found = []
    for attendee in children(el, T_NS, "Attendee"):
        mailbox = child(attendee, T_NS, "Mailbox")
        address = text_of(mailbox, T_NS, "EmailAddress")
        if address:
            found.append(Attendee(address, text_of(mailbox, T_NS, "Name")))
    return found


def _choice(value: str, allowed: tuple[str, ...], element: str) -> str:
    if value not in allowed:
        raise EwsError("ErrorInvalidValueForProperty", f"'{value}' is not a valid value for {element}.")
    return value


def parse_calendar_item(el: etree._Element) -> dict[str, Any]:
    """The fields a ``t:CalendarItem`` element sets, as CalendarItem attribute values (only those present)."""
    fields: dict[str, Any] = {}
    ext: dict[ExtKey, str | list[str]] = {}
    recurrence_el = None
    for node in el:
        if not isinstance(node.tag, str):
            continue
        name = local(node)
        value = node.text or ""
        if name == "Subject":
            fields["subject"] = value
        elif name == "Sensitivity":
            fields["sensitivity"] = _choice(value, SENSITIVITY_VALUES, name)
        elif name == "Body":
            fields["body"] = value
            fields["body_type"] = node.get("BodyType", "Text")
        elif name == "Categories":
            fields["categories"] = [s.text or "" for s in children(node, T_NS, "String")]
        elif name == "Importance":
            fields["importance"] = value
        elif name == "ReminderIsSet":
            fields["reminder_is_set"] = parse_bool(value)
        elif name == "ReminderMinutesBeforeStart":
            try:
                fields["reminder_minutes_before_start"] = int(value)
            except ValueError as exc:
                raise EwsError(
                    "ErrorInvalidValueForProperty", f"'{value}' is not a valid value for {name}."
                ) from exc
        elif name == "ExtendedProperty":
            key, prop_value = parse_ext_property(node)
            ext[key] = prop_value
        elif name == "UID":
            fields["uid"] = value
        elif name in ("Start", "End"):
            # Naive until resolve_times() knows the zone to read it in (a value with an offset is already aware).
            fields[name.lower()] = _datetime_value(value, name)
        elif name == "IsAllDayEvent":
            fields["is_all_day"] = parse_bool(value)
        elif name == "LegacyFreeBusyStatus":
            fields["legacy_free_busy_status"] = _choice(value, FREE_BUSY_VALUES, name)
        elif name == "Location":
            fields["location"] = value
        elif name in ("RequiredAttendees", "OptionalAttendees"):
            fields["required_attendees" if name == "RequiredAttendees" else "optional_attendees"] = (
                _attendees(node)
            )
        elif name == "Recurrence":
            recurrence_el = node
        elif name in ("MeetingTimeZone", "StartTimeZone", "EndTimeZone"):
            zone_id = node.get("Id") or node.get("TimeZoneName") or node.get("Name")
            if zone_id and not timezones.is_known(zone_id):
                raise EwsError("ErrorTimeZone", f"The time zone '{zone_id}' is not valid.")
            if zone_id:
                if name == "EndTimeZone":
                    fields["end_timezone"] = zone_id
                else:
                    fields["start_timezone"] = zone_id
                    if name == "MeetingTimeZone":
                        fields["end_timezone"] = zone_id
    if ext:
        fields["extended_properties"] = ext
    if recurrence_el is not None:
        fields["_recurrence_el"] = recurrence_el
    return fields


def _datetime_value(value: str, element: str) -> datetime:
    try:
        return parse_naive_or_aware(value)
    except (ValueError, OverflowError) as exc:
        raise EwsError(
            "ErrorInvalidValueForProperty", f"'{value}' is not a valid value for {element}."
        ) from exc


def resolve_times(
    fields: dict[str, Any],
    context_zone: str | None,
    start_zone: str | None = None,
    end_zone: str | None = None,
) -> None:
    """Make Start / End aware UTC: a value without an offset is wall-clock time in StartTimeZone (EndTimeZone for the
    end, else StartTimeZone), else the request's TimeZoneContext, else UTC — "Time zones and EWS in Exchange".
    ``start_zone`` / ``end_zone`` are zones the item already has (UpdateItem), used after those set in ``fields``."""
    zones = {
        "start": fields.get("start_timezone") or start_zone or context_zone,
        "end": fields.get("end_timezone")
        or fields.get("start_timezone")
        or end_zone
        or start_zone
        or context_zone,
    }
    for name in ("start", "end"):
        value = fields.get(name)
        if not isinstance(value, datetime):
            continue
        try:
            if value.tzinfo is None:
                value = value.replace(tzinfo=timezones.zone(zones[name]))
            value = value.astimezone(UTC)
        except (ValueError, OverflowError) as exc:
            raise EwsError("ErrorInvalidValueForProperty", f"'{value}' is not a valid {name}.") from exc
        if not in_supported_range(value):
            raise EwsError(
                "ErrorInvalidValueForProperty", f"Dates must be between the years {MIN_YEAR} and {MAX_YEAR}."
            )
        fields[name] = value


def finish_recurrence(fields: dict[str, Any], start: datetime) -> None:
    """Parse a Recurrence element once the series start (and its zone) is known."""
    recurrence_el = fields.pop("_recurrence_el", None)
    if recurrence_el is not None:
        fields["recurrence"] = recurrence.parse(recurrence_el, start, fields.get("start_timezone"))


def check_times(start: datetime, end: datetime) -> None:
    if end < start:
        raise EwsError("ErrorCalendarEndDateIsEarlierThanStartDate", "EndDate is earlier than StartDate")


# ---- shapes --------------------------------------------------------------------------------------------------------

_DEFAULT_SHAPE = {
    "ItemId",
    "Subject",
    "HasAttachments",
    "IsAssociated",
    "Start",
    "End",
    "LegacyFreeBusyStatus",
    "Location",
    "CalendarItemType",
    "Organizer",
}
_ALL_PROPERTIES = {
    "ItemId",
    "ParentFolderId",
    "ItemClass",
    "Subject",
    "Sensitivity",
    "Body",
    "DateTimeReceived",
    "Size",
    "Categories",
    "Importance",
    "IsSubmitted",
    "IsDraft",
    "IsFromMe",
    "IsResend",
    "IsUnmodified",
    "DateTimeSent",
    "DateTimeCreated",
    "ReminderIsSet",
    "ReminderMinutesBeforeStart",
    "DisplayCc",
    "DisplayTo",
    "HasAttachments",
    "Culture",
    "LastModifiedName",
    "LastModifiedTime",
    "IsAssociated",
    "UID",
    "RecurrenceId",
    "DateTimeStamp",
    "Start",
    "End",
    "OriginalStart",
    "IsAllDayEvent",
    "LegacyFreeBusyStatus",
    "Location",
    "IsMeeting",
    "IsCancelled",
    "IsRecurring",
    "MeetingRequestWasSent",
    "IsResponseRequested",
    "CalendarItemType",
    "MyResponseType",
    "Organizer",
    "RequiredAttendees",
    "OptionalAttendees",
    "Duration",
    "AppointmentSequenceNumber",
    "AppointmentState",
    "Recurrence",
    "FirstOccurrence",
    "LastOccurrence",
    "ModifiedOccurrences",
    "DeletedOccurrences",
    "MeetingTimeZone",
    "StartTimeZone",
    "EndTimeZone",
}


# What FindItem never returns (body formats, recipient lists, attachments, MIME); Exchange 2013 and later refuse them in
# a FindItem shape with ErrorInvalidPropertyRequest, and leave them out of its AllProperties.
# https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/finditem-operation
NOT_IN_FIND_ITEM = {
    "item:Body",
    "item:UniqueBody",
    "item:NormalizedBody",
    "item:TextBody",
    "item:MimeContent",
    "item:Attachments",
    "calendar:RequiredAttendees",
    "calendar:OptionalAttendees",
    "calendar:Resources",
    "message:ToRecipients",
    "message:CcRecipients",
    "message:BccRecipients",
    "message:ReplyTo",
}
_NOT_IN_FIND_ITEM_ELEMENTS = {"Body", "TextBody", "RequiredAttendees", "OptionalAttendees"}


@dataclass
class Shape:
    """Which properties a response carries: a base shape plus additional FieldURIs and extended properties."""

    names: set[str] = field(default_factory=lambda: {"ItemId"})
    extended: list[ExtKey] = field(default_factory=list)
    body_type: str = "Best"

    @classmethod
    def parse(cls, shape_el: etree._Element | None, find_item: bool = False) -> Shape:
        """The shape a request asks for; ``find_item``: FindItem's rules (no bodies or recipient lists)."""
        shape = cls()
        if shape_el is None:
            return shape
        base = text_of(shape_el, T_NS, "BaseShape", "IdOnly")
        if base == "Default":
            shape.names = set(_DEFAULT_SHAPE)
        elif base == "AllProperties":
            shape.names = set(_ALL_PROPERTIES) - (_NOT_IN_FIND_ITEM_ELEMENTS if find_item else set())
        shape.body_type = text_of(shape_el, T_NS, "BodyType", "Best") or "Best"
        additional = child(shape_el, T_NS, "AdditionalProperties")
        for uri in list(additional) if additional is not None else []:
            kind = local(uri)
            if kind == "FieldURI":
                if find_item and uri.get("FieldURI", "") in NOT_IN_FIND_ITEM:
                    raise EwsError(
                        "ErrorInvalidPropertyRequest",
                        f"The property {uri.get('FieldURI')} cannot be requested in FindItem; use GetItem.",
                    )
                # Unknown and unsupported FieldURIs are ignored: a property we do not store is simply absent.
                element = FIELD_URIS.get(uri.get("FieldURI", ""))
                if element:
                    shape.names.add(element)
            elif kind == "ExtendedFieldURI":
                shape.extended.append(ext_key(uri))
        return shape


# ---- writing -------------------------------------------------------------------------------------------------------


def _master(view: ItemView) -> CalendarItem:
    return view.master if isinstance(view, Occurrence) else view


def _attr(view: ItemView, name: str) -> Any:
    return getattr(_master(view), name) if isinstance(view, Occurrence) else getattr(view, name)


def _change_key(view: ItemView) -> str:
    return view.master.change_key if isinstance(view, Occurrence) else view.change_key


def _item_type(view: ItemView) -> str:
    return "Occurrence" if isinstance(view, Occurrence) else view.calendar_item_type


def _original_start(view: ItemView) -> datetime | None:
    return view.original_start


def _duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    text = "P" + (f"{days}D" if days else "") + "T" + f"{hours}H{minutes}M{seconds}S"
    return text


_TAGS = re.compile(r"<[^>]+>")


def _body(view: ItemView, wanted: str) -> tuple[str, str]:
    body, body_type = _attr(view, "body"), _attr(view, "body_type")
    if wanted == "Text" and body_type == "HTML":
        return html.unescape(_TAGS.sub("", body)), "Text"
    if wanted == "HTML" and body_type == "Text":
        return f"<html><body>{html.escape(body)}</body></html>", "HTML"
    return body, body_type


def _mailbox(parent: etree._Element, address: str, name: str | None) -> None:
    mailbox = sub(parent, t("Mailbox"))
    sub(mailbox, t("Name"), name or address)
    sub(mailbox, t("EmailAddress"), address)
    sub(mailbox, t("RoutingType"), "SMTP")
    sub(mailbox, t("MailboxType"), "Mailbox")


def _attendee_list(parent: etree._Element, tag: str, attendees: list[Attendee]) -> None:
    if not attendees:
        return
    container = sub(parent, t(tag))
    for attendee in attendees:
        entry = sub(container, t("Attendee"))
        _mailbox(entry, attendee.email, attendee.name)
        sub(entry, t("ResponseType"), attendee.response)


Writer = Callable[[etree._Element, ItemView, "WriteContext"], None]


@dataclass
class WriteContext:
    shape: Shape
    meeting_time_zone: bool = False


def _simple(tag: str, getter: Callable[[ItemView], Any]) -> tuple[str, Writer]:
    def write(parent: etree._Element, view: ItemView, ctx: WriteContext) -> None:
        value = getter(view)
        if value is not None:
            sub(parent, t(tag), value)

    return tag, write


def _write_item_id(parent: etree._Element, view: ItemView, ctx: WriteContext) -> None:
    sub(parent, t("ItemId"), Id=view.item_id, ChangeKey=_change_key(view))


def _write_parent(parent: etree._Element, view: ItemView, ctx: WriteContext) -> None:
    master = _master(view)
    sub(
        parent,
        t("ParentFolderId"),
        Id=master.mailbox.folder_id(master.folder),
        ChangeKey=master.mailbox.folder_change_key,
    )


def _write_body(parent: etree._Element, view: ItemView, ctx: WriteContext) -> None:
    body, body_type = _body(view, ctx.shape.body_type)
    sub(parent, t("Body"), body, BodyType=body_type)


def _write_categories(parent: etree._Element, view: ItemView, ctx: WriteContext) -> None:
    categories = _attr(view, "categories")
    if categories:
        container = sub(parent, t("Categories"))
        for category in categories:
            sub(container, t("String"), category)


def _write_extended(parent: etree._Element, view: ItemView, ctx: WriteContext) -> None:
    stored = _attr(view, "extended_properties")
    for key in ctx.shape.extended:
        if key not in stored:
            continue
        prop = sub(parent, t("ExtendedProperty"))
        write_ext_uri(prop, key)
        value = stored[key]
        if isinstance(value, list):
            values = sub(prop, t("Values"))
            for v in value:
                sub(values, t("Value"), v)
        else:
            sub(prop, t("Value"), value)


def _write_text_body(parent: etree._Element, view: ItemView, ctx: WriteContext) -> None:
    body, _ = _body(view, "Text")
    sub(parent, t("TextBody"), body, BodyType="Text")


def _write_organizer(parent: etree._Element, view: ItemView, ctx: WriteContext) -> None:
    mailbox = _master(view).mailbox
    organizer = sub(parent, t("Organizer"))
    address = _attr(view, "organizer") or mailbox.address
    _mailbox(organizer, address, mailbox.display_name if address == mailbox.address else None)


def _write_required(parent: etree._Element, view: ItemView, ctx: WriteContext) -> None:
    _attendee_list(parent, "RequiredAttendees", _attr(view, "required_attendees"))


def _write_optional(parent: etree._Element, view: ItemView, ctx: WriteContext) -> None:
    _attendee_list(parent, "OptionalAttendees", _attr(view, "optional_attendees"))


def _write_recurrence_block(parent: etree._Element, view: ItemView, ctx: WriteContext) -> None:
    if isinstance(view, CalendarItem) and view.recurrence is not None:
        wanted = {
            "Recurrence",
            "FirstOccurrence",
            "LastOccurrence",
            "ModifiedOccurrences",
            "DeletedOccurrences",
        }
        recurrence.write(parent, view, wanted & ctx.shape.names)


def _zone_writer(tag: str, attr: str) -> tuple[str, Writer]:
    def write(parent: etree._Element, view: ItemView, ctx: WriteContext) -> None:
        if (tag == "MeetingTimeZone") != ctx.meeting_time_zone:
            return
        zone_id = _attr(view, attr) or _master(view).mailbox.time_zone
        timezones.write_definition(parent, t(tag), timezones.windows_id_for(zone_id))

    return tag, write


_WRITERS: list[tuple[str, Writer]] = [
    ("ItemId", _write_item_id),
    ("ParentFolderId", _write_parent),
    _simple("ItemClass", lambda v: "IPM.Appointment"),
    _simple("Subject", lambda v: _attr(v, "subject")),
    _simple("Sensitivity", lambda v: _attr(v, "sensitivity")),
    ("Body", _write_body),
    _simple("DateTimeReceived", lambda v: _attr(v, "created")),
    _simple("Size", lambda v: 512 + len(_attr(v, "body").encode())),
    ("Categories", _write_categories),
    _simple("Importance", lambda v: _attr(v, "importance")),
    _simple("IsSubmitted", lambda v: False),
    _simple("IsDraft", lambda v: False),
    _simple("IsFromMe", lambda v: False),
    _simple("IsResend", lambda v: False),
    _simple("IsUnmodified", lambda v: False),
    _simple("DateTimeSent", lambda v: _attr(v, "created")),
    _simple("DateTimeCreated", lambda v: _attr(v, "created")),
    _simple("ReminderIsSet", lambda v: _attr(v, "reminder_is_set")),
    _simple("ReminderMinutesBeforeStart", lambda v: _attr(v, "reminder_minutes_before_start")),
    _simple("DisplayCc", lambda v: "; ".join(a.name or a.email for a in _attr(v, "optional_attendees"))),
    _simple("DisplayTo", lambda v: "; ".join(a.name or a.email for a in _attr(v, "required_attendees"))),
    _simple("HasAttachments", lambda v: False),
    ("ExtendedProperty", _write_extended),
    _simple("Culture", lambda v: "en-US"),
    _simple("LastModifiedName", lambda v: _master(v).mailbox.display_name),
    _simple("LastModifiedTime", lambda v: _attr(v, "last_modified")),
    _simple("IsAssociated", lambda v: False),
    ("TextBody", _write_text_body),
    _simple("UID", lambda v: _attr(v, "uid")),
    _simple("RecurrenceId", _original_start),
    _simple("DateTimeStamp", lambda v: _attr(v, "last_modified")),
    _simple("Start", lambda v: v.start),
    _simple("End", lambda v: v.end),
    _simple("OriginalStart", _original_start),
    _simple("IsAllDayEvent", lambda v: _attr(v, "is_all_day")),
    _simple("LegacyFreeBusyStatus", lambda v: _attr(v, "legacy_free_busy_status")),
    _simple("Location", lambda v: _attr(v, "location")),
    _simple("IsMeeting", lambda v: _master(v).is_meeting),
    _simple("IsCancelled", lambda v: _attr(v, "is_cancelled")),
    _simple("IsRecurring", lambda v: _item_type(v) in ("Occurrence", "Exception")),
    _simple("MeetingRequestWasSent", lambda v: False),
    _simple("IsResponseRequested", lambda v: _master(v).is_meeting),
    _simple("CalendarItemType", _item_type),
    _simple("MyResponseType", lambda v: "Organizer"),
    ("Organizer", _write_organizer),
    ("RequiredAttendees", _write_required),
    ("OptionalAttendees", _write_optional),
    _simple("Duration", lambda v: _duration(v.end - v.start)),
    _simple("AppointmentSequenceNumber", lambda v: 0),
    _simple("AppointmentState", lambda v: 1 if _master(v).is_meeting else 0),
    ("Recurrence", _write_recurrence_block),
    _zone_writer("MeetingTimeZone", "start_timezone"),
    _zone_writer("StartTimeZone", "start_timezone"),
    _zone_writer("EndTimeZone", "end_timezone"),
]

_RECURRENCE_BLOCK = {
    "Recurrence",
    "FirstOccurrence",
    "LastOccurrence",
    "ModifiedOccurrences",
    "DeletedOccurrences",
}


def write_calendar_item(
    parent: etree._Element, view: ItemView, shape: Shape, meeting_time_zone: bool = False
) -> None:
    """Append ``<t:CalendarItem>`` with the properties ``shape`` asks for, in schema order."""
    el = sub(parent, t("CalendarItem"))
    ctx = WriteContext(shape, meeting_time_zone)
    names = shape.names | ({"ExtendedProperty"} if shape.extended else set())
    if names & _RECURRENCE_BLOCK:
        names = names | {"Recurrence"}
    for name, writer in _WRITERS:
        if name in names:
            writer(el, view, ctx)
