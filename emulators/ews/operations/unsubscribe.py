"""Unsubscribe: end a streaming or pull subscription.

https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/unsubscribe-operation
"""

from __future__ import annotations

from lxml import etree

from emulators.ews import soap
from emulators.ews.context import RequestContext
from emulators.ews.errors import EwsError
from emulators.ews.notifications import hub_of, note_affinity, owner_of
from emulators.ews.operations import operation
from emulators.ews.xml import M_NS, text_of


@operation("Unsubscribe")
def unsubscribe(ctx: RequestContext, request: etree._Element, body: etree._Element) -> None:
    """Forget the subscription; an open stream carrying it stops reporting it (and closes if it was the last)."""
    hub = hub_of(ctx)
    _, messages = soap.response(body, "Unsubscribe")
    sub_id = (text_of(request, M_NS, "SubscriptionId") or "").strip()
    try:
        found = hub.subscriptions.get(sub_id)
        if found is not None:
            note_affinity(ctx, hub, [found])
        hub.unsubscribe(sub_id, owner_of(ctx))
    except EwsError as err:
        soap.error(messages, "Unsubscribe", err)
        return
    soap.success(messages, "Unsubscribe")
