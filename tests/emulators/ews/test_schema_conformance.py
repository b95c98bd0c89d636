"""Everything the EWS tests exchanged, checked against Microsoft's schema (issue 3, acceptance 2).

The session's emulator keeps every request and response body; this test runs last (see conftest) and validates
them all with a schema compiled here, straight from ../shared/reference/ews-schema, following that folder's README.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from datetime import timedelta
from pathlib import Path

import requests
from exchangelib import Account, CalendarItem, EWSDateTime
from exchangelib.folders import FolderCollection
from exchangelib.properties import AlternateId
from lxml import etree

from emulators.ews.testing import EwsEmulator
from tests.emulators.ews.conftest import CAPTURED, PASSWORD, TZ

SCHEMA_DIR = Path(__file__).resolve().parents[4] / "shared" / "reference" / "ews-schema"
REAL_CLIENTS = ("exchangelib", "axios")


def compile_schema() -> etree.XMLSchema:
    work = Path(tempfile.mkdtemp())
    try:
        shutil.copy(SCHEMA_DIR / "xml.xsd", work / "xml.xsd")
        (work / "types.xsd").write_text(
            (SCHEMA_DIR / "types.xsd")
            .read_text()
            .replace(
                '<xs:import namespace="http://www.w3.org/XML/1998/namespace"/>',
                '<xs:import namespace="http://www.w3.org/XML/1998/namespace" schemaLocation="xml.xsd"/>',
            )
        )
        shutil.copy(SCHEMA_DIR / "messages.xsd", work / "messages.xsd")
        return etree.XMLSchema(etree.parse(str(work / "messages.xsd")))
    finally:
        shutil.rmtree(work, ignore_errors=True)


# The operations every run must have exchanged (and checked): the whole protocol surface calsync relies on.
CORE_OPERATIONS = {
    "GetFolder",
    "FindFolder",
    "FindItem",
    "GetItem",
    "CreateItem",
    "UpdateItem",
    "DeleteItem",
    "SyncFolderItems",
    "Subscribe",
    "GetStreamingEvents",
    "GetEvents",
    "Unsubscribe",
    "GetServerTimeZones",
    "GetUserAvailabilityRequest",
    "ResolveNames",
    "ConvertId",
}
# The whole EWS suite checks about 500 requests and 500 responses; a run of this test alone a few dozen. A floor well
# above the latter catches a capture that silently stopped (e.g. a fixture that no longer records).
SUITE_MINIMUM = 400


def exercise(ews: EwsEmulator, account: Account) -> None:
    """A workload touching every core operation, so that the check reads all of them even when it runs on its own."""
    start = EWSDateTime(2025, 3, 3, 9, 0, tzinfo=TZ)
    item = CalendarItem(
        account=account,
        folder=account.calendar,
        subject="Schema check",
        start=start,
        end=start + timedelta(hours=1),
        body="Notes",
    )
    item.save(send_meeting_invitations="SendToNone")
    item.subject = "Schema check, moved"
    item.save(update_fields=["subject"], send_meeting_invitations="SendToNone")
    list(account.calendar.view(start=start - timedelta(days=1), end=start + timedelta(days=1)))
    list(account.calendar.sync_items())
    sub_id, watermark = account.calendar.subscribe_to_pull()
    list(account.calendar.get_events(sub_id, watermark))
    account.calendar.unsubscribe(sub_id)
    list(
        account.protocol.get_free_busy_info(
            accounts=[(account, "Organizer", False)],
            start=start - timedelta(hours=1),
            end=start + timedelta(hours=8),
        )
    )
    list(account.protocol.get_timezones(timezones=[TZ], return_full_timezone_data=True))
    account.protocol.resolve_names(names=["alice"])
    list(FolderCollection(account=account, folders=[account.root]).find_folders())
    list(
        account.protocol.convert_ids(
            [AlternateId(id=item.id, format="EwsId", mailbox=account.primary_smtp_address)],
            destination_format="EntryId",
        )
    )
    ews.control("POST", "config", {"heartbeat_seconds": 0.1})
    stream_id = account.calendar.subscribe_to_streaming()
    with requests.post(
        ews.ews_url,
        data=_streaming_request(stream_id),
        auth=(account.primary_smtp_address, PASSWORD),
        headers={"Content-Type": "text/xml; charset=utf-8"},
        stream=True,
        timeout=10,
    ) as response:
        response.raw.read(200)  # the first envelope (a heartbeat) has been written, checked and captured
    item.delete(send_meeting_cancellations="SendToNone")


def _streaming_request(sub_id: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" '
        'xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><s:Header>'
        '<t:RequestServerVersion Version="Exchange2016"/></s:Header><s:Body><m:GetStreamingEvents><m:SubscriptionIds>'
        f"<t:SubscriptionId>{sub_id}</t:SubscriptionId></m:SubscriptionIds><m:ConnectionTimeout>1</m:ConnectionTimeout>"
        "</m:GetStreamingEvents></s:Body></s:Envelope>"
    ).encode()


def test_every_exchanged_body_conforms_to_the_ews_schema(ews: EwsEmulator, alice: Account) -> None:
    exercise(ews, alice)
    exchanged = [*CAPTURED, *ews.settings.captured]
    whole_suite = bool(CAPTURED)
    schema = compile_schema()

    violations: list[str] = []
    checked: Counter[str] = Counter()
    responses: Counter[str] = Counter()
    for direction, operation, payload, client in exchanged:
        if direction == "fault":
            continue  # SOAP faults are defined by SOAP, not by messages.xsd
        try:
            element = etree.fromstring(payload, etree.XMLParser(resolve_entities=False, no_network=True))
        except etree.XMLSyntaxError:
            element = None
        if direction == "request" and not client.startswith(REAL_CLIENTS):
            # Requests built by hand in the error tests are malformed on purpose; real clients' must all validate.
            continue
        if element is None or not schema.validate(element):
            detail = str(schema.error_log.last_error) if element is not None else "not well-formed"
            violations.append(f"{direction} {operation} from {client or 'emulator'}: {detail}")
        checked[direction] += 1
        if direction == "response":
            responses[operation] += 1

    assert not violations, "\n".join(violations[:20])
    missing = CORE_OPERATIONS - set(responses)
    assert not missing, f"no response checked for {sorted(missing)}"
    # Streaming envelopes (chunks of one response) are checked one by one, like any other response.
    assert responses["GetStreamingEvents"] >= 1
    assert checked["request"] >= len(CORE_OPERATIONS) and checked["response"] >= len(CORE_OPERATIONS)
    if whole_suite:
        assert checked["response"] >= SUITE_MINIMUM and checked["request"] >= SUITE_MINIMUM, checked
