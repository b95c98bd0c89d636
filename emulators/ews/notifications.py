"""Subscriptions and their event fan-out: streaming connections, pull watermarks, and the stream faults.

One ``NotificationHub`` lives per Store (it is rebuilt on every reset). It listens to every write of the store, keeps
a bounded change log per mailbox (pull watermarks are positions in it), queues events on streaming subscriptions and
wakes the open streaming connections carrying them through an ``asyncio.Event`` — no polling, so a change reaches an
open stream in the same event-loop turn it is made.

https://learn.microsoft.com/en-us/exchange/client-developer/exchange-web-services/notification-subscriptions-mailbox-events-and-ews-in-exchange
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import struct
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from emulators.ews.errors import EwsError
from emulators.ews.faults import FaultRule
from emulators.ews.model import ChangeEvent, Mailbox

# The events a calendar can raise; Exchange accepts the other NotificationEventType values and never fires them here.
LOG_LIMIT = 10_000  # change-log entries kept per mailbox for pull watermarks
PENDING_LIMIT = 10_000  # undelivered events kept per streaming subscription
_WATERMARK_PREFIX = b"\x01\x00\x00\x00"
MISSED_CODE = "ErrorMissedNotificationEvents"
MISSED_MESSAGE = "Events were lost; the subscription must be recreated."  # real watermarks decode to a small header too ("AQAAA…")


def backend_of(mailbox: Mailbox) -> str:
    """The (emulated) mailbox server hosting ``mailbox``: stable for a mailbox, what the affinity cookie names."""
    digest = hashlib.sha256(mailbox.address.encode()).hexdigest()
    return f"emulated-be{int(digest[:8], 16) % 4 + 1:02d}"


def affinity_cookie(mailbox: Mailbox) -> str:
    """The X-BackEndOverrideCookie value Exchange sets for subscriptions on ``mailbox``'s server."""
    # Exchange's value is "<server fqdn>~<opaque>"; ours names the emulated backend the same way.
    return f"{backend_of(mailbox)}.emulator.invalid~1941962753"


def encode_watermark(mailbox: Mailbox, seq: int) -> str:
    """A pull watermark: a position in ``mailbox``'s change log."""
    return base64.b64encode(_WATERMARK_PREFIX + struct.pack(">II", mailbox.num, seq)).decode()


def decode_watermark(value: str) -> tuple[int, int] | None:
    """(mailbox number, sequence) of a watermark, or None when it is not one of ours."""
    try:
        raw = base64.b64decode(value.encode(), validate=True)
    except (ValueError, UnicodeEncodeError):
        return None
    if len(raw) != 12 or not raw.startswith(_WATERMARK_PREFIX):
        return None
    mailbox_num, seq = struct.unpack(">II", raw[4:])
    return mailbox_num, seq


@dataclass(eq=False)
class Subscription:
    """A streaming or pull subscription on one mailbox."""

    id: str
    kind: str  # "streaming" | "pull"
    mailbox: Mailbox
    owner: str  # the account whose budget it uses (impersonated user, else the caller)
    event_types: frozenset[str]
    folders: frozenset[str]  # folder names, or {"*"} for SubscribeToAllFolders
    timeout_minutes: int = 0  # pull only
    start_seq: int = 0  # pull: the first watermark's position
    last_activity: float = field(default_factory=time.monotonic)
    expired: bool = False
    # Undelivered events; taken off only once a write carrying them succeeded.
    pending: deque[ChangeEvent] = field(default_factory=deque)
    # Set when more than PENDING_LIMIT events waited: events were lost, every later call says so.
    overflowed: bool = False
    connection: StreamConnection | None = None
    # Pull: (watermark last asked with, sequence reached) after an answer with MoreEvents=true.
    pull_cursor: tuple[str, int] | None = None

    def wants(self, event: ChangeEvent) -> bool:
        """Whether ``event`` is one this subscription reports (same mailbox, a subscribed event type)."""
        if event.mailbox is not self.mailbox or event.kind not in self.event_types:
            return False
        # Calendar items live in their calendar folder; a move out of it is seen by that folder and Deleted Items alike.
        return (
            "*" in self.folders
            or event.folder in self.folders
            or (event.kind == "MovedEvent" and "deleteditems" in self.folders)
        )


@dataclass(eq=False)
class StreamConnection:
    """One open GetStreamingEvents response."""

    num: int
    owner: str
    subscriptions: list[Subscription]
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    lost: bool = False
    dropped: bool = False  # drop_stream: cut without a Closed envelope
    # Errors to send before closing: (code, message, subscription ids, close after?)
    errors: list[tuple[str, str, list[str], bool]] = field(default_factory=list)
    transport: Any = None

    def mailboxes(self) -> set[str]:
        return {s.mailbox.address for s in self.subscriptions}


class NotificationHub:
    """Every subscription and open streaming connection of one emulator."""

    def __init__(self, emulator: Any) -> None:
        self.emulator = emulator
        self.settings = emulator.settings
        self.subscriptions: dict[str, Subscription] = {}
        self.connections: list[StreamConnection] = []
        self.logs: dict[int, deque[ChangeEvent]] = {}
        self.log_floor: dict[int, int] = {}  # oldest sequence a watermark may still name, per mailbox
        self.drop_rules: list[FaultRule] = []  # drop_stream rules waiting for a connection to open
        self.missed_rules: list[FaultRule] = []
        self.affinity: Counter[str] = Counter()
        self._connection_nums = 0
        emulator.store.listeners.append(self.on_change)

    # ---- the store's listener ----

    def on_change(self, event: ChangeEvent) -> None:
        """Log ``event`` and queue it on every matching subscription, waking their open streams."""
        log = self.logs.setdefault(event.mailbox.num, deque())
        log.append(event)
        if len(log) > LOG_LIMIT:
            self.log_floor[event.mailbox.num] = log.popleft().seq
        for sub in self.subscriptions.values():
            if sub.kind != "streaming" or sub.expired or sub.overflowed or not sub.wants(event):
                continue
            if len(sub.pending) >= PENDING_LIMIT:
                # Never drop silently: the subscription has lost events, and its client must be told.
                sub.overflowed = True
                sub.pending.clear()
                if sub.connection is not None:
                    sub.connection.errors.append((MISSED_CODE, MISSED_MESSAGE, [sub.id], False))
                    sub.connection.wake.set()
                continue
            sub.pending.append(event)
            if sub.connection is not None:
                sub.connection.wake.set()

    # ---- subscriptions ----

    def subscribe(
        self,
        kind: str,
        mailbox: Mailbox,
        owner: str,
        event_types: set[str],
        folders: set[str],
        timeout_minutes: int = 0,
        watermark: str | None = None,
    ) -> Subscription:
        """Create a subscription; a pull one starts at ``watermark`` (validated) or now."""
        start = mailbox.seq
        if watermark is not None:
            start = self.check_watermark(mailbox, watermark, floor=None)
        # Real ids carry the backend's name and a GUID, base64-encoded; clients treat them as opaque.
        raw = backend_of(mailbox).encode() + secrets.token_bytes(16)
        sub_id = base64.b64encode(bytes([len(raw)]) + raw).decode()
        sub = Subscription(
            sub_id, kind, mailbox, owner, frozenset(event_types), frozenset(folders), timeout_minutes, start
        )
        self.subscriptions[sub_id] = sub
        return sub

    def is_expired(self, sub: Subscription, now: float | None = None) -> bool:
        """Streaming: idle (no open connection) too long; pull: no GetEvents within its Timeout."""
        if sub.expired:
            return True
        now = time.monotonic() if now is None else now
        if sub.kind == "pull":
            limit = sub.timeout_minutes * 60
        elif sub.connection is not None:
            return False
        else:
            limit = self.settings.subscription_idle_seconds
        if now - sub.last_activity > limit:
            sub.expired = True
            sub.pending.clear()
        return sub.expired

    def lookup(self, sub_id: str, owner: str) -> Subscription:
        """A live subscription of ``owner``; ErrorSubscriptionNotFound (expired streaming ones are forgotten)."""
        sub = self.subscriptions.get(sub_id)
        if sub is None or sub.owner != owner:
            raise EwsError("ErrorSubscriptionNotFound", "The specified subscription was not found.")
        if self.is_expired(sub):
            if sub.kind == "pull":
                raise EwsError("ErrorExpiredSubscription", "The subscription has expired.")
            raise EwsError("ErrorSubscriptionNotFound", "The specified subscription was not found.")
        return sub

    def unsubscribe(self, sub_id: str, owner: str) -> None:
        """End a subscription (streaming or pull); an open stream carrying it stops reporting it."""
        sub = self.subscriptions.get(sub_id)
        if sub is None or sub.owner != owner:
            raise EwsError("ErrorSubscriptionNotFound", "The specified subscription was not found.")
        del self.subscriptions[sub_id]
        connection = sub.connection
        if connection is not None:
            connection.subscriptions.remove(sub)
            sub.connection = None
            if not connection.subscriptions:
                connection.wake.set()  # nothing left to carry: the stream closes

    # ---- pull ----

    def check_watermark(self, mailbox: Mailbox, watermark: str, floor: int | None) -> int:
        """The sequence a watermark names; ErrorInvalidWatermark when it is foreign, too old or from the future."""
        decoded = decode_watermark(watermark)
        if decoded is None:
            raise EwsError("ErrorInvalidWatermark", "The watermark is invalid.")
        mailbox_num, seq = decoded
        oldest = max(self.log_floor.get(mailbox.num, 0), floor or 0)
        if mailbox_num != mailbox.num or seq > mailbox.seq or seq < oldest:
            raise EwsError("ErrorInvalidWatermark", "The watermark is invalid.")
        return seq

    def pull(
        self, sub: Subscription, watermark: str, limit: int
    ) -> tuple[str, list[tuple[ChangeEvent, str]], bool, str]:
        """(previous watermark, events after it (at most ``limit``), whether more remain, the watermark if none)."""
        seq = self.check_watermark(sub.mailbox, watermark, floor=sub.start_seq)
        sub.last_activity = time.monotonic()
        if sub.pull_cursor is not None and watermark == sub.pull_cursor[0]:
            # The same watermark again after a MoreEvents=true answer: Exchange keeps a cursor per pull subscription
            # and hands out the next batch (exchangelib's get_events() loop relies on it: it never moves its
            # watermark forward while MoreEvents is true).
            seq = sub.pull_cursor[1]
        sub.pull_cursor = None
        events: list[tuple[ChangeEvent, str]] = []
        more = False
        for event in self.logs.get(sub.mailbox.num, ()):
            if event.seq <= seq or not sub.wants(event):
                continue
            if len(events) == limit:
                more = True
                break
            events.append((event, encode_watermark(sub.mailbox, event.seq)))
        if more:
            sub.pull_cursor = (watermark, events[-1][0].seq)
        # With nothing to report, the StatusEvent's watermark moves past events this subscription filtered out.
        return (
            encode_watermark(sub.mailbox, seq),
            events,
            more,
            encode_watermark(sub.mailbox, sub.mailbox.seq),
        )

    # ---- streaming connections ----

    def open_connection(self, owner: str, subs: list[Subscription], transport: Any) -> StreamConnection:
        """Register an open stream; subscriptions already on another connection move here (Exchange's rule)."""
        self._connection_nums += 1
        connection = StreamConnection(self._connection_nums, owner, list(subs), transport=transport)
        moved: dict[int, tuple[StreamConnection, list[str]]] = {}
        for sub in subs:
            old = sub.connection
            if old is not None and old is not connection:
                old.subscriptions.remove(sub)
                moved.setdefault(old.num, (old, []))[1].append(sub.id)
            sub.connection = connection
        for old, ids in moved.values():
            old.errors.append(
                (
                    "ErrorNewEventStreamConnectionOpened",
                    "A new event stream connection has been opened for this subscription.",
                    ids,
                    not old.subscriptions,
                )
            )
            old.wake.set()
        self.connections.append(connection)
        return connection

    def close_connection(self, connection: StreamConnection) -> None:
        """Forget a finished stream; its subscriptions start their idle clock now."""
        if connection in self.connections:
            self.connections.remove(connection)
        now = time.monotonic()
        for sub in connection.subscriptions:
            if sub.connection is connection:
                sub.connection = None
                sub.last_activity = now

    def open_count(self, owner: str) -> int:
        return sum(1 for c in self.connections if c.owner == owner and not c.lost)

    def take_pending_drop(self, mailboxes: set[str]) -> bool:
        """Whether a waiting drop_stream rule applies to a connection just opened for ``mailboxes``."""
        for rule in list(self.drop_rules):
            if rule.mailbox is None or rule.mailbox in mailboxes:
                self._use(rule, self.drop_rules)
                return True
        return False

    def take_missed(self, operation: str, mailboxes: set[str]) -> bool:
        """Whether an armed missed_events rule makes this call answer ErrorMissedNotificationEvents."""
        for rule in list(self.missed_rules):
            if rule.operation in ("*", operation) and (rule.mailbox is None or rule.mailbox in mailboxes):
                self._use(rule, self.missed_rules)
                return True
        return False

    def _use(self, rule: FaultRule, rules: list[FaultRule]) -> None:
        self.emulator.faults.fired[rule.kind] += 1
        if rule.count is not None:
            rule.count -= 1
            if rule.count <= 0 and rule in rules:
                rules.remove(rule)

    # ---- control plane hooks ----

    def inject(self, rule: FaultRule) -> None:
        """Apply a stream fault now (drop_stream, expire_subscriptions) or arm it (missed_events)."""
        if rule.kind == "drop_stream":
            self._drop(rule)
        elif rule.kind == "expire_subscriptions":
            self._expire(rule)
        elif rule.kind == "missed_events":
            self._missed(rule)

    def _matching_connections(self, rule: FaultRule) -> list[StreamConnection]:
        return [
            c
            for c in self.connections
            if not c.lost and (rule.mailbox is None or rule.mailbox in c.mailboxes())
        ]

    def _drop(self, rule: FaultRule) -> None:
        targets = self._matching_connections(rule)
        if not targets:
            # Nothing open: the next connection opened for a matching mailbox is cut.
            self.drop_rules.append(rule)
            return
        for connection in targets[: rule.count] if rule.count is not None else targets:
            connection.dropped = True
            self.emulator.faults.fired[rule.kind] += 1
            if connection.transport is not None:
                connection.transport.abort()
            connection.wake.set()

    def _expire(self, rule: FaultRule) -> None:
        matched = [
            s
            for s in self.subscriptions.values()
            if not s.expired and (rule.mailbox is None or rule.mailbox == s.mailbox.address)
        ]
        if rule.count is not None:
            matched = matched[: rule.count]
        for sub in matched:
            sub.expired = True
            sub.pending.clear()
            self.emulator.faults.fired[rule.kind] += 1
            connection = sub.connection
            if connection is not None:
                connection.errors.append(
                    ("ErrorSubscriptionNotFound", "The specified subscription was not found.", [sub.id], True)
                )
                connection.wake.set()

    def _missed(self, rule: FaultRule) -> None:
        fired_on_open = False
        for connection in self._matching_connections(rule):
            if rule.count is not None and rule.count <= 0:
                break
            ids = [
                s.id
                for s in connection.subscriptions
                if rule.mailbox is None or rule.mailbox == s.mailbox.address
            ]
            connection.errors.append(
                (
                    "ErrorMissedNotificationEvents",
                    "Events were lost; the subscription must be recreated.",
                    ids,
                    True,
                )
            )
            connection.wake.set()
            fired_on_open = True
            self._use(rule, [])
        if not fired_on_open or rule.count is None or rule.count > 0:
            self.missed_rules.append(rule)

    def clear_faults(self) -> None:
        """Forget armed stream faults (DELETE /_emulator/faults)."""
        self.drop_rules.clear()
        self.missed_rules.clear()

    def close_all(self) -> None:
        """On reset: cut every open stream and forget every subscription."""
        for connection in list(self.connections):
            connection.dropped = True
            if connection.transport is not None:
                connection.transport.abort()
            connection.wake.set()
        self.connections.clear()
        self.subscriptions.clear()
        if self.on_change in self.emulator.store.listeners:
            self.emulator.store.listeners.remove(self.on_change)

    def stats(self) -> dict[str, Any]:
        """What GET /_emulator/stats shows about notifications."""
        now = time.monotonic()
        live = [s for s in self.subscriptions.values() if not self.is_expired(s, now)]
        by_mailbox: Counter[str] = Counter(s.mailbox.address for s in live)
        return {
            "streaming_connections": sum(1 for c in self.connections if not c.lost),
            "streaming_connections_by_account": dict(
                Counter(c.owner for c in self.connections if not c.lost)
            ),
            "subscriptions": len(live),
            "subscriptions_by_mailbox": dict(by_mailbox),
            "affinity_cookies": dict(self.affinity),
        }


# ---- helpers shared by the notification operations ------------------------------------------------------------------


def hub_of(ctx: Any) -> NotificationHub:
    """The running emulator's hub (the operations get it through the request context)."""
    hub = ctx.emulator.notifications if ctx.emulator is not None else None
    if hub is None:
        raise EwsError("ErrorInternalServerError", "Notifications are not available.")
    return hub


def owner_of(ctx: Any) -> str:
    """Whose subscriptions and streaming budget a request uses: the impersonated user, else the caller.

    Microsoft's advice for ErrorExceededConnectionCount is to open connections with impersonation, which charges
    the impersonated mailbox's budget instead of the service account's.
    """
    return str(ctx.impersonated or ctx.principal.name).lower()


def header(ctx: Any, name: str) -> str | None:
    """A request header, case-insensitively (the context keeps them in a plain dict)."""
    wanted = name.lower()
    for key, value in ctx.headers.items():
        if key.lower() == wanted:
            return str(value)
    return None


def sent_affinity_cookie(ctx: Any) -> str | None:
    """The affinity cookie a request carries: the X-BackEndOverrideCookie header or the cookie of that name."""
    value = header(ctx, "X-BackEndOverrideCookie")
    if value:
        return value
    for part in (header(ctx, "Cookie") or "").split(";"):
        name, _, cookie = part.strip().partition("=")
        if name == "X-BackEndOverrideCookie" and cookie:
            return cookie
    return None


def note_affinity(ctx: Any, hub: NotificationHub, subs: list[Subscription]) -> None:
    """Count whether a follow-up request came back with the affinity cookie of its subscriptions' backend.

    Real Exchange routes on it (a request landing on another backend answers ErrorSubscriptionNotFound); the
    emulator is one server, so it only records what the client sent, for tests and the stats.
    """
    sent = sent_affinity_cookie(ctx)
    if sent is None:
        hub.affinity["absent"] += 1
    elif any(sent == affinity_cookie(s.mailbox) for s in subs):
        hub.affinity["matched"] += 1
    else:
        hub.affinity["mismatched"] += 1


def check_message(emulator: Any, operation: str, message: Any) -> str | None:
    """Capture a response message element and, when validating, return its schema problems (None if valid)."""
    from lxml import etree

    from emulators.ews.schema import violations

    emulator.capture("response", operation, etree.tostring(message))
    if emulator.settings.validate_responses:
        problems = violations(message, emulator.schema)
        if problems:
            return f"EWS emulator bug: the {operation} response does not validate: {problems}"
    return None
