"""GetStreamingEvents: one chunked HTTP 200 carrying a SOAP envelope per notification batch or heartbeat.

https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/getstreamingevents-operation
https://learn.microsoft.com/en-us/exchange/client-developer/exchange-web-services/how-to-stream-notifications-about-mailbox-events-by-using-ews-in-exchange

Each envelope is written as its own chunk and is *unprefixed* (``<Envelope xmlns="…/soap/envelope/">``), as Exchange
writes it: ews-javascript-api looks for the literal text ``<Envelope``. The stream ends with a ``Closed`` envelope
when ConnectionTimeout runs out; a ``drop_stream`` fault cuts it without one.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from typing import Any

from aiohttp import web
from lxml import etree

from emulators.ews import soap
from emulators.ews.context import RequestContext, _app_allows
from emulators.ews.errors import EwsError
from emulators.ews.model import ChangeEvent, encode_folder_id
from emulators.ews.notifications import (
    MISSED_CODE,
    MISSED_MESSAGE,
    NotificationHub,
    StreamConnection,
    Subscription,
    check_message,
    hub_of,
    note_affinity,
    owner_of,
)
from emulators.ews.operations import streaming_operation
from emulators.ews.xml import M_NS, SOAP_NS, T_NS, child, children, m, sub, t, text_of

_NOT_FOUND = "The specified subscription was not found."


def write_event(notification: etree._Element, event: ChangeEvent, watermark: str | None = None) -> None:
    """One ``t:{Kind}`` event in schema order: Watermark?, TimeStamp, ItemId, ParentFolderId (Old* for moves)."""
    mailbox = event.mailbox
    calendar = (mailbox.folder_id(event.folder), mailbox.folder_change_key)
    el = sub(notification, t(event.kind))
    if watermark is not None:
        sub(el, t("Watermark"), watermark)
    sub(el, t("TimeStamp"), event.timestamp)
    if event.kind == "MovedEvent":
        # A calendar item moved out (MoveToDeletedItems) now lives in Deleted Items; the Old* ids say where from.
        sub(el, t("ItemId"), Id=event.item_id, ChangeKey=event.change_key)
        sub(el, t("ParentFolderId"), Id=encode_folder_id(mailbox.num, "deleteditems"), ChangeKey=calendar[1])
        sub(el, t("OldItemId"), Id=event.old_item_id or event.item_id, ChangeKey=event.change_key)
        sub(el, t("OldParentFolderId"), Id=calendar[0], ChangeKey=calendar[1])
        return
    sub(el, t("ItemId"), Id=event.item_id, ChangeKey=event.change_key)
    sub(el, t("ParentFolderId"), Id=calendar[0], ChangeKey=calendar[1])


class _Disconnect(asyncio.Protocol):
    """Sits between the transport and aiohttp's protocol while a stream is open, to hear the client leave.

    aiohttp does not cancel a handler when its client disconnects; a stream that only writes would otherwise learn
    of it at its next write (a heartbeat, up to minutes later) and keep counting against the connection limit.
    """

    def __init__(self, inner: Any, on_lost: Any) -> None:
        self.inner = inner
        self.on_lost = on_lost

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            self.inner.connection_lost(exc)
        finally:
            self.on_lost()


class _Stream:
    """The chunked response: builds, checks, captures and writes one envelope per call."""

    def __init__(self, ctx: RequestContext, http: web.Request) -> None:
        self.ctx = ctx
        self.http = http
        self.response = web.StreamResponse(status=200)
        self.response.content_type = "text/xml"
        self.response.charset = "utf-8"
        self.response.enable_chunked_encoding()
        self.failed: str | None = None

    async def start(self) -> None:
        await self.response.prepare(self.http)

    def message(self, success: bool, err: EwsError | None = None) -> tuple[etree._Element, etree._Element]:
        """A fresh ``GetStreamingEventsResponse``; returns (response element, response message)."""
        holder = etree.Element("holder")
        resp, messages = soap.response(holder, "GetStreamingEvents")
        if success:
            return resp, soap.success(messages, "GetStreamingEvents")
        assert err is not None
        return resp, soap.error(messages, "GetStreamingEvents", err)

    async def write(self, resp: etree._Element) -> None:
        problem = check_message(self.ctx.emulator, "GetStreamingEvents", resp)
        if problem:
            # Fail loudly, but the status line is gone already: say it in the stream and on stderr, then stop.
            print(problem, file=sys.stderr, flush=True)
            self.failed = problem
            await self.response.write(problem.encode())
            return
        major, minor, major_build, minor_build = self.ctx.settings.build
        head = (
            f'<Envelope xmlns="{SOAP_NS}"><soap11:Header xmlns:soap11="{SOAP_NS}">'
            f'<ServerVersionInfo xmlns="{T_NS}" MajorVersion="{major}" MinorVersion="{minor}" '
            f'MajorBuildNumber="{major_build}" MinorBuildNumber="{minor_build}" '
            f'Version="{self.ctx.settings.server_version_name}"/></soap11:Header>'
            f'<soap11:Body xmlns:soap11="{SOAP_NS}">'
        )
        chunk = head.encode() + etree.tostring(resp) + b"</soap11:Body></Envelope>"
        await self.response.write(chunk)

    async def error(self, err: EwsError, ids: list[str], status: str | None = None) -> None:
        resp, message = self.message(False, err)
        if ids:
            ids_el = sub(message, m("ErrorSubscriptionIds"))
            for sub_id in ids:
                sub(ids_el, t("SubscriptionId"), sub_id)
        if status:
            sub(message, m("ConnectionStatus"), status)
        await self.write(resp)

    async def status(
        self, status: str, notifications: dict[Subscription, list[ChangeEvent]] | None = None
    ) -> None:
        resp, message = self.message(True)
        if notifications:
            holder = sub(message, m("Notifications"))
            for subscription, events in notifications.items():
                notification = sub(holder, t("Notification"))
                sub(notification, t("SubscriptionId"), subscription.id)
                for event in events:
                    write_event(notification, event)
        sub(message, m("ConnectionStatus"), status)
        await self.write(resp)

    async def finish(self) -> web.StreamResponse:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.response.write_eof()
        return self.response


def account_of(ctx: RequestContext) -> str:
    """Whose streaming-connection budget a request uses: the authenticated account, whoever it impersonates."""
    return ctx.principal.name.lower()


def _check_request(
    ctx: RequestContext, hub: NotificationHub, ids: list[str], owner: str
) -> list[Subscription]:
    """The subscriptions a request names, or the EwsError (with the bad ids) the stream answers instead."""
    settings = ctx.settings
    # The hanging-connection limit is the authenticated account's (the service account's, when it impersonates):
    # that is what bounds a sync service and makes it pack up to 200 mailboxes into each connection.
    if hub.open_count(account_of(ctx)) >= settings.max_streaming_connections:
        raise _IdsError(
            "ErrorExceededConnectionCount",
            "You have exceeded the available concurrent connections for your account. "
            "Try again once your other requests have completed.",
            [],
        )
    if len(ids) > settings.max_subscriptions_per_connection:
        raise _IdsError(
            "ErrorInvalidArgument",
            f"A streaming connection can carry at most {settings.max_subscriptions_per_connection} "
            "subscriptions.",
            [],
        )
    subs: list[Subscription] = []
    bad: list[str] = []
    for sub_id in dict.fromkeys(ids):
        try:
            found = hub.lookup(sub_id, owner)
        except EwsError:
            grouped = _grouped_subscription(ctx, hub, sub_id)
            if grouped is None:
                bad.append(sub_id)
                continue
            found = grouped
        if found.kind != "streaming":
            raise _IdsError(
                "ErrorInvalidSubscription", "The subscription is not a streaming subscription.", [sub_id]
            )
        subs.append(found)
    if bad:
        raise _IdsError("ErrorSubscriptionNotFound", _NOT_FOUND, bad)
    overflowed = [s.id for s in subs if s.overflowed]
    if overflowed:
        # More events waited than the server keeps: they are gone, and the subscriptions must be recreated.
        raise _IdsError(MISSED_CODE, MISSED_MESSAGE, overflowed)
    if hub.take_missed("GetStreamingEvents", {s.mailbox.address for s in subs}):
        raise _IdsError(
            "ErrorMissedNotificationEvents",
            "Events were lost; the subscription must be recreated.",
            [s.id for s in subs],
        )
    return subs


def _grouped_subscription(ctx: RequestContext, hub: NotificationHub, sub_id: str) -> Subscription | None:
    """A subscription this caller made for another mailbox by impersonating it, now carried by a group connection.

    Microsoft's affinity guidance (and its streaming sample) subscribes each mailbox of a group while impersonating it,
    then opens one GetStreamingEvents for up to 200 of those ids while impersonating one mailbox of the group.
    """
    sub = hub.subscriptions.get(sub_id)
    if sub is None or not ctx.impersonated:
        return None
    principal = ctx.principal
    allowed = (
        ctx.store.can_impersonate(principal.name, sub.owner)
        if principal.kind == "user"
        else _app_allows(ctx.store, principal.name, sub.owner)
    )
    if not allowed:
        return None
    try:
        return hub.lookup(sub_id, sub.owner)
    except EwsError:
        return None


class _IdsError(EwsError):
    def __init__(self, code: str, message: str, ids: list[str]) -> None:
        super().__init__(code, message)
        self.ids = ids


@streaming_operation("GetStreamingEvents")
async def get_streaming_events(
    ctx: RequestContext, request: etree._Element, http: web.Request
) -> web.StreamResponse:
    """Hold the connection open for ConnectionTimeout minutes, writing notifications as they happen."""
    hub = hub_of(ctx)
    owner = owner_of(ctx)
    ids = [
        el.text.strip()
        for el in children(child(request, M_NS, "SubscriptionIds"), T_NS, "SubscriptionId")
        if el.text
    ]
    minutes = int(text_of(request, M_NS, "ConnectionTimeout", "0") or 0)
    stream = _Stream(ctx, http)
    try:
        if not 1 <= minutes <= 30:
            raise _IdsError(
                "ErrorInvalidArgument", "ConnectionTimeout must be between 1 and 30, inclusive.", []
            )
        subs = _check_request(ctx, hub, ids, owner)
    except _IdsError as err:
        await stream.start()
        await stream.error(err, err.ids)
        return await stream.finish()
    note_affinity(ctx, hub, subs)
    await stream.start()
    transport = http.transport
    connection = hub.open_connection(account_of(ctx), subs, transport)
    inner = transport.get_protocol() if transport is not None else None

    def lost() -> None:
        connection.lost = True
        connection.wake.set()

    if transport is not None and not transport.is_closing():
        transport.set_protocol(_Disconnect(inner, lost))
    try:
        if hub.take_pending_drop(connection.mailboxes()):
            connection.dropped = True
        else:
            await _serve(ctx, stream, connection, minutes * 60)
    except ConnectionError:
        connection.lost = True
    finally:
        hub.close_connection(connection)
        if transport is not None and inner is not None and not transport.is_closing():
            transport.set_protocol(inner)
    if connection.dropped and transport is not None:
        # drop_stream: cut the TCP connection mid-body, no Closed envelope, no final chunk.
        transport.abort()
        return stream.response
    if connection.lost:
        return stream.response
    return await stream.finish()


async def _serve(ctx: RequestContext, stream: _Stream, connection: StreamConnection, seconds: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    last_write = loop.time()
    while True:
        if connection.dropped or connection.lost or stream.failed:
            return
        if connection.errors:
            for code, message, ids, close in list(connection.errors):
                connection.errors.remove((code, message, ids, close))
                last = close or not connection.subscriptions
                await stream.error(EwsError(code, message), ids, "Closed" if last else "OK")
                if last:
                    return
            last_write = loop.time()
        batch = {s: list(s.pending) for s in connection.subscriptions if s.pending}
        if batch:
            # Written first, taken off the queue after: a failed write leaves them for the next connection.
            await stream.status("OK", batch)
            if stream.failed:
                return
            for s, events in batch.items():
                for event in events:
                    if s.pending and s.pending[0] is event:
                        s.pending.popleft()
            last_write = loop.time()
        if not connection.subscriptions:
            # Every subscription was unsubscribed or moved: nothing left to wait for.
            await stream.status("Closed")
            return
        now = loop.time()
        if now >= deadline:
            await stream.status("Closed")
            return
        heartbeat_due = last_write + ctx.settings.heartbeat_seconds
        if now >= heartbeat_due:
            await stream.status("OK")
            last_write = now
            continue
        connection.wake.clear()
        if any(s.pending for s in connection.subscriptions) or connection.errors:
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(connection.wake.wait(), timeout=min(heartbeat_due, deadline) - now)
