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

from exchangelib import Account, CalendarItem, EWSDateTime
from lxml import etree

from tests.ews.conftest import CAPTURED, TZ

SCHEMA_DIR = Path(__file__).resolve().parents[3] / "shared" / "reference" / "ews-schema"
REAL_CLIENTS = ("exchangelib", "axios")


def compile_schema() -> etree.XMLSchema:
    work = Path(tempfile.mkdtemp())
    try:
        shutil.copy(SCHEMA_DIR / "xml.xsd", work / "xml.xsd")
        (work / "types.xsd").write_text((SCHEMA_DIR / "types.xsd").read_text().replace(
            '<xs:import namespace="http://www.w3.org/XML/1998/namespace"/>',
            '<xs:import namespace="http://www.w3.org/XML/1998/namespace" schemaLocation="xml.xsd"/>'))  # fmt: skip
        shutil.copy(SCHEMA_DIR / "messages.xsd", work / "messages.xsd")
        return etree.XMLSchema(etree.parse(str(work / "messages.xsd")))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def exercise(account: Account) -> None:
    """A small workload, so that the check has something to read even when it runs on its own."""
    start = EWSDateTime(2025, 3, 3, 9, 0, tzinfo=TZ)
    item = CalendarItem(account=account, folder=account.calendar, subject="Schema check", start=start,
                        end=start + timedelta(hours=1))  # fmt: skip
    item.save(send_meeting_invitations="SendToNone")
    item.subject = "Schema check, moved"
    item.save(update_fields=["subject"], send_meeting_invitations="SendToNone")
    list(account.calendar.view(start=start - timedelta(days=1), end=start + timedelta(days=1)))
    item.delete(send_meeting_cancellations="SendToNone")


def test_every_exchanged_body_conforms_to_the_ews_schema(ews, alice: Account) -> None:  # type: ignore[no-untyped-def]
    exercise(alice)
    exchanged = [*CAPTURED, *ews.settings.captured]
    schema = compile_schema()

    violations: list[str] = []
    checked: Counter[str] = Counter()
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

    assert not violations, "\n".join(violations[:20])
    assert checked["request"] >= 5 and checked["response"] >= 5
