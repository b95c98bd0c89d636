"""Subscribe: streaming and pull subscriptions on one mailbox's folders, with the server-affinity cookie.

https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/subscribe-operation
https://learn.microsoft.com/en-us/exchange/client-developer/exchange-web-services/how-to-maintain-affinity-between-group-of-subscriptions-and-mailbox-server

Registered as a streaming (self-responding) handler only because it must set a cookie on the HTTP response.
"""

from __future__ import annotations

import sys

from aiohttp import web
from lxml import etree

from emulators.ews import soap
from emulators.ews.context import RequestContext, folder_ids
from emulators.ews.errors import EwsError
from emulators.ews.model import Mailbox
from emulators.ews.notifications import Subscription, affinity_cookie, check_message, header, hub_of, owner_of
from emulators.ews.operations import streaming_operation
from emulators.ews.xml import M_NS, T_NS, child, children, local, m, parse_bool, sub, text_of, to_bytes

_KINDS = {"StreamingSubscriptionRequest": "streaming", "PullSubscriptionRequest": "pull"}


def _subscribe(ctx: RequestContext, request_el: etree._Element) -> Subscription:
    kind = _KINDS.get(local(request_el))
    if kind is None:
        raise EwsError(
            "ErrorInvalidSubscriptionRequest", "The emulator supports streaming and pull subscriptions only."
        )
    hub = hub_of(ctx)
    folders: set[str] = set()
    mailboxes: list[Mailbox] = []
    if parse_bool(request_el.get("SubscribeToAllFolders")):
        folders.add("*")
        mailboxes.append(ctx.default_mailbox())
    for folder_el in folder_ids(child(request_el, T_NS, "FolderIds")):
        mailbox, name = ctx.resolve_folder(folder_el)
        folders.add(name)
        mailboxes.append(mailbox)
    if not mailboxes:
        raise EwsError("ErrorInvalidSubscriptionRequest", "The subscription request names no folder.")
    if len({mb.num for mb in mailboxes}) > 1:
        # Exchange: "all folders in a subscription request must belong to the same mailbox".
        raise EwsError(
            "ErrorInvalidSubscriptionRequest", "Subscriptions can only cover folders of one mailbox."
        )
    mailbox = mailboxes[0]
    ctx.check_access(mailbox, "read")
    event_types = {
        el.text.strip()
        for el in children(child(request_el, T_NS, "EventTypes"), T_NS, "EventType")
        if el.text
    }
    timeout = int(text_of(request_el, T_NS, "Timeout", "0") or 0)
    # Pull requests put the Watermark in the messages namespace (exchangelib) or types namespace (the schema).
    watermark_el = child(request_el, M_NS, "Watermark")
    if watermark_el is None:
        watermark_el = child(request_el, T_NS, "Watermark")
    watermark = watermark_el.text.strip() if watermark_el is not None and watermark_el.text else None
    return hub.subscribe(kind, mailbox, owner_of(ctx), event_types, folders, timeout, watermark)


@streaming_operation("Subscribe")
async def subscribe(ctx: RequestContext, request: etree._Element, http: web.Request) -> web.StreamResponse:
    """Create the subscription and answer SubscriptionId (+ Watermark for pull), setting the affinity cookie."""
    envelope, body = soap.envelope(ctx.settings)
    _, messages = soap.response(body, "Subscribe")
    request_el = next((el for el in request if isinstance(el.tag, str)), None)
    created: Subscription | None = None
    try:
        if request_el is None:
            raise EwsError("ErrorInvalidSubscriptionRequest", "The subscription request is empty.")
        created = _subscribe(ctx, request_el)
    except EwsError as err:
        soap.error(messages, "Subscribe", err)
    else:
        message = soap.success(messages, "Subscribe")
        sub(message, m("SubscriptionId"), created.id)
        if created.kind == "pull":
            from emulators.ews.notifications import encode_watermark

            sub(message, m("Watermark"), encode_watermark(created.mailbox, created.start_seq))
    problem = check_message(ctx.emulator, "Subscribe", body[0])
    if problem:
        print(problem, file=sys.stderr, flush=True)
        return web.Response(status=500, text=problem)
    ctx.emulator.stats.http_statuses[200] += 1
    response = web.Response(body=to_bytes(envelope), content_type="text/xml", charset="utf-8")
    if created is not None and (header(ctx, "X-PreferServerAffinity") or "").lower() == "true":
        # Exchange answers X-PreferServerAffinity with the backend that hosts the mailbox; clients send it back on
        # GetStreamingEvents / GetEvents / Unsubscribe so the group's requests reach the same server.
        response.set_cookie(
            "X-BackEndOverrideCookie", affinity_cookie(created.mailbox), path="/", httponly=True
        )
    return response
