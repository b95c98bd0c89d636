"""Throttling, injected faults, hostile or broken requests, and control-plane mistakes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from exchangelib import Account, CalendarItem, EWSDateTime, FailFast, FaultTolerance
from exchangelib.errors import ErrorServerBusy, ErrorTimeoutExpired
from lxml import etree

from emulators.ews.testing import EwsEmulator
from tests.emulators.ews.conftest import PASSWORD, TZ

ALICE = "alice@example.com"
E_NS = "http://schemas.microsoft.com/exchange/services/2006/errors"
T_NS = "http://schemas.microsoft.com/exchange/services/2006/types"
XML = {"Content-Type": "text/xml; charset=utf-8"}
ENVELOPE = """<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"
  xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"
  xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">
<s:Header><t:RequestServerVersion Version="Exchange2016"/></s:Header>
<s:Body>{body}</s:Body></s:Envelope>"""
GET_CALENDAR = ENVELOPE.format(
    body="""<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape>
<m:FolderIds><t:DistinguishedFolderId Id="calendar"/></m:FolderIds></m:GetFolder>"""
)


@pytest.fixture(autouse=True)
def _alice(ews: EwsEmulator) -> None:
    ews.add_account(ALICE, PASSWORD)


def at(day: int, hour: int) -> EWSDateTime:
    return EWSDateTime(2025, 7, day, hour, tzinfo=TZ)


def book(account: Account, subject: str = "Booking") -> CalendarItem:
    item = CalendarItem(
        account=account, folder=account.calendar, subject=subject, start=at(7, 9), end=at(7, 10)
    )
    item.save(send_meeting_invitations="SendToNone")
    return item


def post(ews: EwsEmulator, body: bytes | str, **kwargs: Any) -> requests.Response:
    data = body.encode() if isinstance(body, str) else body
    return requests.post(ews.ews_url, data=data, headers=XML, auth=(ALICE, PASSWORD), timeout=30, **kwargs)


def fault(response: requests.Response) -> tuple[str | None, etree._Element]:
    """The EWS response code of a SOAP fault, and its detail element."""
    root = etree.fromstring(response.content)
    detail = root.find(".//detail")
    assert detail is not None, response.text
    return detail.findtext(f"{{{E_NS}}}ResponseCode"), detail


def add_fault(ews: EwsEmulator, **rule: Any) -> None:
    ews.control("POST", "faults", rule, expect=201)


def stats(ews: EwsEmulator) -> dict[str, Any]:
    return dict(ews.control("GET", "stats"))


# ---- throttling and injected faults --------------------------------------------------------------------------------


def test_fault_tolerance_honours_the_back_off_and_succeeds(
    ews: EwsEmulator, account_for: Callable[..., Account]
) -> None:
    account = account_for(ALICE, retry_policy=FaultTolerance(max_wait=10))
    account.calendar.refresh()
    add_fault(ews, kind="server_busy", operation="CreateItem", count=1, back_off_ms=1200)

    started = time.monotonic()
    book(account)
    elapsed = time.monotonic() - started

    assert elapsed >= 1.2  # it waited as told before retrying
    assert len(ews.items(ALICE)) == 1  # exactly one item: the throttled attempt changed nothing
    numbers = stats(ews)
    assert numbers["operations"]["CreateItem"] == 2  # the refused request and its retry
    assert numbers["faults_fired"] == {"server_busy": 1}
    assert numbers["http_statuses"]["500"] == 1


def test_fail_fast_raises_server_busy_with_the_back_off(
    ews: EwsEmulator, account_for: Callable[..., Account]
) -> None:
    account = account_for(ALICE, retry_policy=FailFast())
    add_fault(ews, kind="server_busy", operation="CreateItem", count=1, back_off_ms=2500)
    with pytest.raises(ErrorServerBusy) as raised:
        book(account)
    assert raised.value.back_off == 2.5
    assert ews.items(ALICE) == []
    book(account)  # count=1: the next attempt goes through
    assert len(ews.items(ALICE)) == 1


def test_concurrency_budget_refuses_the_request_over_the_limit(ews: EwsEmulator) -> None:
    ews.control("POST", "config", {"max_concurrency": 1, "latency_ms": 400})
    results: list[requests.Response] = []
    threads = [threading.Thread(target=lambda: results.append(post(ews, GET_CALENDAR))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(r.status_code for r in results) == [200, 500]
    [refused] = [r for r in results if r.status_code == 500]
    code, detail = fault(refused)
    assert code == "ErrorServerBusy"
    back_off = detail.find(f"{{{T_NS}}}MessageXml/{{{T_NS}}}Value[@Name='BackOffMilliseconds']")
    assert back_off is not None and int(back_off.text or "0") > 0
    # Once the first request is done, the budget is free again.
    assert post(ews, GET_CALENDAR).status_code == 200


def test_http_503_carries_retry_after_and_fault_tolerance_waits_for_it(
    ews: EwsEmulator, account_for: Callable[..., Account]
) -> None:
    add_fault(ews, kind="http_503", count=1, back_off_ms=1000)
    raw = post(ews, GET_CALENDAR)
    assert raw.status_code == 503 and raw.headers["Retry-After"] == "1"

    add_fault(ews, kind="http_503", operation="GetFolder", count=1, back_off_ms=1000)
    started = time.monotonic()
    account_for(ALICE, retry_policy=FaultTolerance(max_wait=10)).calendar.refresh()
    assert time.monotonic() - started >= 1.0
    assert stats(ews)["http_statuses"]["503"] == 2


def test_http_400_is_http_sys_refusing_the_request(ews: EwsEmulator) -> None:
    add_fault(ews, kind="http_400", count=1)
    raw = post(ews, GET_CALENDAR)
    assert raw.status_code == 400 and raw.text == "Bad Request - Invalid Header"
    assert stats(ews)["http_statuses"]["400"] == 1
    assert post(ews, GET_CALENDAR).status_code == 200  # used up


def test_http_503_under_fail_fast_is_server_busy(
    ews: EwsEmulator, account_for: Callable[..., Account]
) -> None:
    add_fault(ews, kind="http_503", count=1, back_off_ms=1000)
    with pytest.raises(ErrorServerBusy):
        account_for(ALICE, retry_policy=FailFast()).calendar.refresh()


def test_connection_reset_is_a_connection_error(
    ews: EwsEmulator, account_for: Callable[..., Account]
) -> None:
    add_fault(ews, kind="connection_reset", count=1)
    with pytest.raises(requests.ConnectionError):
        post(ews, GET_CALENDAR)

    add_fault(ews, kind="connection_reset", operation="GetFolder", count=1)
    account = account_for(ALICE, retry_policy=FailFast())
    # exchangelib reports a dropped connection as a timeout (a transient error it would retry under FaultTolerance).
    with pytest.raises(ErrorTimeoutExpired):
        account.calendar.refresh()
    account.calendar.refresh()
    assert stats(ews)["faults_fired"] == {"connection_reset": 2}


def test_delay_slows_only_the_matching_operation(
    ews: EwsEmulator, account_for: Callable[..., Account]
) -> None:
    account = account_for(ALICE)
    account.calendar.refresh()
    add_fault(ews, kind="delay", operation="CreateItem", delay_ms=500)
    started = time.monotonic()
    account.calendar.refresh()
    assert time.monotonic() - started < 0.4
    started = time.monotonic()
    book(account)
    assert time.monotonic() - started >= 0.5


def test_faults_are_scoped_by_mailbox_and_probability(
    ews: EwsEmulator, account_for: Callable[..., Account]
) -> None:
    ews.add_account("carol@example.com", PASSWORD)
    add_fault(ews, kind="server_busy", mailbox="CAROL@example.com", back_off_ms=100)
    add_fault(ews, kind="server_busy", mailbox=ALICE, probability=0.0)
    book(account_for(ALICE))  # neither rule fires for Alice
    with pytest.raises(ErrorServerBusy):
        account_for("carol@example.com").calendar.refresh()
    ews.control("DELETE", "faults")
    account_for("carol@example.com").calendar.refresh()
    assert stats(ews)["faults_fired"] == {"server_busy": 1}


# ---- hostile and broken requests -----------------------------------------------------------------------------------


def test_malformed_xml_is_a_schema_validation_fault(ews: EwsEmulator) -> None:
    response = post(ews, GET_CALENDAR.replace("</m:GetFolder>", "</m:GetFolderr>"))
    assert response.status_code == 500
    code, detail = fault(response)
    assert code == "ErrorSchemaValidation"
    violation = detail.findtext(f"{{{T_NS}}}MessageXml/{{{T_NS}}}Violation") or ""
    assert "not well-formed" in violation and "GetFolderr" in violation
    assert detail.findtext(f"{{{T_NS}}}MessageXml/{{{T_NS}}}LineNumber") == "7"


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>
""" + ENVELOPE.split("\n", 1)[1].replace(
    "{body}",
    """<m:CreateItem SendMeetingInvitations="SendToNone"><m:Items>
<t:CalendarItem><t:Subject>&lol4;</t:Subject><t:Start>2025-07-07T09:00:00Z</t:Start><t:End>2025-07-07T10:00:00Z</t:End>
</t:CalendarItem></m:Items></m:CreateItem>""",
)

EXTERNAL_ENTITY = (
    BILLION_LAUGHS.split("<!DOCTYPE", 1)[0]
    + """<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
"""
    + BILLION_LAUGHS.split("]>\n", 1)[1].replace("&lol4;", "&xxe;")
)


@pytest.mark.parametrize("body", [BILLION_LAUGHS, EXTERNAL_ENTITY], ids=["billion-laughs", "external-entity"])
def test_dtds_and_entities_are_refused_without_expansion(ews: EwsEmulator, body: str) -> None:
    response = post(ews, body)
    assert response.status_code == 500
    code, detail = fault(response)
    assert code == "ErrorSchemaValidation"
    assert "DTD" in (detail.findtext(f"{{{T_NS}}}MessageXml/{{{T_NS}}}Violation") or "")
    assert b"root:" not in response.content and b"lollol" not in response.content
    assert ews.items(ALICE) == []  # nothing was created


def test_a_body_over_10_mb_is_refused(ews: EwsEmulator) -> None:
    padding = "<!-- " + "x" * (10 * 1024 * 1024) + " -->"
    response = post(ews, GET_CALENDAR + padding)
    assert response.status_code == 413

    # Without a Content-Length (chunked), the emulator stops reading just past the limit.
    def chunks() -> Iterator[bytes]:
        yield GET_CALENDAR.encode()
        for _ in range(11):
            yield b" " * (1024 * 1024)

    assert post(ews, chunks()).status_code == 413  # type: ignore[arg-type]
    assert post(ews, GET_CALENDAR).status_code == 200


def test_schema_invalid_request_names_the_line_and_position(ews: EwsEmulator) -> None:
    body = ENVELOPE.format(
        body="""<m:CreateItem SendMeetingInvitations="SendToNone"><m:Items>
<t:CalendarItem><t:Subject>x</t:Subject><t:Colour>Red</t:Colour></t:CalendarItem>
</m:Items></m:CreateItem>"""
    )
    response = post(ews, body)
    assert response.status_code == 500
    code, detail = fault(response)
    assert code == "ErrorSchemaValidation"
    xml = detail.find(f"{{{T_NS}}}MessageXml")
    assert xml is not None
    assert xml.findtext(f"{{{T_NS}}}LineNumber") == "7"
    assert xml.findtext(f"{{{T_NS}}}LinePosition") == str(body.splitlines()[6].index("<t:Colour>") + 1)
    assert "Colour" in (xml.findtext(f"{{{T_NS}}}Violation") or "")
    assert ews.items(ALICE) == []


def test_an_unsupported_operation_is_an_invalid_request_fault(ews: EwsEmulator) -> None:
    response = post(ews, ENVELOPE.format(body="<m:GetRoomLists/>"))
    assert response.status_code == 500
    assert fault(response)[0] == "ErrorInvalidRequest"


def test_get_on_the_ews_url_is_not_allowed(ews: EwsEmulator) -> None:
    response = requests.get(ews.ews_url, auth=(ALICE, PASSWORD), timeout=10)
    assert response.status_code == 405 and response.headers["Allow"] == "POST"


@pytest.mark.parametrize("body", ['{"operation": "GetFolder"}', "<html><body>hello</body></html>", ""])
def test_a_non_soap_body_is_a_fault(ews: EwsEmulator, body: str) -> None:
    response = post(ews, body)
    assert response.status_code == 500
    assert fault(response)[0] == "ErrorSchemaValidation"


# ---- control-plane mistakes ----------------------------------------------------------------------------------------


def test_control_plane_rejects_duplicates_bad_json_and_unknown_faults(ews: EwsEmulator) -> None:
    duplicate = ews.http.post(
        f"{ews.base_url}/_emulator/accounts",
        json={"address": "Alice@Example.COM", "password": "other"},
        timeout=10,
    )
    assert duplicate.status_code == 409

    bad_json = ews.http.post(
        f"{ews.base_url}/_emulator/accounts",
        data="{not json",
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert bad_json.status_code == 400 and "JSON" in bad_json.json()["error"]

    unknown = ews.http.post(f"{ews.base_url}/_emulator/faults", json={"kind": "meteor_strike"}, timeout=10)
    assert unknown.status_code == 400 and "kind" in unknown.json()["error"]
    assert stats(ews)["accounts"] == 1
