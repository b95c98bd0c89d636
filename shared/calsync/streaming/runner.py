"""The streaming task's runtime: one thread per connection group holding its subscriptions and its streaming
connection, and a coordinator that re-plans from the mappings, coalesces wakes into inbound queue messages, runs the
timer for mailboxes beyond the connections allowed, and writes the heartbeat and each mailbox's state.

Nothing may be missed: a notification says *which* mailbox to sync (and, when that is all that happened, which
items were created or modified, so that inbound can tell our own writes coming back), and whenever notifications
may have been lost (a (re)start, a new or recreated subscription, ``ErrorMissedNotificationEvents``, a connection that broke or that
we cut to add mailboxes) every mailbox concerned is woken anyway; the inbound function reads the mailbox's changes
since its stored cursor, so an extra wake costs one ``SyncFolderItems`` and a missing one would lose a change.
A resync is asked for only *after* the new subscription exists, so a change is either before it (the resync sees it)
or after it (a notification follows).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from calsync.domain import CalsyncError, PermanentError, RetryableError
from calsync.domain.inbound import WatchMode
from calsync.domain.messages import MAX_NOTIFIED_ITEMS, InboundMessage, NotifiedItem, WakeReason
from calsync.streaming.planner import (
    MAX_GROUP_SIZE,
    ConnectionGroup,
    MailboxRef,
    Shard,
    StreamingPlan,
    connection_budget,
    plan_streaming,
)
from calsync.streaming.ports import (
    EventStream,
    InboundNotifier,
    MailboxDirectory,
    MissedEventsError,
    StreamDroppedError,
    StreamingExchange,
    StreamingStateStore,
    SubscriptionsLostError,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunnerSettings:
    """How the task runs; every interval is configurable so that tests can run it fast."""

    task_id: str
    shard: Shard = field(default_factory=Shard)
    connection_limit: int = 10  # hanging connections per Exchange account (EXO, 2016, 2019: 10; 2013: 3)
    group_size: int = MAX_GROUP_SIZE
    # Asked of Exchange (1 to 30); it closes the connection then and we reopen it
    connection_minutes: int = 29
    refresh_seconds: float = 60.0  # how often the mappings are re-read
    heartbeat_seconds: float = 30.0
    timed_interval_seconds: float = 300.0  # timed sync: one wake per mailbox this often
    coalesce_seconds: float = 1.0  # at most one inbound message per mailbox this often
    retry_seconds: float = 2.0  # first wait after a failed connection or subscription (doubles, up to 60 s)
    stop_grace_seconds: float = 10.0


class Coalescer:
    """At most one wake per mailbox per interval. A wake inside the interval is held until it ends, never dropped,
    so the last change of a burst is always followed by a sync.

    The items notified meanwhile are held with it: a wake only carries them when every wake it stands for carried
    them (one that did not, a resync for instance, makes it a plain "sync"), and never more than
    ``MAX_NOTIFIED_ITEMS``."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._held: dict[MailboxRef, WakeReason] = {}
        self._notified: dict[MailboxRef, dict[NotifiedItem, None] | None] = {}
        self._last: dict[MailboxRef, float] = {}
        self._lock = threading.Lock()

    def add(
        self, ref: MailboxRef, reason: WakeReason, notified: tuple[NotifiedItem, ...] | None = None
    ) -> None:
        with self._lock:
            first = ref not in self._held
            # A resync reason says more in the logs than "notification"; the sync itself is the same.
            if self._held.get(ref, WakeReason.NOTIFICATION) is WakeReason.NOTIFICATION:
                self._held[ref] = reason
            held = self._notified.get(ref) if not first else {}
            if held is None or notified is None or len(held) + len(notified) > MAX_NOTIFIED_ITEMS:
                self._notified[ref] = None
            else:
                held.update(dict.fromkeys(notified))
                self._notified[ref] = held

    def take(self, now: float, everything: bool = False) -> list[InboundMessage]:
        """The wakes due at ``now`` (all held ones with ``everything``), marked as sent."""
        with self._lock:
            due = [
                ref
                for ref in self._held
                if everything or now - self._last.get(ref, -math.inf) >= self._interval
            ]
            wakes = [
                InboundMessage(
                    ref.integration_id, ref.mailbox, self._held.pop(ref), _items(self._notified.pop(ref))
                )
                for ref in due
            ]
            for ref in due:
                self._last[ref] = now
            if len(self._last) > 2 * len(due) + 1024:
                self._last = {r: t for r, t in self._last.items() if now - t < self._interval}
            return wakes

    def put_back(self, wakes: list[InboundMessage]) -> None:
        """Hold wakes again whose sending failed."""
        for wake in wakes:
            self.add(MailboxRef(wake.integration_id, wake.mailbox), wake.reason, wake.notified)

    def next_due(self, now: float) -> float | None:
        with self._lock:
            if not self._held:
                return None
            return min(self._last.get(ref, -math.inf) + self._interval for ref in self._held)


def _items(held: dict[NotifiedItem, None] | None) -> tuple[NotifiedItem, ...] | None:
    return tuple(held) if held else None


class _GroupWorker:
    """One connection group: its subscriptions and its streaming connection, in a thread of its own (exchangelib's
    streaming read blocks)."""

    def __init__(
        self,
        runner: StreamingRunner,
        group: ConnectionGroup,
        exchange: StreamingExchange,
        first_reason: WakeReason,
    ) -> None:
        self.group = group
        self._runner = runner
        self._exchange = exchange
        self._settings = runner.settings
        self._lock = threading.Lock()
        self._members = set(group.mailboxes)
        self._resync: dict[str, WakeReason] = dict.fromkeys(group.mailboxes, first_reason)
        self._subscriptions: dict[str, str] = {}  # mailbox → subscription id
        self._mailbox_of: dict[str, str] = {}  # subscription id → mailbox
        self._cookie: str | None = None
        self._stream: EventStream | None = None
        self._failed_until: dict[str, float] = {}  # mailboxes Exchange refused to subscribe, until when
        self._failures = 0
        self._stopping = threading.Event()
        self._reopen = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"stream:{group.anchor}", daemon=True)

    @property
    def anchor(self) -> str:
        return self.group.anchor

    def _ref(self, mailbox: str) -> MailboxRef:
        return MailboxRef(self.group.integration_id, mailbox)

    # ---- called by the coordinator ----

    def start(self) -> None:
        self.thread.start()

    def update(self, group: ConnectionGroup) -> None:
        """New membership. A removed mailbox is unsubscribed now (Exchange takes it off the open connection); an
        added one needs its subscription on the connection, so the connection is reopened."""
        with self._lock:
            added = set(group.mailboxes) - self._members
            removed = {
                m: self._subscriptions.pop(m)
                for m in self._members - set(group.mailboxes)
                if m in self._subscriptions
            }
            self._members = set(group.mailboxes)
            self.group = group
            for mailbox in added:
                self._resync.setdefault(mailbox, WakeReason.SUBSCRIBED)
            stream = self._stream
        for mailbox, subscription_id in removed.items():
            self._unsubscribe(mailbox, subscription_id)
        if added:
            self._reopen.set()
            if stream is not None:
                stream.abort()

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            stream = self._stream
        if stream is not None:
            stream.abort()

    # ---- the thread ----

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._serve()
                self._failures = 0
            except (SubscriptionsLostError, MissedEventsError) as exc:
                logger.warning("recreating subscriptions of group %s: %s", self.anchor, exc)
                self._forget_subscriptions(
                    WakeReason.MISSED_EVENTS
                    if isinstance(exc, MissedEventsError)
                    else WakeReason.RESUBSCRIBED
                )
            except StreamDroppedError as exc:
                if self._stopping.is_set():
                    break
                reopened = self._reopen.is_set()
                if not reopened:
                    logger.warning("connection of group %s dropped: %s", self.anchor, exc)
                # Notifications in flight on the old connection may be lost: sync every mailbox it carried.
                for mailbox in self._subscribed():
                    self._runner.wake(
                        self._ref(mailbox), WakeReason.REOPENED if reopened else WakeReason.DROPPED
                    )
                if not reopened:
                    self._pause(None)
            except RetryableError as exc:
                logger.warning("group %s waits to reconnect: %s", self.anchor, exc)
                self._pause(exc.delay_seconds)
            except PermanentError as exc:
                logger.error("group %s cannot stream: %s", self.anchor, exc)
                for mailbox in self.group.mailboxes:
                    self._runner.record(self._ref(mailbox), WatchMode.ERROR, str(exc))
                self._pause(self._settings.refresh_seconds)
            except Exception:
                logger.exception("group %s failed unexpectedly", self.anchor)
                self._pause(None)
            finally:
                with self._lock:
                    self._stream = None
        self._unsubscribe_all()

    def _serve(self) -> None:
        """Subscribe what is missing, then hold one connection until Exchange closes it (time up) or it breaks."""
        ids = self._prepare()
        if not ids:
            self._pause(None)
            return
        self._reopen.clear()
        stream = self._exchange.open(
            ids, anchor=self.anchor, cookie=self._cookie, minutes=self._settings.connection_minutes
        )
        with self._lock:
            self._stream = stream
        if self._stopping.is_set() or self._reopen.is_set():
            return  # nothing was sent yet: stop, or subscribe the mailboxes just added first
        detail = f"streaming: {len(ids)} subscription(s) on the connection anchored on {self.anchor}"
        for mailbox in self._subscribed():
            self._runner.record(self._ref(mailbox), WatchMode.STREAMING, detail)
        for notification in stream:
            self._failures = 0
            notified = self._mailbox_of.get(notification.subscription_id)
            if notified is not None and notified in self._members:
                items = notification.items if notification.complete and notification.items else None
                self._runner.wake(self._ref(notified), WakeReason.NOTIFICATION, items)

    def _prepare(self) -> list[str]:
        """Unsubscribe mailboxes no longer in the group, subscribe the missing ones (the anchor first: its Subscribe
        gets the group's affinity cookie) and wake each new subscription's mailbox for a resync."""
        with self._lock:
            members = set(self._members)
            gone = {m: self._subscriptions.pop(m) for m in list(self._subscriptions) if m not in members}
            missing = sorted(members - set(self._subscriptions), key=lambda m: (m != self.anchor, m))
        for mailbox, subscription_id in gone.items():
            self._unsubscribe(mailbox, subscription_id)
        now = time.monotonic()
        for mailbox in missing:
            if self._stopping.is_set():
                break
            if self._failed_until.get(mailbox, 0.0) > now:
                continue
            try:
                subscribed = self._exchange.subscribe(mailbox, anchor=self.anchor, cookie=self._cookie)
            except PermanentError as exc:
                # This mailbox only (unknown, or access not granted): the others carry on; tried again later.
                self._failed_until[mailbox] = now + self._settings.refresh_seconds
                self._runner.record(self._ref(mailbox), WatchMode.ERROR, str(exc))
                continue
            self._failed_until.pop(mailbox, None)
            self._cookie = subscribed.cookie or self._cookie
            with self._lock:
                self._subscriptions[mailbox] = subscribed.subscription_id
                reason = self._resync.pop(mailbox, WakeReason.SUBSCRIBED)
            self._runner.wake(self._ref(mailbox), reason)
        with self._lock:
            self._mailbox_of = {sub: mailbox for mailbox, sub in self._subscriptions.items()}
            return list(self._subscriptions.values())

    def _subscribed(self) -> list[str]:
        with self._lock:
            return list(self._subscriptions)

    def _forget_subscriptions(self, reason: WakeReason) -> None:
        """Drop every subscription of the group (those still alive are ended); each is recreated, then resynced."""
        with self._lock:
            subscriptions, self._subscriptions = self._subscriptions, {}
            for mailbox in self._members:
                self._resync[mailbox] = reason
        for mailbox, subscription_id in subscriptions.items():
            self._unsubscribe(mailbox, subscription_id)

    def _unsubscribe(self, mailbox: str, subscription_id: str) -> None:
        try:
            self._exchange.unsubscribe(mailbox, subscription_id, anchor=self.anchor, cookie=self._cookie)
        except CalsyncError as exc:  # it expires by itself 30 minutes after its last connection
            logger.info("could not unsubscribe %s: %s", mailbox, exc)

    def _unsubscribe_all(self) -> None:
        with self._lock:
            subscriptions, self._subscriptions = self._subscriptions, {}
        for mailbox, subscription_id in subscriptions.items():
            self._unsubscribe(mailbox, subscription_id)

    def _pause(self, at_least: float | None) -> None:
        """Wait before trying again: doubling from ``retry_seconds`` up to a minute, or longer when asked."""
        self._failures += 1
        delay = min(self._settings.retry_seconds * 2 ** (self._failures - 1), 60.0)
        self._stopping.wait(max(delay, at_least or 0.0))


class StreamingRunner:
    """Keeps this task's share of the mapped mailboxes watched until ``stop()``."""

    def __init__(
        self,
        settings: RunnerSettings,
        *,
        directory: MailboxDirectory,
        exchange_for: Callable[[str], StreamingExchange],
        notifier: InboundNotifier,
        state: StreamingStateStore,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self._directory = directory
        self._exchange_for = exchange_for
        self._notifier = notifier
        self._state = state
        self._now = now
        self._plan: StreamingPlan | None = None
        self._workers: dict[tuple[str, str], _GroupWorker] = {}
        self._retired: list[_GroupWorker] = []
        self._coalescer = Coalescer(settings.coalesce_seconds)
        self._recorded: dict[MailboxRef, tuple[str, str]] = {}
        self._record_lock = threading.Lock()
        self._stop = threading.Event()
        self._wakeup = threading.Event()
        self._refresh_now = threading.Event()

    @property
    def plan(self) -> StreamingPlan:
        return self._plan or StreamingPlan()

    # ---- used by the workers (any thread) ----

    def wake(
        self, ref: MailboxRef, reason: WakeReason, notified: tuple[NotifiedItem, ...] | None = None
    ) -> None:
        """Ask for an inbound sync of ``ref`` (coalesced); ``notified``: the items a notification named, if that is
        all it said."""
        self._coalescer.add(ref, reason, notified)
        self._wakeup.set()

    def record(self, ref: MailboxRef, mode: WatchMode, detail: str) -> None:
        """Record how a mailbox is watched, when that changed."""
        with self._record_lock:
            if self._recorded.get(ref) == (mode.value, detail):
                return
            self._recorded[ref] = (mode.value, detail)
        try:
            self._state.record_mailbox(ref.integration_id, ref.mailbox, mode, detail, self._now())
        except Exception:  # the state is for operators; watching the mailbox matters more
            logger.exception("could not record the state of %s", ref.mailbox)
            with self._record_lock:
                self._recorded.pop(ref, None)

    # ---- control ----

    def stop(self) -> None:
        """Stop soon (safe from a signal handler and from any thread)."""
        self._stop.set()
        self._wakeup.set()

    def refresh_soon(self) -> None:
        """Re-read the mappings now rather than at the next interval."""
        self._refresh_now.set()
        self._wakeup.set()

    def run(self) -> None:
        """Watch until ``stop()``; then end every subscription and connection, send what is held, beat a last time."""
        settings = self.settings
        clock = time.monotonic
        next_refresh = next_heartbeat = clock()
        next_timer = clock() + settings.timed_interval_seconds
        try:
            while not self._stop.is_set():
                now = clock()
                if now >= next_refresh or self._refresh_now.is_set():
                    self._refresh_now.clear()
                    self.refresh()
                    next_refresh = clock() + settings.refresh_seconds
                if now >= next_timer:
                    for ref in self.plan.timed:
                        self.wake(ref, WakeReason.TIMER)
                    next_timer = now + settings.timed_interval_seconds
                self._flush(clock())
                if now >= next_heartbeat:
                    self._heartbeat(len(self.plan.owned()))
                    next_heartbeat = now + settings.heartbeat_seconds
                due = self._coalescer.next_due(clock())
                deadline = min(next_refresh, next_timer, next_heartbeat, due if due is not None else math.inf)
                self._wakeup.wait(max(0.0, min(deadline - clock(), 1.0)))
                self._wakeup.clear()
        finally:
            self._shutdown()

    def refresh(self) -> None:
        """Re-read the mappings and re-plan: start, update and stop groups; put overflow on the timer."""
        try:
            refs = self._directory.mailboxes()
        except Exception:
            logger.exception("could not read the mappings; keeping the current plan")
            return
        first = self._plan is None
        settings = self.settings
        plan = plan_streaming(
            refs,
            connection_limit=settings.connection_limit,
            shard=settings.shard,
            group_size=settings.group_size,
            previous=self._plan,
        )
        wanted = {group.key: group for group in plan.groups}
        for key in [k for k in self._workers if k not in wanted]:
            worker = self._workers.pop(key)
            worker.stop()
            self._retired.append(worker)
        self._retired = [w for w in self._retired if w.thread.is_alive()]
        for key, group in wanted.items():
            if key in self._workers:
                self._workers[key].update(group)
                continue
            try:
                exchange = self._exchange_for(group.integration_id)
            except CalsyncError as exc:  # e.g. its secret cannot be read: tried again at the next refresh
                for ref in group.refs():
                    self.record(ref, WatchMode.ERROR, str(exc))
                continue
            worker = _GroupWorker(self, group, exchange, WakeReason.START if first else WakeReason.SUBSCRIBED)
            self._workers[key] = worker
            worker.start()
        earlier_timed = set(self._plan.timed) if self._plan else set()
        for ref in plan.timed:
            if ref not in earlier_timed:  # nobody watches it until the timer: sync it now
                self.wake(ref, WakeReason.START if first else WakeReason.TIMER)
            self.record(ref, WatchMode.TIMED, self._timed_detail())
        with self._record_lock:
            owned = plan.owned()
            for ref in [r for r in self._recorded if r not in owned]:
                del self._recorded[ref]
        self._plan = plan

    def _timed_detail(self) -> str:
        settings = self.settings
        budget = connection_budget(settings.connection_limit, settings.shard)
        return (
            f"timed sync every {settings.timed_interval_seconds:g} s: the {budget} streaming connection(s) this "
            f"task may open for this integration are full ({settings.group_size} mailboxes each)"
        )

    # ---- helpers ----

    def _flush(self, now: float, everything: bool = False) -> None:
        wakes = self._coalescer.take(now, everything)
        if not wakes:
            return
        try:
            self._notifier.send(wakes)
        except Exception:
            logger.exception("could not send %d inbound message(s); holding them", len(wakes))
            self._coalescer.put_back(wakes)
            if everything:
                raise

    def _heartbeat(self, mailboxes: int) -> None:
        try:
            self._state.heartbeat(self.settings.task_id, self._now(), mailboxes)
        except Exception:
            logger.exception("could not write the heartbeat")

    def _shutdown(self) -> None:
        workers = list(self._workers.values()) + self._retired
        for worker in workers:
            worker.stop()
        deadline = time.monotonic() + self.settings.stop_grace_seconds
        for worker in workers:
            worker.thread.join(max(0.0, deadline - time.monotonic()))
        self._workers.clear()
        self._retired.clear()
        try:
            self._flush(time.monotonic(), everything=True)
        finally:
            self._heartbeat(0)
