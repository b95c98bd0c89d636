"""Acceptance 3: the JSON carries every field jrni-api.md lists for bookings, blocks, people and resources.

The lists are copied from ../shared/reference/jrni-api.md (§2.3 booking JSON, §2.4 block response, §2.5 people and
resources, plus ews_email from the Liquid drops), so a field dropped from the emulator fails here.
"""

from __future__ import annotations

from .conftest import ALICE, CONSULTATION, NORTH, ROOM_1, JrniClient, Receiver, control

BOOKING_FIELDS = set(
    [
        "id",
        "full_describe",
        "resource_name",
        "person_name",
        "service_name",
        "resource_id",
        "person_id",
        "service_id",
        "member_id",
        "client_id",
        "client_name",
        "client_email",
        "client_phone",
        "client_mobile",
        "mobile",
        "datetime",
        "end_datetime",
        "duration",
        "duration_span",
        "listed_duration",
        "pre_time",
        "post_time",
        "on_waitlist",
        "company_id",
        "company_name",
        "attended",
        "booking_updated",
        "updated_at",
        "created_at",
        "price",
        "paid",
        "quantity",
        "is_cancelled",
        "multi_status",
        "current_multi_status",
        "purchase_id",
        "purchase_ref",
        "event_chain_id",
        "slot_id",
        "notes",
        "private_note",
        "channel",
        "status",
        "settings",
        "slot_settings",
        "answers_summary",
        "questions",
        "min_cancellation_time",
        "booked_by",
        "booked_by_email",
        "external_cal_id",
        "cancelled_by",
        "cancellation_date",
        "cancel_reason",
        "people_ids",
        "customer_count",
        "_embedded",
        "_links",
    ]
)
BOOKING_NOTES = {"public", "private"}
BOOKING_SETTINGS = {"obfuscated_id", "who_updated"}
BOOKING_CLIENT = set(
    [
        "first_name",
        "last_name",
        "email",
        "mobile",
        "phone",
        "address1",
        "address2",
        "address3",
        "address4",
        "address5",
        "postcode",
        "country",
        "id",
        "reference",
        "time_zone",
    ]
)
BOOKING_LINKS = {
    "self",
    "client",
    "comms",
    "check_in",
    "questions",
    "edit",
    "cancel",
    "address",
    "person",
    "resource",
    "service",
    "company",
}

SLOT_FIELDS = set(
    [
        "id",
        "datetime",
        "end_datetime",
        "full_describe",
        "status",
        "spaces_booked",
        "spaces_reserved",
        "spaces_blocked",
        "num_spaces",
        "spaces_wait",
        "person_id",
        "duration",
        "duration_span",
        "company_id",
        "_links",
    ]
)
SLOT_LINKS = {"self", "person", "bookings", "booking_details"}

PERSON_FIELDS = set(
    [
        "id",
        "name",
        "type",
        "email",
        "mobile",
        "phone_prefix",
        "reference",
        "deleted",
        "disabled",
        "company_id",
        "person_companies",
        "order",
        "ical_link",
        "queuing_disabled",
        "never_booked",
        "service_ids",
        "resource_ids",
        "schedule_id",
        "ews_email",
        "_links",
    ]
)
PERSON_LINKS = set(
    [
        "self",
        "items",
        "images",
        "companies",
        "edit",
        "attendance",
        "block",
        "cal",
        "overlay_cal",
        "schedule",
        "enabled_services",
        "enabled_resources",
    ]
)
RESOURCE_FIELDS = set(
    [
        "id",
        "name",
        "description",
        "type",
        "email",
        "deleted",
        "disabled",
        "company_id",
        "order",
        "address_id",
        "schedule_id",
        "service_ids",
        "person_ids",
        "ews_email",
        "_links",
    ]
)
RESOURCE_LINKS = {"self", "items", "images", "address", "edit", "block", "schedule"}


def _missing(expected: set[str], actual: dict) -> set[str]:
    return expected - set(actual)


def test_booking_has_every_documented_field(client: JrniClient) -> None:
    booking = client.ok(
        "POST",
        f"/api/v1/admin/{NORTH}/bookings",
        status=201,
        json={
            "datetime": "2026-06-01T09:00:00+01:00",
            "service_id": CONSULTATION,
            "person_id": ALICE,
            "resource_id": ROOM_1,
            "client": {"first_name": "Cleo", "last_name": "Client", "email": "cleo@example.test"},
        },
    )
    for shown in (booking, client.ok("GET", booking["_links"]["self"]["href"])):
        assert _missing(BOOKING_FIELDS, shown) == set()
        assert _missing(BOOKING_NOTES, shown["notes"]) == set()
        assert _missing(BOOKING_SETTINGS, shown["settings"]) == set()
        assert _missing(BOOKING_CLIENT, shown["_embedded"]["client"]) == set()
        assert _missing(BOOKING_LINKS, shown["_links"]) == set()
        assert shown["_links"]["cancel"]["templated"] is True


def test_block_slot_has_every_documented_field(client: JrniClient) -> None:
    slot = client.ok(
        "PUT",
        f"/api/v1/admin/{NORTH}/people/{ALICE}/block",
        json={"start_time": "2026-06-01T11:00:00", "end_time": "2026-06-01T12:00:00"},
        status=201,
    )
    assert _missing(SLOT_FIELDS, slot) == set()
    assert _missing(SLOT_LINKS, slot["_links"]) == set()
    block_booking = client.ok("GET", slot["_links"]["booking_details"]["href"])
    assert _missing(BOOKING_FIELDS, block_booking) == set()


def test_person_and_resource_have_every_documented_field(client: JrniClient) -> None:
    person = client.ok("GET", f"/api/v1/admin/{NORTH}/people/{ALICE}")
    assert _missing(PERSON_FIELDS, person) == set()
    assert _missing(PERSON_LINKS, person["_links"]) == set()
    listed = client.ok("GET", f"/api/v1/admin/{NORTH}/people")["_embedded"]["people"][0]
    assert set(listed) == set(person)
    resource = client.ok("GET", f"/api/v1/admin/{NORTH}/resources/{ROOM_1}")
    assert _missing(RESOURCE_FIELDS, resource) == set()
    assert _missing(RESOURCE_LINKS, resource["_links"]) == set()


def test_booking_field_types(client: JrniClient) -> None:
    booking = client.ok(
        "POST",
        f"/api/v1/admin/{NORTH}/bookings",
        status=201,
        json={
            "datetime": "2026-06-01T09:00:00+01:00",
            "service_id": CONSULTATION,
            "person_id": ALICE,
            "private_note": "Bring the deeds",
        },
    )
    assert booking["multi_status"] == {}
    checked_in = client.ok(
        "PUT", booking["_links"]["self"]["href"], json={"current_multi_status": "checked_in"}
    )
    assert isinstance(checked_in["multi_status"], dict)
    assert list(checked_in["multi_status"]) == ["checked_in"]
    assert checked_in["multi_status"]["checked_in"].endswith("Z")
    assert checked_in["current_multi_status"] == "checked_in"
    notes = checked_in["notes"]
    assert notes["public"] == []
    assert notes["private"] == [{"id": 1, "note": "Bring the deeds"}]
    assert (checked_in["duration"], checked_in["duration_span"]) == (30, 1800)  # minutes, seconds
    assert isinstance(checked_in["people_ids"], list) and checked_in["people_ids"] == [ALICE]
    assert isinstance(checked_in["settings"]["obfuscated_id"], str)
    for key in ("id", "purchase_id", "status", "company_id", "pre_time", "post_time", "price", "quantity"):
        assert type(checked_in[key]) is int, key
    for key in ("is_cancelled", "booking_updated", "attended", "on_waitlist", "is_reservation"):
        assert type(checked_in[key]) is bool, key


# The data webhook (dev.jrni.com /reference/data-webook-payload; jrni-gaps §3, §5) and the legacy purchase callback
# (BBDOC webhook.md); the notification webhook's extCalendarId is added to the appointment.
DATA_TOP = {
    "appointment",
    "queuing",
    "company",
    "service",
    "staff",
    "resource",
    "customer",
    "additionalAttendeeCustomers",
    "additionalAttendeeStaff",
    "triggerName",
    "triggerTime",
}
DATA_APPOINTMENT = {
    "origin",
    "bookingId",
    "longId",
    "customerStartTime",
    "customerEndTime",
    "companyStartTime",
    "companyEndTime",
    "duration",
    "bookedBy",
    "channel",
    "status",
    "checkInStatus",
    "checkInStatusList",
    "joinVideoURL",
    "customerModifyURL",
    "adminModifyURL",
    "customBookingFields",
    "extCalendarId",
}
DATA_COMPANY = {"name", "address", "timezone", "jrniId", "externalId"}
DATA_SERVICE = {"name", "category", "categoryId", "method", "methodId", "jrniId", "externalId"}
DATA_STAFF = {"name", "email", "jrniId", "externalId", "phoneNumber", "customStaffFields"}
DATA_RESOURCE = {"name", "address", "jrniId", "externalId"}
DATA_CUSTOMER = {"firstName", "lastName", "email", "mobile", "homePhone"}
LEGACY_PURCHASE = {
    "id",
    "long_id",
    "client_name",
    "company_id",
    "created_at",
    "total_price",
    "price",
    "paid",
    "deposit",
    "_embedded",
    "_links",
}
LEGACY_ENTRY_EXTRA = {"booking_type", "first_name", "last_name", "email", "address"}


def test_webhook_payloads_have_every_documented_field(
    client: JrniClient, base_url: str, receiver: Receiver
) -> None:
    for fmt in ("data", "legacy"):
        control(
            base_url, "POST", "webhooks", status=201, json={"url": f"{receiver.url}/{fmt}", "format": fmt}
        )
    client.ok(
        "POST",
        f"/api/v1/admin/{NORTH}/bookings",
        status=201,
        json={
            "datetime": "2026-06-01T09:00:00+01:00",
            "service_id": CONSULTATION,
            "person_id": ALICE,
            "resource_id": ROOM_1,
            "client": {"first_name": "Cleo", "last_name": "Client", "email": "cleo@example.test"},
        },
    )
    got = {r.path: r.body for r in receiver.exactly(2)}
    data = got["/data"]
    assert set(data) == DATA_TOP
    assert data["queuing"] is None
    assert set(data["appointment"]) == DATA_APPOINTMENT
    assert set(data["company"]) == DATA_COMPANY
    assert set(data["service"]) == DATA_SERVICE
    assert set(data["staff"]) == DATA_STAFF
    assert data["staff"]["customStaffFields"] == []
    assert set(data["resource"]) == DATA_RESOURCE
    assert set(data["customer"]) == DATA_CUSTOMER
    purchase = got["/legacy"]
    assert set(purchase) == LEGACY_PURCHASE
    assert {"client", "member", "bookings"} <= set(purchase["_embedded"])
    assert {"self", "ical", "gcal", "company"} <= set(purchase["_links"])
    (entry,) = purchase["_embedded"]["bookings"]
    assert _missing(BOOKING_FIELDS | LEGACY_ENTRY_EXTRA, entry) == set()
    assert _missing(BOOKING_CLIENT, purchase["_embedded"]["client"]) == set()
