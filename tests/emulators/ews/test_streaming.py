"""Streaming notifications over real HTTP: exchangelib's subscribe_to_streaming / get_streaming_events, raw chunked
reads where the wire format itself is the point, limits, expiry, affinity and the stream faults."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests
from exchangelib import IMPERSONATION, Account, CalendarItem, EWSDateTime
from exchangelib.errors import (
    ErrorExceededConnectionCount,
    ErrorInvalidArgument,
    ErrorMissedNotificationEvents,
    ErrorSubscriptionNotFound,
)
from exchangelib.properties import CreatedEvent, ModifiedEvent

from emulators.ews.testing import EwsEmulator
from tests.emulators.ews.conftest import PASSWORD, TZ

ALICE = "alice@example.com"


class Consumer:
    """Reads get_streaming_events() in a thread, timestamping each notification as it arrives."""

    def __init__(self, account: Account, sub_ids: list[str], **kwargs: Any) -> None:
        self.received: queue.Queue[tuple[float, Any]] = queue.Queue()
        self.error: BaseException | None = None
        self.finished = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(account, sub_ids, kwargs), daemon=True)
        self._thread.start()

    def _run(self, account: Account, sub_ids: list[str], kwargs: dict[str, Any]) -> None:
        try:
            for notification in account.calendar.get_streaming_events(
                sub_ids, connection_timeout=1, **kwargs
            ):
                self.received.put((time.monotonic(), notification))
        except BaseException as exc:  # handed to the test
            self.error = exc
        finally:
            self.finished.set()

    def wait(self, timeout: float = 5) -> None:
        assert self.finished.wait(timeout), "the stream did not end"


def stats(ews: EwsEmulator) -> dict[str, Any]:
    return ews.control("GET", "stats")  # type: ignore[no-any-return]


def wait_for(predicate: Callable[[], bool], timeout: float = 3) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def open_streams(ews: EwsEmulator) -> int:
    return int(stats(ews)["streaming_connections"])


def raw_stream(
    ews: EwsEmulator, sub_ids: list[str], user: str = ALICE, minutes: int = 1, impersonate: str | None = None
) -> requests.Response:
    """A GetStreamingEvents request sent by hand, its chunked body left for the test to read."""
    ids = "".join(f"<t:SubscriptionId>{s}</t:SubscriptionId>" for s in sub_ids)
    impersonation = (
        f"<t:ExchangeImpersonation><t:ConnectingSID><t:PrimarySmtpAddress>{impersonate}</t:PrimarySmtpAddress>"
        "</t:ConnectingSID></t:ExchangeImpersonation>"
        if impersonate
        else ""
    )
    body = (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" '
        'xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">'
        f'<s:Header><t:RequestServerVersion Version="Exchange2016"/>{impersonation}</s:Header><s:Body>'
        f"<m:GetStreamingEvents><m:SubscriptionIds>{ids}</m:SubscriptionIds>"
        f"<m:ConnectionTimeout>{minutes}</m:ConnectionTimeout></m:GetStreamingEvents></s:Body></s:Envelope>"
    )
    return requests.post(
        ews.ews_url,
        data=body.encode(),
        auth=(user, PASSWORD),
        stream=True,
        timeout=10,
        headers={"Content-Type": "text/xml; charset=utf-8"},
    )


def another_client(ews: EwsEmulator, account_for: Callable[..., Account]) -> Account:
    """Bob, alice's delegate (Editor), working on her calendar from his own client.

    exchangelib shares one connection pool (one session by default) per credentials, and an open stream holds it:
    another client for the same credentials would queue behind the stream.
    """
    ews.add_account("bob@example.com", PASSWORD)
    ews.control("POST", "delegates", {"owner": ALICE, "delegate": "bob@example.com", "permission": "Editor"})
    return account_for(ALICE, via="bob@example.com")


def test_change_by_another_client_reaches_the_open_stream_within_a_second(
    ews: EwsEmulator, alice: Account, account_for: Callable[..., Account]
) -> None:
    sub_id = alice.calendar.subscribe_to_streaming()
    consumer = Consumer(alice, [sub_id], max_notifications_returned=1)
    wait_for(lambda: open_streams(ews) == 1)

    other = another_client(ews, account_for)
    item = CalendarItem(
        account=other,
        folder=other.calendar,
        subject="Walk-in",
        start=EWSDateTime(2025, 9, 1, 9, tzinfo=TZ),
        end=EWSDateTime(2025, 9, 1, 10, tzinfo=TZ),
    )
    item.save(send_meeting_invitations="SendToNone")
    saved_at = time.monotonic()

    arrived_at, notification = consumer.received.get(timeout=5)
    assert arrived_at - saved_at < 1.0
    [event] = notification.events
    assert isinstance(event, CreatedEvent) and event.item_id.id == item.id
    assert event.parent_folder_id.id == alice.calendar.id
    consumer.wait()
    assert consumer.error is None
    # exchangelib hung up after one notification: the server noticed and no longer counts the connection.
    wait_for(lambda: open_streams(ews) == 0)


def test_owner_edits_in_outlook_are_streamed_and_filtered_by_event_type(
    ews: EwsEmulator, alice: Account
) -> None:
    created = ews.control(
        "POST",
        f"mailboxes/{ALICE}/items",
        {"subject": "Before", "start": "2025-09-02T09:00:00Z", "end": "2025-09-02T10:00:00Z"},
    )
    sub_id = alice.calendar.subscribe_to_streaming(event_types=["ModifiedEvent"])
    # Events raised before the stream opens wait for it, as on Exchange.
    ews.control(
        "POST",
        f"mailboxes/{ALICE}/items",
        {"subject": "Not wanted", "start": "2025-09-03T09:00:00Z", "end": "2025-09-03T10:00:00Z"},
    )
    ews.control("PATCH", f"mailboxes/{ALICE}/items/{created['id']}", {"subject": "After"})

    consumer = Consumer(alice, [sub_id], max_notifications_returned=1)
    _, notification = consumer.received.get(timeout=5)
    assert [type(e) for e in notification.events] == [ModifiedEvent]
    assert notification.events[0].item_id.id == created["id"]
    consumer.wait()


def test_stream_is_chunked_unprefixed_envelopes_with_heartbeats_and_a_closed_end(
    ews: EwsEmulator, alice: Account
) -> None:
    ews.control("POST", "config", {"heartbeat_seconds": 0.1})
    sub_id = alice.calendar.subscribe_to_streaming()
    response = raw_stream(ews, [sub_id])
    assert response.status_code == 200 and response.headers["Transfer-Encoding"] == "chunked"
    chunks = response.iter_content(chunk_size=None)
    first, second = next(chunks), next(chunks)
    for chunk in (first, second):
        # ews-javascript-api finds envelopes by the literal text "<Envelope": no prefix allowed.
        assert chunk.startswith(b'<Envelope xmlns="http://schemas.xmlsoap.org/soap/envelope/">')
        assert chunk.endswith(b"</Envelope>")
        assert b"<m:ConnectionStatus>OK</m:ConnectionStatus>" in chunk and b"Notifications" not in chunk

    # Unsubscribing the stream's only subscription ends it properly: a Closed envelope, then the end of the body.
    alice.calendar.unsubscribe(sub_id)
    rest = b"".join(chunks)
    assert rest.rstrip().endswith(
        b"<m:ConnectionStatus>Closed</m:ConnectionStatus></m:GetStreamingEventsResponseMessage>"
        b"</m:ResponseMessages></m:GetStreamingEventsResponse></soap11:Body></Envelope>"
    )


def test_connection_limit_per_account(ews: EwsEmulator, alice: Account) -> None:
    ews.control("POST", "config", {"max_streaming_connections": 1})
    first_sub = alice.calendar.subscribe_to_streaming()
    second_sub = alice.calendar.subscribe_to_streaming()
    held = raw_stream(ews, [first_sub])
    wait_for(lambda: open_streams(ews) == 1)

    with pytest.raises(ErrorExceededConnectionCount):
        list(alice.calendar.get_streaming_events(second_sub, connection_timeout=1))

    # Closing the first connection frees the slot (the server notices the client leaving).
    held.close()
    wait_for(lambda: open_streams(ews) == 0)
    consumer = Consumer(alice, [second_sub], max_notifications_returned=1)
    wait_for(lambda: open_streams(ews) == 1)
    ews.control(
        "POST",
        f"mailboxes/{ALICE}/items",
        {"subject": "Now", "start": "2025-09-04T09:00:00Z", "end": "2025-09-04T10:00:00Z"},
    )
    consumer.received.get(timeout=5)
    consumer.wait()


def test_connection_limit_binds_the_service_account_whichever_mailbox_it_impersonates(
    ews: EwsEmulator, account_for: Callable[..., Account]
) -> None:
    """A sync service cannot escape the hanging-connection limit by anchoring connections on other mailboxes."""
    for address in (ALICE, "carol@example.com", "svc@example.com"):
        ews.add_account(address, PASSWORD)
    ews.control("POST", "impersonation", {"service_account": "svc@example.com", "mailboxes": ["*"]})
    ews.control("POST", "config", {"max_streaming_connections": 1})
    alice = account_for(ALICE, via="svc@example.com", access_type=IMPERSONATION)
    carol = account_for("carol@example.com", via="svc@example.com", access_type=IMPERSONATION)
    alice_sub, carol_sub = alice.calendar.subscribe_to_streaming(), carol.calendar.subscribe_to_streaming()
    held = raw_stream(ews, [alice_sub], user="svc@example.com", impersonate=ALICE)
    wait_for(lambda: open_streams(ews) == 1)

    with pytest.raises(ErrorExceededConnectionCount):
        list(carol.calendar.get_streaming_events(carol_sub, connection_timeout=1))
    assert stats(ews)["streaming_connections_by_account"] == {"svc@example.com": 1}
    held.close()


def test_one_connection_carries_a_group_of_impersonated_mailboxes(
    ews: EwsEmulator, account_for: Callable[..., Account]
) -> None:
    """Microsoft's affinity pattern: subscribe each mailbox while impersonating it, then carry them all on one
    connection anchored on one mailbox of the group; but only mailboxes the caller may impersonate."""
    for address in (ALICE, "carol@example.com", "dave@example.com", "svc@example.com"):
        ews.add_account(address, PASSWORD)
    ews.control(
        "POST",
        "impersonation",
        {"service_account": "svc@example.com", "mailboxes": [ALICE, "carol@example.com"]},
    )
    alice = account_for(ALICE, via="svc@example.com", access_type=IMPERSONATION)
    carol = account_for("carol@example.com", via="svc@example.com", access_type=IMPERSONATION)
    ids = [alice.calendar.subscribe_to_streaming(), carol.calendar.subscribe_to_streaming()]
    dave_sub = account_for(
        "dave@example.com"
    ).calendar.subscribe_to_streaming()  # dave's own, not the service's

    consumer = Consumer(alice, ids, max_notifications_returned=2)
    wait_for(lambda: open_streams(ews) == 1)
    for address in (ALICE, "carol@example.com"):
        ews.control(
            "POST",
            f"mailboxes/{address}/items",
            {"subject": "Group", "start": "2025-09-04T09:00:00Z", "end": "2025-09-04T10:00:00Z"},
        )
    got = [consumer.received.get(timeout=5)[1] for _ in range(2)]
    consumer.wait()
    assert sorted(n.subscription_id for n in got) == sorted(ids)

    with pytest.raises(ErrorSubscriptionNotFound):
        list(alice.calendar.get_streaming_events([ids[0], dave_sub], connection_timeout=1))


def test_too_many_subscriptions_on_one_connection_are_refused(ews: EwsEmulator, alice: Account) -> None:
    ews.control("POST", "config", {"max_subscriptions_per_connection": 2})
    ids = [alice.calendar.subscribe_to_streaming() for _ in range(3)]
    with pytest.raises(ErrorInvalidArgument):
        list(alice.calendar.get_streaming_events(ids, connection_timeout=1))


def test_subscription_without_a_connection_expires(ews: EwsEmulator, alice: Account) -> None:
    ews.control("POST", "config", {"subscription_idle_seconds": 0.2})
    sub_id = alice.calendar.subscribe_to_streaming()
    assert stats(ews)["subscriptions_by_mailbox"] == {ALICE: 1}
    time.sleep(0.3)
    with pytest.raises(ErrorSubscriptionNotFound):
        list(alice.calendar.get_streaming_events(sub_id, connection_timeout=1))
    assert stats(ews)["subscriptions"] == 0


def test_new_connection_for_a_subscription_closes_the_old_one(ews: EwsEmulator, alice: Account) -> None:
    sub_id = alice.calendar.subscribe_to_streaming()
    first = raw_stream(ews, [sub_id])
    wait_for(lambda: open_streams(ews) == 1)
    second = Consumer(alice, [sub_id], max_notifications_returned=1)

    # The old connection is told why and closed; the subscription now lives on the new one.
    old_body = b"".join(first.iter_content(chunk_size=None))
    assert b"<m:ResponseCode>ErrorNewEventStreamConnectionOpened</m:ResponseCode>" in old_body
    assert f"<t:SubscriptionId>{sub_id}</t:SubscriptionId>".encode() in old_body
    assert (
        old_body.endswith(b"</Envelope>") and b"<m:ConnectionStatus>Closed</m:ConnectionStatus>" in old_body
    )
    ews.control(
        "POST",
        f"mailboxes/{ALICE}/items",
        {"subject": "To the new one", "start": "2025-09-05T09:00:00Z", "end": "2025-09-05T10:00:00Z"},
    )
    second.received.get(timeout=5)
    second.wait()


def test_affinity_cookie_is_set_on_subscribe_and_sent_back(ews: EwsEmulator, alice: Account) -> None:
    sub_id = alice.calendar.subscribe_to_streaming()
    cookie = alice.affinity_cookie
    assert (
        cookie and alice.calendar.subscribe_to_streaming() and alice.affinity_cookie == cookie
    )  # stable per mailbox

    consumer = Consumer(alice, [sub_id], max_notifications_returned=1)
    wait_for(lambda: open_streams(ews) == 1)
    ews.control(
        "POST",
        f"mailboxes/{ALICE}/items",
        {"subject": "Routed", "start": "2025-09-06T09:00:00Z", "end": "2025-09-06T10:00:00Z"},
    )
    consumer.wait()
    alice.calendar.unsubscribe(sub_id)
    # GetStreamingEvents and Unsubscribe both came back with the cookie naming the mailbox's backend.
    assert stats(ews)["affinity_cookies"] == {"matched": 2}

    # Without X-PreferServerAffinity there is no cookie.
    plain = requests.post(
        ews.ews_url,
        auth=(ALICE, PASSWORD),
        timeout=10,
        data=(
            b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
            b'xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" '
            b'xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><s:Body><m:Subscribe>'
            b'<m:StreamingSubscriptionRequest><t:FolderIds><t:DistinguishedFolderId Id="calendar"/></t:FolderIds>'
            b"<t:EventTypes><t:EventType>CreatedEvent</t:EventType></t:EventTypes></m:StreamingSubscriptionRequest>"
            b"</m:Subscribe></s:Body></s:Envelope>"
        ),
        headers={"Content-Type": "text/xml"},
    )
    assert plain.status_code == 200 and b"<m:SubscriptionId>" in plain.content
    assert "X-BackEndOverrideCookie" not in plain.cookies


def test_drop_stream_cuts_an_open_connection_without_closed(ews: EwsEmulator, alice: Account) -> None:
    sub_id = alice.calendar.subscribe_to_streaming()
    consumer = Consumer(alice, [sub_id])
    wait_for(lambda: open_streams(ews) == 1)

    ews.control("POST", "faults", {"kind": "drop_stream", "mailbox": ALICE}, expect=201)

    consumer.wait()
    # The client sees a broken connection, not a clean Closed end of stream.
    assert consumer.error is not None and not isinstance(consumer.error, ErrorSubscriptionNotFound)
    assert open_streams(ews) == 0
    # The subscription survives: the client reconnects and carries on.
    again = Consumer(alice, [sub_id], max_notifications_returned=1)
    wait_for(lambda: open_streams(ews) == 1)
    ews.control(
        "POST",
        f"mailboxes/{ALICE}/items",
        {"subject": "After the cut", "start": "2025-09-07T09:00:00Z", "end": "2025-09-07T10:00:00Z"},
    )
    again.received.get(timeout=5)
    again.wait()


def test_drop_stream_with_nothing_open_cuts_the_next_connection(ews: EwsEmulator, alice: Account) -> None:
    sub_id = alice.calendar.subscribe_to_streaming()
    ews.control("POST", "faults", {"kind": "drop_stream", "count": 1}, expect=201)
    dropped = Consumer(alice, [sub_id])
    dropped.wait()
    assert dropped.error is not None and dropped.received.empty()
    assert stats(ews)["faults_fired"]["drop_stream"] == 1


def test_expire_subscriptions_ends_open_streams_with_subscription_not_found(
    ews: EwsEmulator, alice: Account
) -> None:
    sub_id = alice.calendar.subscribe_to_streaming()
    consumer = Consumer(alice, [sub_id])
    wait_for(lambda: open_streams(ews) == 1)

    ews.control("POST", "faults", {"kind": "expire_subscriptions", "mailbox": ALICE}, expect=201)

    consumer.wait()
    assert isinstance(consumer.error, ErrorSubscriptionNotFound)
    with pytest.raises(ErrorSubscriptionNotFound):
        list(alice.calendar.get_streaming_events(sub_id, connection_timeout=1))


def test_missed_events_fault_on_the_next_call_and_on_open_streams(ews: EwsEmulator, alice: Account) -> None:
    sub_id = alice.calendar.subscribe_to_streaming()
    ews.control("POST", "faults", {"kind": "missed_events", "mailbox": ALICE, "count": 1}, expect=201)
    with pytest.raises(ErrorMissedNotificationEvents):
        list(alice.calendar.get_streaming_events(sub_id, connection_timeout=1))

    # Used up: the next connection streams normally, until the fault is injected while it is open.
    consumer = Consumer(alice, [sub_id])
    wait_for(lambda: open_streams(ews) == 1)
    ews.control("POST", "faults", {"kind": "missed_events", "mailbox": ALICE, "count": 1}, expect=201)
    consumer.wait()
    assert isinstance(consumer.error, ErrorMissedNotificationEvents)
