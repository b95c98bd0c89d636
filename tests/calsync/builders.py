"""Small builders for domain values, so tests say only what matters to them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from calsync.domain import (
    Booking,
    BookingKind,
    BookingStatus,
    ExchangeConnection,
    Integration,
    JrniConnection,
    JrniKey,
    Mapping,
    ResourceKind,
    SyncOptions,
    TimeWindow,
)

INTEGRATION = "int-1"
ALICE = "alice@example.com"
BOB = "bob@example.com"
ROOM = "room-1@example.com"

MAPPINGS = [
    Mapping(INTEGRATION, ResourceKind.PERSON, "11", ALICE),
    Mapping(INTEGRATION, ResourceKind.PERSON, "12", BOB),
    Mapping(INTEGRATION, ResourceKind.RESOURCE, "21", ROOM),
]


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2025, 7, day, hour, minute, tzinfo=UTC)


def booking(
    booking_id: str = "501",
    *,
    person: str | None = "11",
    resource: str | None = None,
    start: datetime | None = None,
    minutes: int = 60,
    status: BookingStatus = BookingStatus.CONFIRMED,
    kind: BookingKind = BookingKind.APPOINTMENT,
    pre: int = 0,
    post: int = 0,
) -> Booking:
    begin = start or at(7, 9)
    return Booking(
        key=JrniKey("100", booking_id),
        kind=kind,
        status=status,
        window=TimeWindow(begin, begin + timedelta(minutes=minutes)),
        person_id=person,
        resource_id=resource,
        pre_time=timedelta(minutes=pre),
        post_time=timedelta(minutes=post),
    )


DEFAULT_OPTIONS = SyncOptions()


def integration(**overrides: object) -> Integration:
    values: dict[str, object] = {
        "id": INTEGRATION,
        "name": "Example Bank",
        # A test integration (the emulators, on loopback http) with the secrets an integration owns.
        "jrni": JrniConnection("http://127.0.0.1:8088", "100", f"calsync/{INTEGRATION}/jrni"),
        "exchange": ExchangeConnection(
            "http://127.0.0.1:8089/EWS/Exchange.asmx", f"calsync/{INTEGRATION}/exchange"
        ),
        "webhook_secret_name": f"calsync/{INTEGRATION}/webhook",
        "test_endpoints": True,
    }
    values.update(overrides)
    return Integration(**values)  # type: ignore[arg-type]
