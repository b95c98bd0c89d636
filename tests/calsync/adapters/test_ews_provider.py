"""EwsCalendar against the EWS emulator over real HTTP: the emulator's control plane is the judge of what Exchange
holds, and its statistics count the requests."""

from __future__ import annotations

import datetime
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from exchangelib import errors as ews_errors

from calsync.adapters.ews import PROPERTY_SET_ID, EwsCalendar
from calsync.adapters.ews.errors import Where, translate
from calsync.domain import (
    AccessType,
    ConflictError,
    EventContent,
    ExchangeAuth,
    ExchangeConnection,
    FreeBusy,
    JrniKey,
    PermanentError,
    RetryableError,
    Stamp,
    TimeWindow,
)
from calsync.ports import CalendarProvider, RemoteRef
from emulators.common.server import BackgroundServer
from emulators.ews.app import build_app
from emulators.ews.settings import EmulatorSettings
from emulators.ews.testing import EwsEmulator
from tests.tls import write_self_signed

PASSWORD = "pass-for-tests"
SERVICE = "svc@example.com"
ALICE = "alice@example.com"
BOB = "bob@example.com"
TENANT = "contoso-tenant"
CLIENT_SECRET = "client-secret-for-tests"
LONDON = ZoneInfo("Europe/London")
BASIC_SECRET = {"username": SERVICE, "password": PASSWORD}


# ---- fixtures (EWS adapter only) -----------------------------------------------------------------------------------


# exchangelib starts each test with no cached Accounts or connections (the adapters conftest).
pytestmark = pytest.mark.usefixtures("fresh_exchangelib")


@pytest.fixture
def ews(ews_server: EwsEmulator) -> Iterator[EwsEmulator]:
    """The emulator with a service account allowed to impersonate alice and bob."""
    ews_server.reset()
    for address in (SERVICE, ALICE, BOB):
        ews_server.add_account(address, PASSWORD)
    ews_server.control("POST", "impersonation", {"service_account": SERVICE, "mailboxes": ["*"]})
    yield ews_server
    ews_server.control("DELETE", "faults")
    ews_server.control("POST", "config", {"token_lifetime_seconds": 3600})


def connect(ews: EwsEmulator, **changes: Any) -> ExchangeConnection:
    return replace(ExchangeConnection(endpoint=ews.ews_url, secret_name="calsync/exchange"), **changes)


@pytest.fixture
def calendar(ews: EwsEmulator) -> EwsCalendar:
    """Basic auth, impersonation: the most common on-premises set-up."""
    return EwsCalendar(connect(ews), BASIC_SECRET)


def content(
    booking: str = "101",
    *,
    integration: str = "int-1",
    subject: str = "Haircut with Sam",
    body: str = "<p>Client: <b>Pat</b></p>",
    hour: int = 9,
    free_busy: FreeBusy = FreeBusy.BUSY,
    is_html: bool = True,
) -> EventContent:
    start = datetime.datetime(2025, 7, 7, hour, tzinfo=LONDON)  # BST: 09:00 London is 08:00 UTC
    return EventContent(
        stamp=Stamp(integration, JrniKey("37000", booking)),
        subject=subject,
        body=body,
        window=TimeWindow(start, start + datetime.timedelta(minutes=45)),
        free_busy=free_busy,
        is_html=is_html,
    )


def operations(ews: EwsEmulator) -> dict[str, int]:
    return dict(ews.control("GET", "stats")["operations"])


def extended(item: dict[str, Any]) -> dict[str, str]:
    return {
        p["property_name"]: p["value"]
        for p in item["extended_properties"]
        if p.get("property_set_id") == PROPERTY_SET_ID
    }


# ---- round trips ---------------------------------------------------------------------------------------------------


def test_is_a_calendar_provider(calendar: EwsCalendar) -> None:
    provider: CalendarProvider = calendar
    assert provider.name == "ews"


def test_create_writes_an_appointment_in_utc_with_both_stamps_in_one_request(
    ews: EwsEmulator, calendar: EwsCalendar
) -> None:
    ref = calendar.create_event(ALICE, content(free_busy=FreeBusy.TENTATIVE))

    assert operations(ews) == {"CreateItem": 1}  # no GetFolder, no version or auth probe
    [item] = ews.items(ALICE)
    assert (ref.remote_id, ref.version) == (item["id"], item["change_key"])
    assert item["subject"] == "Haircut with Sam"
    assert (item["body"], item["body_type"]) == ("<p>Client: <b>Pat</b></p>", "HTML")
    assert (item["start"], item["end"]) == ("2025-07-07T08:00:00Z", "2025-07-07T08:45:00Z")
    assert item["start_timezone"] == "UTC"
    assert item["legacy_free_busy_status"] == "Tentative"
    assert item["required_attendees"] == [] and item["calendar_item_type"] == "Single"
    assert extended(item) == {"CalsyncIntegrationId": "int-1", "CalsyncJrniKey": "37000/101"}
    assert ews.items(BOB) == []


def test_create_with_a_text_body_writes_text(ews: EwsEmulator, calendar: EwsCalendar) -> None:
    calendar.create_event(ALICE, content(body="Client: Pat <pat@example.com>", is_html=False))
    [item] = ews.items(ALICE)
    assert (item["body"], item["body_type"]) == ("Client: Pat <pat@example.com>", "Text")


def test_update_overwrites_subject_body_times_and_free_busy_in_one_request(
    ews: EwsEmulator, calendar: EwsCalendar
) -> None:
    ref = calendar.create_event(ALICE, content())
    # The adviser edits the item in Outlook meanwhile: JRNI still wins, and no change key is needed for that.
    ews.control(
        "PATCH",
        f"mailboxes/{ALICE}/items/{ref.remote_id}",
        {"subject": "Edited in Outlook", "location": "Room 2"},
    )
    before = operations(ews)

    updated = calendar.update_event(
        ALICE,
        ref.remote_id,
        content(subject="Colour with Sam", body="<p>moved</p>", hour=14, free_busy=FreeBusy.OOF),
    )

    assert operations(ews).get("UpdateItem", 0) == before.get("UpdateItem", 0) + 1
    assert sum(operations(ews).values()) == sum(before.values()) + 1
    [item] = ews.items(ALICE)
    assert updated == RemoteRef(ref.remote_id, item["change_key"]) and item["change_key"] != ref.version
    assert item["subject"] == "Colour with Sam" and item["body"] == "<p>moved</p>"
    assert (item["start"], item["end"]) == ("2025-07-07T13:00:00Z", "2025-07-07T13:45:00Z")
    assert item["legacy_free_busy_status"] == "OOF"
    assert item["location"] == "Room 2"  # not ours to decide
    assert extended(item) == {"CalsyncIntegrationId": "int-1", "CalsyncJrniKey": "37000/101"}


def test_delete_removes_the_item_and_deleting_again_is_done(ews: EwsEmulator, calendar: EwsCalendar) -> None:
    keep = calendar.create_event(ALICE, content("1"))
    gone = calendar.create_event(ALICE, content("2"))
    calendar.delete_event(ALICE, gone.remote_id)
    assert [i["id"] for i in ews.items(ALICE)] == [keep.remote_id]
    calendar.delete_event(ALICE, gone.remote_id)
    assert operations(ews)["DeleteItem"] == 2


def test_an_item_deleted_in_outlook_updates_to_none_and_deletes_quietly(
    ews: EwsEmulator, calendar: EwsCalendar
) -> None:
    ref = calendar.create_event(ALICE, content())
    ews.control("DELETE", f"mailboxes/{ALICE}/items/{ref.remote_id}")  # the adviser deletes it in Outlook
    assert calendar.update_event(ALICE, ref.remote_id, content(subject="Too late")) is None
    calendar.delete_event(ALICE, ref.remote_id)
    assert ews.items(ALICE) == []


def test_find_stamped_finds_only_items_with_both_parts_of_the_stamp_in_one_request(
    ews: EwsEmulator, calendar: EwsCalendar
) -> None:
    ours = calendar.create_event(ALICE, content("101"))
    calendar.create_event(ALICE, content("102"))  # another booking
    calendar.create_event(ALICE, content("101", integration="int-2"))  # the same booking, another integration
    calendar.create_event(BOB, content("101"))  # another mailbox
    ews.control(
        "POST",
        f"mailboxes/{ALICE}/items",
        {"subject": "Lunch", "start": "2025-07-07T11:00:00Z", "end": "2025-07-07T12:00:00Z"},
    )
    before = operations(ews).get("FindItem", 0)

    found = calendar.find_stamped(ALICE, Stamp("int-1", JrniKey("37000", "101")))

    assert found == [ours]
    assert operations(ews)["FindItem"] == before + 1
    assert calendar.find_stamped(ALICE, Stamp("int-1", JrniKey("37000", "999"))) == []


# ---- authentication and access -------------------------------------------------------------------------------------


def test_basic_delegate_writes_to_a_calendar_shared_with_editor_rights(ews: EwsEmulator) -> None:
    ews.control("POST", "delegates", {"owner": ALICE, "delegate": SERVICE, "permission": "Editor"})
    calendar = EwsCalendar(connect(ews, access_type=AccessType.DELEGATE), BASIC_SECRET)
    ref = calendar.create_event(ALICE, content())
    assert calendar.find_stamped(ALICE, content().stamp) == [ref]
    calendar.update_event(ALICE, ref.remote_id, content(subject="Moved"))
    assert [i["subject"] for i in ews.items(ALICE)] == ["Moved"]
    calendar.delete_event(ALICE, ref.remote_id)
    assert ews.items(ALICE) == []


def test_ntlm_impersonation_round_trip(ews: EwsEmulator) -> None:
    calendar = EwsCalendar(connect(ews, auth=ExchangeAuth.NTLM), BASIC_SECRET)
    ref = calendar.create_event(ALICE, content())
    assert calendar.find_stamped(ALICE, content().stamp) == [ref]
    calendar.delete_event(ALICE, ref.remote_id)
    assert ews.items(ALICE) == []
    assert ews.control("GET", "stats")["http_statuses"]["401"] == 2  # one handshake served every request


@pytest.fixture
def oauth(ews: EwsEmulator) -> Callable[..., EwsCalendar]:
    ews.control(
        "POST",
        "oauth-apps",
        {
            "tenant_id": TENANT,
            "client_id": "calsync-app",
            "client_secret": CLIENT_SECRET,
            "mailboxes": [ALICE, BOB],
        },
        expect=201,
    )

    def build(client_secret: str = CLIENT_SECRET) -> EwsCalendar:
        connection = connect(
            ews, auth=ExchangeAuth.OAUTH2, token_url=f"{ews.base_url}/{{tenant}}/oauth2/v2.0/token"
        )
        return EwsCalendar(
            connection, {"tenant_id": TENANT, "client_id": "calsync-app", "client_secret": client_secret}
        )

    return build


def tokens_issued(ews: EwsEmulator) -> int:
    return int(ews.call(lambda: len(ews.emulator.store.tokens)))


def test_oauth2_app_writes_to_every_granted_mailbox_with_one_token(
    ews: EwsEmulator, oauth: Callable[..., EwsCalendar]
) -> None:
    calendar = oauth()
    alice_ref = calendar.create_event(ALICE, content("1"))
    bob_ref = calendar.create_event(BOB, content("2"))
    oauth().update_event(ALICE, alice_ref.remote_id, content("1", subject="Moved"))  # a later invocation
    assert [i["subject"] for i in ews.items(ALICE)] == ["Moved"]
    assert [i["id"] for i in ews.items(BOB)] == [bob_ref.remote_id]
    assert tokens_issued(ews) == 1
    assert operations(ews) == {"CreateItem": 2, "UpdateItem": 1}


def test_oauth2_expired_token_in_a_warm_process_is_replaced(
    ews: EwsEmulator, oauth: Callable[..., EwsCalendar]
) -> None:
    ews.control("POST", "config", {"token_lifetime_seconds": 2})
    calendar = oauth()
    calendar.create_event(ALICE, content("1"))
    time.sleep(2.7)  # past the expiry, with oauthlib's rounding to the second
    calendar.create_event(ALICE, content("2"))
    assert len(ews.items(ALICE)) == 2 and tokens_issued(ews) == 2


def test_oauth2_wrong_client_secret_is_permanent(ews: EwsEmulator, oauth: Callable[..., EwsCalendar]) -> None:
    with pytest.raises(PermanentError, match=r"calsync-app.*client_secret.*calsync/exchange"):
        oauth("not-the-secret").create_event(ALICE, content())
    assert ews.items(ALICE) == []


def test_a_changed_secret_is_used_at_once(ews: EwsEmulator, calendar: EwsCalendar) -> None:
    calendar.create_event(ALICE, content("1"))
    rotated_wrongly = EwsCalendar(connect(ews), {"username": SERVICE, "password": "not-the-password"})
    with pytest.raises(PermanentError):
        rotated_wrongly.create_event(ALICE, content("2"))
    EwsCalendar(connect(ews), BASIC_SECRET).create_event(ALICE, content("3"))
    assert [extended(i)["CalsyncJrniKey"] for i in ews.items(ALICE)] == ["37000/1", "37000/3"]


def test_a_secret_without_its_fields_is_permanent(ews: EwsEmulator) -> None:
    with pytest.raises(PermanentError, match="'password'"):
        EwsCalendar(connect(ews), {"username": SERVICE})
    with pytest.raises(PermanentError, match="server_version"):
        EwsCalendar(connect(ews, server_version="Exchange2099"), BASIC_SECRET)


# ---- TLS -----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def https_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[EwsEmulator]]:
    """Two https emulators (two endpoints) with a self-signed certificate, each with alice and the service account."""
    cert_file, key_file = write_self_signed(tmp_path_factory.mktemp("tls"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    servers = []
    for _ in range(2):
        emulator = EwsEmulator(EmulatorSettings(validate_responses=True))
        emulator.server = BackgroundServer(lambda e=emulator: build_app(e.settings), ssl_context=context)
        emulator.http.verify = str(cert_file)  # the control plane: the test trusts its own certificate
        emulator.http.trust_env = False
        emulator.start()
        emulator.add_account(SERVICE)
        emulator.add_account(ALICE)
        emulator.control("POST", "impersonation", {"service_account": SERVICE, "mailboxes": ["*"]})
        servers.append(emulator)
    yield servers
    for emulator in servers:
        emulator.stop()


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_tls_is_verified_unless_the_integration_turns_it_off_for_its_own_endpoint(
    https_servers: list[EwsEmulator],
) -> None:
    trusting, strict = https_servers
    assert trusting.ews_url.startswith("https://") and trusting.ews_url != strict.ews_url

    with pytest.raises(PermanentError, match=r"certificate of https://127\.0\.0\.1.*verify_tls") as failure:
        EwsCalendar(connect(strict), BASIC_SECRET).create_event(ALICE, content())
    assert "CERTIFICATE_VERIFY_FAILED" in str(failure.value)

    unverified = EwsCalendar(connect(trusting, verify_tls=False), BASIC_SECRET)
    ref = unverified.create_event(ALICE, content())
    assert [i["id"] for i in trusting.items(ALICE)] == [ref.remote_id]

    # In the same process, the other endpoint is still verified.
    with pytest.raises(PermanentError, match="certificate"):
        EwsCalendar(connect(strict), BASIC_SECRET).create_event(ALICE, content())
    assert strict.items(ALICE) == []


# ---- errors --------------------------------------------------------------------------------------------------------


def fault(ews: EwsEmulator, kind: str, operation: str = "CreateItem", **extra: Any) -> None:
    ews.control("POST", "faults", {"operation": operation, "kind": kind, "count": 1, **extra})


def test_server_busy_is_retryable_after_the_back_off_exchange_asked_for(
    ews: EwsEmulator, calendar: EwsCalendar
) -> None:
    fault(ews, "server_busy", back_off_ms=1500)
    started = time.monotonic()
    with pytest.raises(RetryableError) as busy:
        calendar.create_event(ALICE, content())
    assert busy.value.delay_seconds == 1.5
    assert time.monotonic() - started < 1.0  # no sleeping in a Lambda
    assert ews.items(ALICE) == []
    calendar.create_event(ALICE, content())  # the fault was used up: the retry works
    assert len(ews.items(ALICE)) == 1


@pytest.mark.parametrize("kind", ["http_503", "connection_reset"])
def test_transient_failures_are_retryable(ews: EwsEmulator, calendar: EwsCalendar, kind: str) -> None:
    fault(ews, kind, operation="FindItem")
    with pytest.raises(RetryableError) as failure:
        calendar.find_stamped(ALICE, content().stamp)
    assert failure.value.delay_seconds > 0
    assert calendar.find_stamped(ALICE, content().stamp) == []


def test_an_http_refusal_retrying_cannot_fix_is_permanent_and_says_so(
    ews: EwsEmulator, calendar: EwsCalendar
) -> None:
    # Exchange's front answers 400 to a request it cannot parse: the same request would get the same answer.
    fault(ews, "http_400", operation="CreateItem")
    with pytest.raises(
        PermanentError, match=r"refused the request for alice@example\.com with HTTP 400"
    ) as failure:
        calendar.create_event(ALICE, content())
    assert "Bad Request - Invalid Header" in str(failure.value) and "will not help" in str(failure.value)
    assert ews.items(ALICE) == []


def test_an_endpoint_with_the_wrong_path_is_permanent_and_names_the_ews_url(ews: EwsEmulator) -> None:
    calendar = EwsCalendar(connect(ews, endpoint=f"{ews.base_url}/EWS/Exchange.asmx/nope"), BASIC_SECRET)
    with pytest.raises(PermanentError, match=r"with HTTP 404.*/EWS/Exchange\.asmx"):
        calendar.find_stamped(ALICE, content().stamp)


@pytest.mark.parametrize(
    "mailbox",
    ["alice@example.com\x00", "alice\x1b@example.com", "</t:EmailAddress>@example.com", "<x>&amp;@x.y"],
)
def test_a_mailbox_that_is_no_address_is_refused_before_any_request(
    ews: EwsEmulator, calendar: EwsCalendar, mailbox: str
) -> None:
    before = ews.control("GET", "stats")
    with pytest.raises(PermanentError, match=r"is not a valid address, so nothing was sent.*fix the mapping"):
        calendar.create_event(mailbox, content())
    with pytest.raises(PermanentError, match="fix the mapping"):
        calendar.find_stamped(mailbox, content().stamp)
    after = ews.control("GET", "stats")
    assert (after["operations"], after["http_statuses"]) == (before["operations"], before["http_statuses"])


def test_a_slow_exchange_times_out_as_retryable(ews: EwsEmulator) -> None:
    fault(ews, "delay", operation="FindItem", delay_ms=1500)
    calendar = EwsCalendar(connect(ews), BASIC_SECRET, timeout=0.5)
    with pytest.raises(RetryableError, match=r"ErrorTimeoutExpired|Timeout"):
        calendar.find_stamped(ALICE, content().stamp)


@dataclass(frozen=True)
class AccessCase:
    name: str
    setup: Callable[[EwsEmulator], None]
    access_type: AccessType
    mailbox: str
    secret: dict[str, str]
    message: str  # what the operator reads must say


ACCESS_CASES = [
    AccessCase(
        "unknown mailbox",
        lambda ews: None,
        AccessType.IMPERSONATION,
        "nobody@example.com",
        BASIC_SECRET,
        r"no mailbox nobody@example\.com",
    ),
    AccessCase(
        "impersonation not granted",
        lambda ews: ews.control("POST", "impersonation", {"service_account": SERVICE, "mailboxes": [BOB]}),
        AccessType.IMPERSONATION,
        ALICE,
        BASIC_SECRET,
        r"svc@example\.com may not impersonate alice@example\.com.*ApplicationImpersonation",
    ),
    AccessCase(
        "delegate without write access",
        lambda ews: ews.control(
            "POST", "delegates", {"owner": ALICE, "delegate": SERVICE, "permission": "Reviewer"}
        ),
        AccessType.DELEGATE,
        ALICE,
        BASIC_SECRET,
        r"no write access to the calendar of alice@example\.com.*Editor",
    ),
    AccessCase(
        "wrong password",
        lambda ews: None,
        AccessType.IMPERSONATION,
        ALICE,
        {"username": SERVICE, "password": "not-the-password"},
        r"refused the credentials of svc@example\.com.*'calsync/exchange'",
    ),
]


@pytest.mark.parametrize("case", ACCESS_CASES, ids=lambda c: c.name)
def test_access_problems_are_permanent_and_say_what_to_fix(ews: EwsEmulator, case: AccessCase) -> None:
    case.setup(ews)
    calendar = EwsCalendar(connect(ews, access_type=case.access_type), case.secret)
    with pytest.raises(PermanentError, match=case.message):
        calendar.create_event(case.mailbox, content())
    assert ews.items(ALICE) == []


WHERE = Where(
    mailbox=ALICE,
    account=SERVICE,
    endpoint="https://mail.example.com/EWS/Exchange.asmx",
    secret_name="calsync/exchange",
    access_type=AccessType.IMPERSONATION,
)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ews_errors.ErrorIrresolvableConflict("changed"), ConflictError),
        (ews_errors.ErrorInvalidSchemaVersionForMailboxVersion("Invalid server version"), PermanentError),
        (ews_errors.ErrorServerBusy("busy"), RetryableError),
        (ews_errors.ErrorInternalServerTransientError("later"), RetryableError),
        (ews_errors.ErrorQuotaExceeded("full"), PermanentError),
        (ValueError("a bug of ours"), type(None)),
    ],
)
def test_translation_of_errors_the_emulator_cannot_provoke(error: Exception, expected: type) -> None:
    assert isinstance(translate(error, WHERE), expected)
