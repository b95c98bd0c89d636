"""CreateItem: new calendar items, many per request, one response message each.

https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/createitem-operation
"""

from __future__ import annotations

from datetime import timedelta

from lxml import etree

from emulators.ews.context import RequestContext, folder_ids
from emulators.ews.errors import EwsError
from emulators.ews.itemxml import check_times, finish_recurrence, parse_calendar_item, resolve_times
from emulators.ews.model import utcnow
from emulators.ews.operations import operation
from emulators.ews.operations._common import each_message
from emulators.ews.soap import response
from emulators.ews.xml import M_NS, child, local, m, sub, t


@operation("CreateItem")
def create_item(ctx: RequestContext, request: etree._Element, body: etree._Element) -> None:
    saved = folder_ids(child(request, M_NS, "SavedItemFolderId"))
    items = [el for el in child(request, M_NS, "Items") if isinstance(el.tag, str)]  # type: ignore[union-attr]
    _, messages = response(body, "CreateItem")
    invitations = request.get("SendMeetingInvitations")

    def handle(item_el: etree._Element, message: etree._Element) -> None:
        if local(item_el) != "CalendarItem":
            raise EwsError(
                "ErrorInvalidItemForOperation",
                f"This mailbox keeps calendar items only, not {local(item_el)}.",
            )
        if invitations is None:
            # Exchange insists on being told whether to send invitations for calendar items.
            raise EwsError(
                "ErrorSendMeetingInvitationsRequired",
                "SendMeetingInvitations attribute is required for Calendar items.",
            )
        if saved:
            mailbox, folder = ctx.calendar_folder_of(saved[0], "create")
        else:
            mailbox, folder = ctx.default_mailbox(), "calendar"
            ctx.check_access(mailbox, "create")
        fields = parse_calendar_item(item_el)
        if ctx.time_zone and "start_timezone" not in fields and not ctx.uses_meeting_time_zone:
            # No StartTimeZone: the item takes the request's TimeZoneContext zone.
            fields["start_timezone"] = ctx.time_zone
        resolve_times(fields, ctx.time_zone)
        start = fields.setdefault("start", utcnow())
        end = fields.setdefault("end", start + timedelta(minutes=30))
        check_times(start, end)
        finish_recurrence(fields, start)
        fields.setdefault("organizer", mailbox.address)
        item = ctx.store.create_item(mailbox, fields, folder)
        container = sub(message, m("Items"))
        calendar_item = sub(container, t("CalendarItem"))
        sub(calendar_item, t("ItemId"), Id=item.item_id, ChangeKey=item.change_key)

    each_message(messages, "CreateItem", items, handle)
