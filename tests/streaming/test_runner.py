"""The streaming runner against the EWS emulator over real HTTP, sending to an SQS FIFO queue on moto: notifications
become inbound messages, stream faults become resyncs, overflow mailboxes go on the timer, mappings are re-read,
and a stop leaves nothing open."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest

from calsync.adapters.aws.queues import inbound_group as group_of
from calsync.adapters.ews.connection import AccountCache
from calsync.adapters.ews.streaming import EwsStreamingExchange
from calsync.domain import AccessType, ExchangeAuth, ExchangeConnection, PermanentError
from calsync.domain.messages import InboundMessage, NotifiedItem
from calsync.streaming.planner import MailboxRef
from calsync.streaming.runner import RunnerSettings, StreamingRunner
from emulators.ews.settings import EmulatorSettings
from emulators.ews.testing import EwsEmulator

PASSWORD = "pass-for-tests"
SERVICE = "svc@bank.test"
INTEGRATION = "int-1"


@pytest.fixture(scope="module")
def ews_server() -> Iterator[EwsEmulator]:
    with EwsEmulator(EmulatorSettings()) as emulator:
        yield emulator


@pytest.fixture
def ews(ews_server: EwsEmulator) -> Iterator[EwsEmulator]:
    ews_server.reset()
    ews_server.control("POST", "accounts", {"address": SERVICE, "password": PASSWORD}, expect=201)
    ews_server.control("POST", "impersonation", {"service_account": SERVICE, "mailboxes": ["*"]})
    ews_server.control("POST", "config", {"heartbeat_seconds": 0.2})
    yield ews_server
    ews_server.control("DELETE", "faults")
    defaults = EmulatorSettings()
    ews_server.control(
        "POST",
        "config",
        {
            "heartbeat_seconds": defaults.heartbeat_seconds,
            "max_streaming_connections": defaults.max_streaming_connections,
        },
    )


@pytest.fixture
def queue() -> Queue:
    return Queue()


@dataclass
class Message:
    integration: str
    mailbox: str
    reason: str
    group: str
    sent_at: float  # seconds since the epoch
    notified: tuple[NotifiedItem, ...] | None = None


@dataclass
class Queue:
    """``InboundNotifier`` that keeps what was sent, with when (the SQS adapter has its own test on moto)."""

    seen: list[Message] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, wakes: list[InboundMessage]) -> None:
        with self.lock:
            self.seen.extend(
                Message(w.integration_id, w.mailbox, w.reason.value, group_of(w), time.time(), w.notified)
                for w in wakes
            )

    def messages(self) -> list[Message]:
        with self.lock:
            return list(self.seen)

    def clear(self) -> None:
        with self.lock:
            self.seen.clear()

    def wait_for(self, predicate: Callable[[Message], bool], timeout: float = 5.0) -> Message:
        deadline = time.monotonic() + timeout
        while True:
            for message in self.messages():
                if predicate(message):
                    return message
            assert time.monotonic() < deadline, (
                f"no such message; last ones: {[(m.mailbox, m.reason) for m in self.seen][-20:]}"
            )
            time.sleep(0.01)


class Directory:
    def __init__(self, mailboxes: list[str]) -> None:
        self.refs = [MailboxRef(INTEGRATION, m) for m in mailboxes]

    def mailboxes(self) -> list[MailboxRef]:
        return list(self.refs)


@dataclass
class State:
    heartbeats: list[tuple[str, int]] = field(default_factory=list)
    modes: dict[str, tuple[str, str]] = field(default_factory=dict)

    def heartbeat(self, task_id: str, at: datetime, mailboxes: int) -> None:
        self.heartbeats.append((task_id, mailboxes))

    def record_mailbox(self, integration_id: str, mailbox: str, mode: str, detail: str, at: datetime) -> None:
        self.modes[mailbox] = (mode, detail)


class Task:
    """A runner in a thread, wired to the emulator and the queue."""

    def __init__(self, ews: EwsEmulator, queue: Queue, mailboxes: list[str], **settings: Any) -> None:
        for mailbox in mailboxes:
            ews.control("POST", "accounts", {"address": mailbox, "password": PASSWORD}, expect=201)
        connection = ExchangeConnection(
            endpoint=ews.ews_url,
            secret_name="exchange",
            auth=ExchangeAuth.BASIC,
            access_type=AccessType.IMPERSONATION,
        )
        exchange = EwsStreamingExchange(
            connection, {"username": SERVICE, "password": PASSWORD}, accounts=AccountCache(), sessions=12
        )
        self.directory = Directory(mailboxes)
        self.state = State()
        options: dict[str, Any] = {
            "coalesce_seconds": 0.2,
            "retry_seconds": 0.1,
            "refresh_seconds": 60,
            "heartbeat_seconds": 0.5,
            "timed_interval_seconds": 60,
            **settings,
        }
        self.runner = StreamingRunner(
            RunnerSettings(task_id="task-1", **options),
            directory=self.directory,
            exchange_for=lambda _: exchange,
            notifier=queue,
            state=self.state,
        )
        self.thread = threading.Thread(target=self.runner.run, daemon=True)

    def __enter__(self) -> Task:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.runner.stop()
        self.thread.join(10)


def stats(ews: EwsEmulator) -> dict[str, Any]:
    return ews.control("GET", "stats")  # type: ignore[no-any-return]


def eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def streaming(ews: EwsEmulator, connections: int = 1) -> Callable[[], bool]:
    return lambda: stats(ews)["streaming_connections"] == connections


def outlook_change(ews: EwsEmulator, mailbox: str, subject: str = "Meeting") -> float:
    """A meeting created as the mailbox owner would in Outlook; returns when it was asked for (a message sent after
    that and for this mailbox wakes a sync that sees it)."""
    asked_at = time.time()
    ews.control(
        "POST",
        f"mailboxes/{mailbox}/items",
        {"subject": subject, "start": "2025-09-01T09:00:00Z", "end": "2025-09-01T10:00:00Z"},
    )
    return asked_at


ALICE, BOB = "alice@bank.test", "bob@bank.test"


def test_a_change_in_outlook_reaches_the_inbound_queue_within_a_second(
    ews: EwsEmulator, queue: Queue
) -> None:
    with Task(ews, queue, [ALICE, BOB]) as task:
        # A (re)start resyncs every mailbox: anything may have happened while nobody listened.
        for mailbox in (ALICE, BOB):
            queue.wait_for(lambda m, mb=mailbox: m.mailbox == mb and m.reason == "start")
        eventually(streaming(ews))
        time.sleep(0.3)  # past the coalescing interval of the start message
        queue.clear()

        made_at = outlook_change(ews, ALICE)
        message = queue.wait_for(lambda m: m.mailbox == ALICE)
        assert time.time() - made_at < 1.0
        assert (message.integration, message.reason, message.group) == (
            INTEGRATION,
            "notification",
            f"{INTEGRATION}/{ALICE}",
        )
        time.sleep(0.3)
        assert [m.mailbox for m in queue.messages()] == [ALICE]  # bob's calendar did not change
        assert task.state.modes[ALICE][0] == "streaming"
    # The connection and the unsubscribes came back with the affinity cookie Exchange set on the first Subscribe.
    assert set(stats(ews)["affinity_cookies"]) == {"matched"}


def test_a_notified_item_travels_with_its_change_key_and_a_deletion_names_nothing(
    ews: EwsEmulator, queue: Queue
) -> None:
    with Task(ews, queue, [ALICE]):
        queue.wait_for(lambda m: m.reason == "start")
        eventually(streaming(ews))
        time.sleep(0.3)
        queue.clear()
        item = ews.control(
            "POST",
            f"mailboxes/{ALICE}/items",
            {"subject": "Meeting", "start": "2025-09-01T09:00:00Z", "end": "2025-09-01T10:00:00Z"},
        )
        created = queue.wait_for(lambda m: m.mailbox == ALICE)
        # What Exchange sends in a CreatedEvent: the item's id and its change key at that moment.
        assert created.notified == (NotifiedItem(item["id"], item["change_key"]),)
        time.sleep(0.3)
        queue.clear()
        ews.control("DELETE", f"mailboxes/{ALICE}/items/{item['id']}")
        deleted = queue.wait_for(lambda m: m.mailbox == ALICE)
        assert deleted.notified is None  # a deletion: the mailbox must be read


def test_a_burst_of_changes_is_coalesced_but_its_end_is_never_dropped(ews: EwsEmulator, queue: Queue) -> None:
    with Task(ews, queue, [ALICE], coalesce_seconds=0.5):
        queue.wait_for(lambda m: m.reason == "start")
        eventually(streaming(ews))
        time.sleep(0.6)
        queue.clear()
        for n in range(10):
            last = outlook_change(ews, ALICE, f"Burst {n}")
        queue.wait_for(lambda m: m.sent_at >= last, timeout=3)
        time.sleep(0.6)
    assert 1 <= len(queue.messages()) <= 3


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("drop_stream", "dropped"),
        ("expire_subscriptions", "resubscribed"),
        ("missed_events", "missed_events"),
    ],
)
def test_each_stream_fault_still_gets_every_change_synced(
    ews: EwsEmulator, queue: Queue, fault: str, reason: str
) -> None:
    with Task(ews, queue, [ALICE, BOB]):
        queue.wait_for(lambda m: m.mailbox == ALICE and m.reason == "start")
        eventually(streaming(ews))

        ews.control("POST", "faults", {"kind": fault, "mailbox": ALICE, "count": 1}, expect=201)
        during = outlook_change(ews, ALICE, "During the fault")

        # The mailbox is resynced after the fault, so the change made during it cannot be missed...
        queue.wait_for(lambda m: m.mailbox == ALICE and m.reason == reason)
        queue.wait_for(lambda m: m.mailbox == ALICE and m.sent_at >= during)
        # ...and streaming carries on: a later change arrives as a notification.
        eventually(streaming(ews))
        after = outlook_change(ews, ALICE, "After the fault")
        queue.wait_for(lambda m: m.mailbox == ALICE and m.reason == "notification" and m.sent_at >= after)
        assert stats(ews)["subscriptions_by_mailbox"] == {ALICE: 1, BOB: 1}  # recreated ones replaced the old


def test_450_mailboxes_with_a_limit_of_2_connections(ews: EwsEmulator, queue: Queue) -> None:
    mailboxes = [f"adviser{n:03d}@bank.test" for n in range(450)]
    ews.control("POST", "config", {"max_streaming_connections": 2})
    with Task(ews, queue, mailboxes, connection_limit=2, timed_interval_seconds=0.5) as task:
        eventually(
            lambda: stats(ews)["subscriptions"] == 400 and stats(ews)["streaming_connections"] == 2, 20
        )
        sizes = ews.call(
            lambda: sorted(len(c.subscriptions) for c in ews.emulator.notifications.connections if not c.lost)
        )
        assert sizes == [200, 200]
        # Both count against the service account's limit, whichever mailbox each is anchored on.
        assert stats(ews)["streaming_connections_by_account"] == {SERVICE: 2}
        timed = sorted(m for m, (mode, _) in task.state.modes.items() if mode == "timed")
        assert len(timed) == 50 and "timed sync every 0.5 s" in task.state.modes[timed[0]][1]
        assert sum(1 for mode, _ in task.state.modes.values() if mode == "streaming") == 400

        # A timed mailbox's change is still delivered, by the timer.
        made_at = outlook_change(ews, timed[0])
        queue.wait_for(lambda m: m.mailbox == timed[0] and m.reason == "timer" and m.sent_at >= made_at, 3)
        # A streaming one's by its notification.
        streamed = next(m for m, (mode, _) in task.state.modes.items() if mode == "streaming")
        made_at = outlook_change(ews, streamed)
        queue.wait_for(
            lambda m: m.mailbox == streamed and m.reason == "notification" and m.sent_at >= made_at
        )


def test_mappings_added_and_removed_while_running(ews: EwsEmulator, queue: Queue) -> None:
    carol = "carol@bank.test"
    with Task(ews, queue, [ALICE, BOB]) as task:
        eventually(lambda: stats(ews)["subscriptions"] == 2 and stats(ews)["streaming_connections"] == 1)
        ews.control("POST", "accounts", {"address": carol, "password": PASSWORD}, expect=201)
        task.directory.refs = [MailboxRef(INTEGRATION, m) for m in (ALICE, carol)]
        task.runner.refresh_soon()

        queue.wait_for(lambda m: m.mailbox == carol and m.reason == "subscribed")
        eventually(
            lambda: stats(ews)["subscriptions_by_mailbox"] == {ALICE: 1, carol: 1} and streaming(ews)()
        )
        made_at = outlook_change(ews, carol)
        queue.wait_for(lambda m: m.mailbox == carol and m.reason == "notification" and m.sent_at >= made_at)
        made_at = outlook_change(ews, BOB)  # no longer mapped: nobody is woken for it
        time.sleep(0.3)
        assert all(m.mailbox != BOB for m in queue.messages() if m.sent_at >= made_at)


def test_stop_ends_subscriptions_and_connections_and_beats_a_last_time(
    ews: EwsEmulator, queue: Queue
) -> None:
    task = Task(ews, queue, [ALICE, BOB]).__enter__()
    eventually(lambda: stats(ews)["subscriptions"] == 2 and stats(ews)["streaming_connections"] == 1)
    assert ("task-1", 2) in task.state.heartbeats

    started = time.monotonic()
    task.runner.stop()
    task.thread.join(5)
    assert not task.thread.is_alive() and time.monotonic() - started < 3
    assert (stats(ews)["streaming_connections"], stats(ews)["subscriptions"]) == (0, 0)
    assert task.state.heartbeats[-1] == ("task-1", 0)


def test_a_mailbox_that_is_no_address_is_never_subscribed_or_used_as_an_anchor(ews: EwsEmulator) -> None:
    ews.control("POST", "accounts", {"address": "alice@bank.test", "password": PASSWORD}, expect=201)
    connection = ExchangeConnection(endpoint=ews.ews_url, secret_name="exchange")
    exchange = EwsStreamingExchange(
        connection, {"username": SERVICE, "password": PASSWORD}, accounts=AccountCache()
    )
    before = stats(ews)
    hostile = "alice@bank.test\x00"
    with pytest.raises(
        PermanentError, match=r"'alice@bank\.test\\x00' is not a valid address.*fix the mapping"
    ):
        exchange.subscribe(hostile, anchor="alice@bank.test", cookie=None)
    with pytest.raises(PermanentError, match="fix the mapping"):
        exchange.subscribe("alice@bank.test", anchor=hostile, cookie=None)  # X-AnchorMailbox
    with pytest.raises(PermanentError, match="fix the mapping"):
        exchange.open(["subscription"], anchor=hostile, cookie=None, minutes=1)
    after = stats(ews)
    assert (after["operations"], after["http_statuses"]) == (before["operations"], before["http_statuses"])
    # A valid mailbox is subscribed as before.
    assert exchange.subscribe("alice@bank.test", anchor="alice@bank.test", cookie=None).subscription_id
