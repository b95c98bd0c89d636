"""GetItem: items by id (plain, occurrence or recurring master), with the requested shape.

https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/getitem-operation
"""

from __future__ import annotations

from lxml import etree

from emulators.ews.context import RequestContext
from emulators.ews.itemxml import Shape, write_calendar_item
from emulators.ews.operations import operation
from emulators.ews.operations._common import each_message, item_id_elements, resolve_item
from emulators.ews.soap import response
from emulators.ews.xml import M_NS, child, m, sub


@operation("GetItem")
def get_item(ctx: RequestContext, request: etree._Element, body: etree._Element) -> None:
    shape = Shape.parse(child(request, M_NS, "ItemShape"))
    _, messages = response(body, "GetItem")

    def handle(id_el: etree._Element, message: etree._Element) -> None:
        item = resolve_item(ctx, id_el, "read")
        write_calendar_item(sub(message, m("Items")), item, shape, ctx.uses_meeting_time_zone)

    each_message(messages, "GetItem", item_id_elements(child(request, M_NS, "ItemIds")), handle)
