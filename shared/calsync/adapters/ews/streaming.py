"""``StreamingExchange`` for Exchange Web Services, through exchangelib's Subscribe / GetStreamingEvents /
Unsubscribe services, with Microsoft's affinity pattern for groups of subscriptions.

Every request of a group carries ``X-AnchorMailbox`` = the group's anchor mailbox and ``X-PreferServerAffinity``,
and, once Exchange set it on the first Subscribe, the ``X-BackEndOverrideCookie`` naming the anchor's back-end. Each
mailbox is subscribed while impersonating it (or, with delegate access, by naming its calendar); the group's
connection impersonates the anchor.
https://learn.microsoft.com/en-us/exchange/client-developer/exchange-web-services/how-to-maintain-affinity-between-group-of-subscriptions-and-mailbox-server

exchangelib sends ``X-AnchorMailbox`` = the account's own mailbox and keeps the cookie per Account; the subclasses
below route by the group instead, and keep the cookie out of the shared requests sessions, whose cookie jar would
otherwise carry one group's back-end cookie into the next group's requests.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import requests
import urllib3
from exchangelib import errors as ews
from exchangelib.properties import CreatedEvent, ModifiedEvent
from exchangelib.services import GetStreamingEvents, SubscribeToStreaming, Unsubscribe
from exchangelib.util import DummyResponse

from calsync.adapters.ews.connection import (
    DEFAULT_TIMEOUT_SECONDS,
    AccountCache,
    SelectiveVerifyHTTPAdapter,
    build_credentials,
    checked_mailbox,
    install_tls_adapter,
)
from calsync.adapters.ews.errors import Where, translate, translated
from calsync.adapters.ews.session import calendar_of
from calsync.domain import ExchangeConnection
from calsync.domain.messages import NotifiedItem
from calsync.streaming.ports import (
    MissedEventsError,
    StreamDroppedError,
    StreamNotification,
    Subscribed,
    SubscriptionsLostError,
)

COOKIE = "X-BackEndOverrideCookie"
# What can change a calendar; NewMail and FreeBusyChanged say nothing a calendar sync needs.
EVENT_TYPES = ("CreatedEvent", "ModifiedEvent", "DeletedEvent", "MovedEvent", "CopiedEvent")
_LOST = (
    ews.ErrorSubscriptionNotFound,
    ews.ErrorInvalidSubscription,
    ews.ErrorExpiredSubscription,
    # Another connection took our subscriptions over (e.g. a task that still believes it owns them).
    ews.ErrorNewEventStreamConnectionOpened,
)
_BROKEN = (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, ews.TransportError, OSError)


class _Affinity:
    """Routing shared by every request of one group: its anchor mailbox and the back-end cookie Exchange set."""

    def __init__(self, anchor: str, cookie: str | None) -> None:
        self.anchor = anchor
        self.cookie = cookie


class _Anchored:
    """Mixed into exchangelib's services: route by the group, not by the account."""

    affinity: _Affinity
    response: Any = None

    def _extra_headers(self) -> dict[str, str]:
        headers: dict[str, str] = super()._extra_headers()  # type: ignore[misc]
        headers["X-AnchorMailbox"] = self.affinity.anchor
        headers["X-PreferServerAffinity"] = "True"
        headers.pop(COOKIE, None)
        if self.affinity.cookie:
            # Both ways Exchange versions read it; an explicit Cookie header also keeps the session's jar out.
            headers[COOKIE] = self.affinity.cookie
            headers["Cookie"] = f"{COOKIE}={self.affinity.cookie}"
        return headers

    def _get_response(self, payload: Any, api_version: Any) -> Any:
        response = super()._get_response(payload, api_version)  # type: ignore[misc]
        self.response = response
        return response

    def _handle_response_cookies(self, session: Any) -> None:
        for cookie in list(session.cookies):
            if cookie.name == COOKIE:
                if cookie.value:
                    self.affinity.cookie = cookie.value
                # Never left in the pooled session, where another group's request would send it.
                session.cookies.clear(cookie.domain, cookie.path, cookie.name)


class _GroupSubscribe(_Anchored, SubscribeToStreaming):  # type: ignore[misc]
    def __init__(self, *, affinity: _Affinity, **kwargs: Any) -> None:
        self.affinity = affinity
        super().__init__(**kwargs)


class _GroupUnsubscribe(_Anchored, Unsubscribe):  # type: ignore[misc]
    def __init__(self, *, affinity: _Affinity, **kwargs: Any) -> None:
        self.affinity = affinity
        super().__init__(**kwargs)


# The longest a single response document of the stream may be; a stream that sends more without closing one is
# broken (or hostile), and is dropped instead of growing the task's memory.
MAX_DOCUMENT_BYTES = 4 * 1024 * 1024
_READ_BYTES = 64 * 1024
_ENVELOPE_START = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?Envelope[\s>/]")
_ENVELOPE_END = re.compile(rb"</(?:[A-Za-z_][\w.-]*:)?Envelope\s*>")
_XML_DECLARATION = b"<?xml version='1.0' encoding='utf-8'?>\n"


def soap_documents(read: Callable[[], bytes], limit: int = MAX_DOCUMENT_BYTES) -> Iterator[bytes]:
    """The SOAP envelopes of a streaming response, each as soon as its last byte arrived.

    ``read()`` returns whatever arrived (b"" at the end). exchangelib's own reader (``DocumentYielder``) takes the
    response one byte per call through requests and urllib3, several thousand calls per notification; this one
    looks for the envelope's start and end tags in whole reads. Bytes outside an envelope are skipped, as there."""
    buffer = b""
    while True:
        data = read()
        if not data:
            return
        buffer += data
        while True:
            start = _ENVELOPE_START.search(buffer)
            if start is None:
                buffer = buffer[-64:]  # keep a tag that may be cut in two
                break
            end = _ENVELOPE_END.search(buffer, start.end())
            if end is None:
                buffer = buffer[start.start() :]
                if len(buffer) > limit:
                    raise ews.TransportError(f"a streaming response document exceeds {limit} bytes")
                break
            yield _XML_DECLARATION + buffer[start.start() : end.end()]
            buffer = buffer[end.end() :]


class _GroupStreamingEvents(_Anchored, GetStreamingEvents):  # type: ignore[misc]
    def __init__(self, *, affinity: _Affinity, **kwargs: Any) -> None:
        self.affinity = affinity
        super().__init__(**kwargs)

    def _get_soap_messages(self, body: Any) -> Iterator[Any]:
        """exchangelib's, with the documents read by ``soap_documents`` (``body`` is the raw streaming response)."""
        response = body
        raw = response.raw
        for document in soap_documents(lambda: raw.read1(_READ_BYTES, decode_content=True)):
            try:
                _, soap_body = super(GetStreamingEvents, self)._get_soap_parts(
                    response=DummyResponse(content=document)
                )
            except Exception:
                response.close()  # release the connection
                raise
            yield from super(GetStreamingEvents, self)._get_soap_messages(body=soap_body)
            if self.connection_status == self.CLOSED:
                break  # do not wait for the server to hang up


def notification_of(notification: Any) -> StreamNotification:
    """What one EWS ``Notification`` says: the items created or modified, each with its ``ItemId``'s ChangeKey
    (``BaseObjectChangedEventType``), and whether that is all it says. A deletion, a move or copy, a folder-level
    event, an event without a change key, or no event at all leaves it incomplete: only a sync can tell."""
    items: list[NotifiedItem] = []
    complete = True
    for event in notification.events or ():
        item_id = getattr(event, "item_id", None)
        if (
            isinstance(event, CreatedEvent | ModifiedEvent)
            and item_id is not None
            and item_id.id
            and item_id.changekey
        ):
            items.append(NotifiedItem(str(item_id.id), str(item_id.changekey)))
        else:
            complete = False
    return StreamNotification(str(notification.subscription_id), tuple(items), complete and bool(items))


class EwsEventStream:
    """One open ``GetStreamingEvents`` connection (``EventStream``)."""

    def __init__(
        self, service: _GroupStreamingEvents, subscription_ids: list[str], minutes: int, where: Where
    ) -> None:
        self._service = service
        self._ids = subscription_ids
        self._minutes = minutes
        self._where = where
        self._aborted = threading.Event()

    def __iter__(self) -> Iterator[StreamNotification]:
        service = self._service
        if self._aborted.is_set():
            raise StreamDroppedError("the connection was hung up before it opened")
        try:
            for notification in service.call(subscription_ids=self._ids, connection_timeout=self._minutes):
                if self._aborted.is_set():
                    break
                yield notification_of(notification)
        except ews.ErrorMissedNotificationEvents as exc:
            raise MissedEventsError(
                f"Exchange lost notifications for {self._where.mailbox}'s group: {exc}"
            ) from exc
        except _LOST as exc:
            raise SubscriptionsLostError(
                f"subscriptions of {self._where.mailbox}'s group are gone: {exc}"
            ) from exc
        except ews.EWSError as exc:
            if isinstance(exc, ews.TransportError) and not self._aborted.is_set():
                raise StreamDroppedError(
                    f"the connection of {self._where.mailbox}'s group broke: {exc}"
                ) from exc
            domain = translate(exc, self._where)
            if domain is None or self._aborted.is_set():
                raise StreamDroppedError(
                    f"the connection of {self._where.mailbox}'s group broke: {exc}"
                ) from exc
            raise domain from exc
        except _BROKEN as exc:
            raise StreamDroppedError(
                f"the connection of {self._where.mailbox}'s group broke: {type(exc).__name__}: {exc}"
            ) from exc
        finally:
            with contextlib.suppress(Exception):
                service.stop_streaming()
        if self._aborted.is_set() or service.connection_status != GetStreamingEvents.CLOSED:
            raise StreamDroppedError(
                f"the connection of {self._where.mailbox}'s group ended without being closed"
            )

    def abort(self) -> None:
        """Hang up from any thread: shutting the socket down wakes the reader blocked on it (closing would not)."""
        self._aborted.set()
        response = self._service.response
        if response is None:
            return
        with contextlib.suppress(Exception):
            connection = response.raw.connection
            if connection is not None and connection.sock is not None:
                connection.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(Exception):
            response.close()


class EwsStreamingExchange:
    """``StreamingExchange`` on one integration's Exchange, with the credentials from its secret."""

    def __init__(
        self,
        connection: ExchangeConnection,
        secret: dict[str, str],
        *,
        accounts: AccountCache,
        sessions: int = 8,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self.connection = connection
        self._secret = dict(secret)
        self._accounts = accounts
        self._timeout = timeout
        # Each open stream holds one pooled session for its whole life; subscribing needs more beside them.
        self._sessions = sessions
        _, self._who = build_credentials(connection, self._secret)
        install_tls_adapter()
        if not connection.verify_tls:
            SelectiveVerifyHTTPAdapter.skip_verification_for(connection.endpoint)

    def _where(self, mailbox: str) -> Where:
        return Where(
            mailbox=mailbox,
            account=self._who,
            endpoint=self.connection.endpoint,
            secret_name=self.connection.secret_name,
            access_type=self.connection.access_type,
        )

    def _account(self, mailbox: str) -> Any:
        account = self._accounts.account(self.connection, self._secret, mailbox, self._timeout)
        protocol = account.protocol
        if protocol.max_connections < self._sessions:
            protocol.max_connections = self._sessions
        return account

    def subscribe(self, mailbox: str, *, anchor: str, cookie: str | None) -> Subscribed:
        """Subscribe the mailbox's calendar (one Subscribe, routed to the group's back-end)."""
        with translated(self._where(mailbox)):
            affinity = _Affinity(checked_mailbox(anchor), cookie)
            account = self._account(mailbox)
            service = _GroupSubscribe(account=account, affinity=affinity)
            subscription_id = service.get(folders=[calendar_of(account, mailbox)], event_types=EVENT_TYPES)
        return Subscribed(str(subscription_id), affinity.cookie)

    def open(
        self, subscription_ids: list[str], *, anchor: str, cookie: str | None, minutes: int
    ) -> EwsEventStream:
        """A streaming connection impersonating the anchor; nothing is sent until it is iterated."""
        if not 1 <= minutes <= 30:
            raise ValueError("a streaming connection lasts 1 to 30 minutes")
        with translated(self._where(anchor)):
            account = self._account(anchor)
        service = _GroupStreamingEvents(account=account, affinity=_Affinity(anchor, cookie))
        return EwsEventStream(service, list(subscription_ids), minutes, self._where(anchor))

    def unsubscribe(self, mailbox: str, subscription_id: str, *, anchor: str, cookie: str | None) -> None:
        """End a subscription; one Exchange no longer knows counts as ended."""
        with translated(self._where(mailbox)):
            account = self._account(mailbox)
            checked_mailbox(anchor)
            with contextlib.suppress(*_LOST):
                _GroupUnsubscribe(account=account, affinity=_Affinity(anchor, cookie)).get(
                    subscription_id=subscription_id
                )
