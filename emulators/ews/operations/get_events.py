"""GetEvents: a pull subscription's events since a watermark.

https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/getevents-operation

Each call renews the subscription's Timeout. With nothing new, Exchange answers one StatusEvent carrying the current
watermark; with more than a batch, MoreEvents is true and the client calls again from the last event's watermark.
"""

from __future__ import annotations

from lxml import etree

from emulators.ews import soap
from emulators.ews.context import RequestContext
from emulators.ews.errors import EwsError
from emulators.ews.notifications import hub_of, note_affinity, owner_of
from emulators.ews.operations import operation
from emulators.ews.operations.get_streaming_events import write_event
from emulators.ews.xml import M_NS, m, sub, t, text_of

# Exchange hands out pull events in batches (MoreEvents=true while more remain); its batch size is not documented.
BATCH = 50


@operation("GetEvents")
def get_events(ctx: RequestContext, request: etree._Element, body: etree._Element) -> None:
    """The events after the given watermark, or a StatusEvent."""
    hub = hub_of(ctx)
    _, messages = soap.response(body, "GetEvents")
    sub_id = (text_of(request, M_NS, "SubscriptionId") or "").strip()
    watermark = (text_of(request, M_NS, "Watermark") or "").strip()
    try:
        subscription = hub.lookup(sub_id, owner_of(ctx))
        if subscription.kind != "pull":
            raise EwsError("ErrorInvalidPullSubscriptionId", "The subscription is not a pull subscription.")
        note_affinity(ctx, hub, [subscription])
        if hub.take_missed("GetEvents", {subscription.mailbox.address}):
            raise EwsError(
                "ErrorMissedNotificationEvents", "Events were lost; the subscription must be recreated."
            )
        previous, events, more, current = hub.pull(subscription, watermark, BATCH)
    except EwsError as err:
        soap.error(messages, "GetEvents", err)
        return
    message = soap.success(messages, "GetEvents")
    notification = sub(message, m("Notification"))
    sub(notification, t("SubscriptionId"), subscription.id)
    sub(notification, t("PreviousWatermark"), previous)
    sub(notification, t("MoreEvents"), more)
    if not events:
        status = sub(notification, t("StatusEvent"))
        sub(status, t("Watermark"), current)
    for event, event_watermark in events:
        write_event(notification, event, event_watermark)
