"""DeleteItem: items, whole series, or single occurrences.

https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/deleteitem-operation
"""

from __future__ import annotations

from lxml import etree

from emulators.ews.context import RequestContext
from emulators.ews.errors import EwsError
from emulators.ews.operations import operation
from emulators.ews.operations._common import each_message, item_id_elements, resolve_item
from emulators.ews.soap import response
from emulators.ews.xml import M_NS, child


@operation("DeleteItem")
def delete_item(ctx: RequestContext, request: etree._Element, body: etree._Element) -> None:
    # MoveToDeletedItems takes the item out of the calendar into Deleted Items: the calendar sees a move.
    kind = "MovedEvent" if request.get("DeleteType") == "MoveToDeletedItems" else "DeletedEvent"
    _, messages = response(body, "DeleteItem")
    cancellations = request.get("SendMeetingCancellations")

    def handle(id_el: etree._Element, message: etree._Element) -> None:
        item = resolve_item(ctx, id_el, "write")
        if cancellations is None:
            # As for CreateItem and UpdateItem: required for calendar items (the only items here).
            raise EwsError(
                "ErrorSendMeetingCancellationsRequired",
                "SendMeetingCancellations attribute is required for Calendar items.",
            )
        ctx.store.delete_item(item, kind)

    each_message(messages, "DeleteItem", item_id_elements(child(request, M_NS, "ItemIds")), handle)
