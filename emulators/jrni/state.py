"""The JRNI emulator's in-memory model: companies, staff, bookings, blocks, tokens. No HTTP, no I/O.

Every rule JRNI applies to a change (clashes, 403 on cancelled or external bookings, token scope) lives here and
raises a ``JrniError``; ``app.py`` maps those errors to HTTP responses in one place.
"""

from __future__ import annotations

import copy
import math
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

STATUS_BLOCKED = 3  # BBNG models/booking.js: status_blocked
STATUS_BOOKED = 4  # BBNG models/booking.js: status_booked
CHANNELS = ("Administrator", "Call Centre", "Client")  # dev.jrni.com /docs/booking-drop

BOOKING_TYPES = ("booking", "reservation")  # a service's booking_type_public / booking_type_member

# Bounds that keep every stored time renderable in any company offset (a year-9999 booking would overflow when
# shown at +01:00) and every length sane. JRNI works in whole minutes.
MIN_YEAR, MAX_YEAR = 1900, 2200
MAX_DURATION_MINUTES = 366 * 24 * 60  # a booking or block lasts at most a (leap) year
MAX_BUFFER_MINUTES = 24 * 60  # pre_time / post_time: at most a day
MINUTES_PER_DAY = 24 * 60  # BBNG's `time`: minutes after midnight, 0..1439

_INTEGER = re.compile(r"-?[0-9]+")  # ASCII digits only: "²".isdigit() is True but int("²") fails

CLIENT_DETAILS = (
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
)  # optional client {…} keys kept beside first_name / last_name

ADDRESS_TEXT = (
    "name",
    "address1",
    "address2",
    "address3",
    "address4",
    "address5",
    "postcode",
    "country",
    "map_url",
    "phone",
)  # an address's text fields (BBDOC company.md); lat and long are numbers

# JRNI's question types (BBNG question directives); a question's answer is kept as text whatever its type.
DETAIL_TYPES = (
    "text_field",
    "text_area",
    "select",
    "select-price",
    "radio",
    "radio-price",
    "check",
    "check-price",
    "date",
)
_SLUG = re.compile(r"[a-z][a-z0-9_]*")  # a question reference: what Liquid's booking.<reference> names

FIRST_BOOKING_ID = 100001
FIRST_SLOT_ID = 900001  # a different range from bookings, so a client mixing the two ids gets a 404
FIRST_ADDRESS_ID = 52001
FIRST_ANSWER_ID = 700001


class JrniError(Exception):
    """A refusal JRNI would answer with a 4xx status."""

    status = 400
    reason = "Bad Request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequestError(JrniError):
    status, reason = 400, "Bad Request"


class UnauthorizedError(JrniError):
    status, reason = 401, "Unauthorized"


class ForbiddenError(JrniError):
    status, reason = 403, "Forbidden"


class NotFoundError(JrniError):
    status, reason = 404, "Not Found"


class ConflictError(JrniError):
    status, reason = 409, "Conflict"


class Clock:
    """Wall-clock time (UTC) that tests can move forward without sleeping."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        """The current emulated time, timezone-aware UTC."""
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> None:
        """Move emulated time forward."""
        self.offset += timedelta(seconds=seconds)


@dataclass
class App:
    app_id: str
    app_key: str


@dataclass
class Address:
    """A postal address (BBDOC company.md): a company's, shown in the company JSON and at ``/{c}/addresses/{id}``."""

    id: int
    company_id: int
    name: str | None = None
    address1: str | None = None
    address2: str | None = None
    address3: str | None = None
    address4: str | None = None
    address5: str | None = None
    postcode: str | None = None
    country: str | None = None
    map_url: str | None = None
    phone: str | None = None
    lat: float | None = None
    long: float | None = None


@dataclass
class Company:
    id: int
    name: str
    timezone: str
    parent_id: int | None = None
    description: str | None = None
    reference: str | None = None  # shown as both ``reference`` and ``ref`` (the company drop has both)
    currency_code: str = "GBP"
    country_code: str = "gb"
    locale: str = "en"
    website: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # the drop's ``extras.*``
    address: Address | None = None

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass
class Admin:
    email: str
    password: str
    company_id: int
    name: str = ""


@dataclass
class Bookable:
    """What staff members and resources have alike: a calendar that bookings and blocks occupy."""

    id: int
    company_id: int
    name: str
    email: str | None = None
    ews_email: str | None = None
    schedule_id: int | None = None
    disabled: bool = False
    deleted: bool = False
    description: str | None = None
    phone: str | None = None
    mobile: str | None = None
    reference: str | None = None
    group_id: int | None = None
    group_name: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class Person(Bookable):
    """A staff member."""


@dataclass
class Resource(Bookable):
    """A resource, typically a meeting room."""


@dataclass
class Service:
    id: int
    company_id: int
    name: str
    duration: int
    pre_time: int = 0
    post_time: int = 0
    booking_type_public: str = "booking"  # "reservation": bookings start awaiting confirmation (jrni-gaps §1)
    booking_type_member: str = "booking"
    description: str | None = None
    price: int = 0  # in the currency's minor unit (pence), as JRNI's ``prices``
    reference: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    detail_group_id: int | None = None  # the question group asked when booking it

    def starts_as_reservation(self, channel: str) -> bool:
        """Whether a booking made on this service through ``channel`` starts as a reservation (README.md)."""
        kind = self.booking_type_public if channel == "Client" else self.booking_type_member
        return kind == "reservation"


@dataclass
class Schedule:
    id: int
    company_id: int
    name: str
    rules: dict[str, str]


@dataclass
class Client:
    id: int
    company_id: int
    first_name: str = ""
    last_name: str = ""
    email: str | None = None
    mobile: str | None = None
    phone: str | None = None
    address1: str | None = None
    address2: str | None = None
    address3: str | None = None
    address4: str | None = None
    address5: str | None = None
    postcode: str | None = None
    country: str | None = None
    reference: str | None = None

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


@dataclass
class Question:
    """A custom booking question (BBDOC admin-bookings.md ``_embedded.answers[]._embedded.question``).

    ``reference`` is its slug: the Liquid booking drop shows the answer as ``booking.<reference>``.
    """

    id: int
    company_id: int
    name: str
    reference: str
    detail_type: str = "text_field"
    required: bool = False
    admin_only: bool = False
    help_text: str | None = None
    options: list[str] = field(default_factory=list)
    detail_group_id: int | None = None


@dataclass
class Answer:
    """A booking's answer to one question, kept as text."""

    id: int
    question_id: int
    value: str


@dataclass
class Token:
    token: str
    email: str
    company_id: int  # the company the admin logged in at; valid there and for its descendants
    last_used: datetime
    expired: bool = False


@dataclass
class Booking:
    """An appointment (status 4) or a block (status 3, with a slot)."""

    id: int
    company_id: int
    start: datetime  # UTC
    end: datetime  # UTC
    status: int = STATUS_BOOKED
    service_id: int | None = None
    person_id: int | None = None
    resource_id: int | None = None
    client_id: int | None = None
    pre_time: int = 0
    post_time: int = 0
    channel: str = "Administrator"
    reservation: bool = False  # awaiting confirmation
    external: bool = False  # "made externally": JRNI refuses to reschedule it (403)
    external_cal_id: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    private_note: str | None = None
    current_multi_status: str | None = None
    is_cancelled: bool = False
    cancelled_by: str | None = None
    cancel_reason: str | None = None
    cancellation_date: datetime | None = None
    booked_by: str | None = None  # a name, as JRNI shows it ("Admin User")
    booked_by_email: str | None = None
    slot_id: int | None = None
    purchase_id: int = 0
    price: int = 0
    answers: list[Answer] = field(default_factory=list)  # by question id
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def duration(self) -> int:
        return int((self.end - self.start).total_seconds() // 60)

    @property
    def is_block(self) -> bool:
        return self.status == STATUS_BLOCKED

    def snapshot(self) -> Booking:
        """A copy that later changes do not reach (webhook payloads are built from what it was then)."""
        return copy.deepcopy(self)

    def busy_interval(self) -> tuple[datetime, datetime]:
        """The time this occupies: a booking's buffers (pre/post time) count, as in BBNG's "full time"."""
        if self.is_block:
            return self.start, self.end
        return self.start - timedelta(minutes=self.pre_time), self.end + timedelta(minutes=self.post_time)


# ---------------------------------------------------------------------------------------------------- parsing


def parse_datetime(value: Any, name: str) -> datetime:
    """An ISO-8601 timestamp as aware UTC; without an offset it is read as UTC, as JRNI does (BBDOC people.md).

    Fractions of a second are dropped (JRNI shows whole seconds, so a stored fraction would make clashes and
    changes the client cannot see), and years outside 1900-2200 are refused so every time can be rendered.
    """
    if not isinstance(value, str):
        raise BadRequestError(f"{name} must be an ISO-8601 date-time string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise BadRequestError(f"{name} is not an ISO-8601 date-time: {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    if not MIN_YEAR <= parsed.year <= MAX_YEAR:
        raise BadRequestError(f"{name} must be between the years {MIN_YEAR} and {MAX_YEAR}: {value!r}")
    return check_year(parsed.astimezone(UTC).replace(microsecond=0), name)


def check_year(value: datetime, name: str) -> datetime:
    """``value`` if its year is within the bounds every stored time keeps (see ``MIN_YEAR``), else 400."""
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise BadRequestError(f"{name} must be between the years {MIN_YEAR} and {MAX_YEAR}")
    return value


def parse_date(value: Any, name: str) -> date:
    """A ``YYYY-MM-DD`` date."""
    if not isinstance(value, str):
        raise BadRequestError(f"{name} must be a YYYY-MM-DD string")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise BadRequestError(f"{name} is not a YYYY-MM-DD date: {value!r}") from None


def parse_int(value: Any, name: str, minimum: int | None = None, maximum: int | None = None) -> int:
    """An integer from JSON or a query string (JRNI accepts ids as numbers or digit strings)."""
    if isinstance(value, bool):
        raise BadRequestError(f"{name} must be an integer")
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()) and len(value.strip()) <= 30:
        value = int(value.strip())
    if not isinstance(value, int):
        raise BadRequestError(f"{name} must be an integer")
    if minimum is not None and value < minimum:
        raise BadRequestError(f"{name} must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise BadRequestError(f"{name} must be at most {maximum}")
    return value


def parse_bool(value: Any, name: str) -> bool:
    """A boolean from JSON, or ``true``/``false``/``1``/``0`` from a query string."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "1", "false", "0"):
        return value.lower() in ("true", "1")
    raise BadRequestError(f"{name} must be true or false")


def parse_minutes(value: Any, name: str, minimum: int, maximum: int) -> int:
    """A length in whole minutes (duration, pre_time, post_time), bounded so the end can always be computed."""
    return parse_int(value, name, minimum, maximum)


def _opt_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise BadRequestError(f"{key} must be a string")
    return value


def parse_rules(value: Any, name: str) -> dict[str, str]:
    """Legacy schedule rules: keys ``YYYY-MM-DD`` or a weekday digit (0 = Sunday), values ``HHMM-HHMM,...``."""
    if not isinstance(value, dict):
        raise BadRequestError(f"{name} must be an object")
    rules: dict[str, str] = {}
    for key, ranges in value.items():
        if not (len(key) == 1 and key in "0123456"):
            parse_date(key, f"{name} key")
        if isinstance(ranges, list):
            ranges = ",".join(str(r) for r in ranges)
        if not isinstance(ranges, str):
            raise BadRequestError(f"{name}[{key}] must be a string of HHMM-HHMM ranges")
        if ranges != "None":
            for part in ranges.split(","):
                _parse_range(part, f"{name}[{key}]")
        rules[key] = ranges
    return rules


def _parse_range(part: str, name: str) -> tuple[str, str]:
    bits = part.strip().split("-")
    if len(bits) != 2 or not all(len(b) == 4 and b.isdigit() for b in bits):
        raise BadRequestError(f"{name} has a range that is not HHMM-HHMM: {part!r}")
    return bits[0], bits[1]


# ---------------------------------------------------------------------------------------------------- seed


_STAFF_DETAILS = {"description", "phone", "mobile", "reference", "group_id", "group_name", "extra"}
_COMPANY_DETAILS = {"description", "reference", "currency_code", "country_code", "locale", "website", "extra"}

_SEED_SCHEMA: dict[str, tuple[set[str], set[str]]] = {
    # section: (required keys, optional keys)
    "apps": ({"app_id", "app_key"}, set()),
    "companies": ({"id", "name", "timezone"}, {"parent_id", "address"} | _COMPANY_DETAILS),
    "admins": ({"email", "password", "company_id"}, {"name"}),
    "people": (
        {"id", "company_id", "name", "email"},
        {"ews_email", "schedule_id", "disabled", "deleted"} | _STAFF_DETAILS,
    ),
    "resources": (
        {"id", "company_id", "name"},
        {"email", "ews_email", "schedule_id", "disabled", "deleted"} | _STAFF_DETAILS,
    ),
    "services": (
        {"id", "company_id", "name", "duration"},
        {
            "pre_time",
            "post_time",
            "booking_type_public",
            "booking_type_member",
            "description",
            "price",
            "reference",
            "extra",
            "detail_group_id",
        },
    ),
    "schedules": ({"id", "company_id", "name", "rules"}, set()),
    "questions": (
        {"id", "company_id", "name", "reference"},
        {"detail_type", "required", "admin_only", "help_text", "options", "detail_group_id"},
    ),
    "clients": ({"id", "company_id", "first_name", "last_name"}, set(CLIENT_DETAILS) | {"reference"}),
}


def _text(row: dict[str, Any], key: str, where: str) -> str | None:
    """An optional string field of a seed row (absent or null: None)."""
    value = row.get(key)
    if value is not None and not isinstance(value, str):
        raise BadRequestError(f"{where}.{key} must be a string")
    return value


def parse_extra(value: Any, name: str) -> dict[str, Any]:
    """Custom fields (``extra``, the drops' ``extras.*``): an object of strings, numbers, booleans or nulls."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequestError(f"{name} must be an object")
    for key, item in value.items():
        if not (item is None or isinstance(item, str | int | float | bool)):
            raise BadRequestError(f"{name}.{key} must be a string, number, boolean or null")
    return dict(value)


def _parse_address(value: Any, where: str, company_id: int) -> Address | None:
    """A company's ``address`` object from the seed (id 0 until stored)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadRequestError(f"{where} must be an object")
    unknown = set(value) - set(ADDRESS_TEXT) - {"lat", "long"}
    if unknown:
        raise BadRequestError(f"{where} has unknown key(s): {', '.join(sorted(unknown))}")
    coordinates: dict[str, float | None] = {}
    for key, bound in (("lat", 90), ("long", 180)):
        number = value.get(key)
        if number is not None and (
            isinstance(number, bool)
            or not isinstance(number, int | float)
            or not math.isfinite(number)
            or not -bound <= number <= bound
        ):
            raise BadRequestError(f"{where}.{key} must be a number from -{bound} to {bound}")
        coordinates[key] = None if number is None else float(number)
    address = Address(id=0, company_id=company_id, lat=coordinates["lat"], long=coordinates["long"])
    for key in ADDRESS_TEXT:
        setattr(address, key, _text(value, key, where))
    return address


def answer_text(value: Any, name: str) -> str:
    """An answer as JRNI keeps it, text: a string as given, a number or boolean written out (``true``/``false``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
        return str(value)
    raise BadRequestError(f"{name} must be a string, number or boolean")


T = TypeVar("T")
Change = tuple[str, Booking]  # a webhook trigger and the booking as it was right after that change


class State:
    """Everything the emulator knows. Methods validate, apply and return; they never do I/O."""

    def __init__(self, clock: Clock | None = None, token_idle_seconds: float = 24 * 3600) -> None:
        self.clock = clock or Clock()
        self.token_idle_seconds = token_idle_seconds
        self.reset()

    def reset(self) -> None:
        """Forget everything."""
        self.apps: dict[str, App] = {}
        self.companies: dict[int, Company] = {}
        self.admins: dict[str, Admin] = {}
        self.people: dict[int, Person] = {}
        self.resources: dict[int, Resource] = {}
        self.services: dict[int, Service] = {}
        self.schedules: dict[int, Schedule] = {}
        self.clients: dict[int, Client] = {}
        self.questions: dict[int, Question] = {}
        self.bookings: dict[int, Booking] = {}
        self.slots: dict[int, int] = {}  # slot id -> id of its status-3 booking
        self.tokens: dict[str, Token] = {}
        self._next_booking_id = FIRST_BOOKING_ID
        self._next_slot_id = FIRST_SLOT_ID
        self._next_client_id = 1
        self._next_purchase_id = 500001
        self._next_address_id = FIRST_ADDRESS_ID
        self._next_answer_id = FIRST_ANSWER_ID

    # ------------------------------------------------------------------------------------------ seeding

    def seed(self, data: Any) -> None:
        """Add the seed's objects; the whole seed is checked before anything is added, so a bad seed changes nothing."""
        if not isinstance(data, dict):
            raise BadRequestError("seed must be a JSON object")
        unknown = set(data) - set(_SEED_SCHEMA)
        if unknown:
            raise BadRequestError(f"unknown seed section(s): {', '.join(sorted(unknown))}")
        for section, (required, optional) in _SEED_SCHEMA.items():
            rows = data.get(section, [])
            if not isinstance(rows, list):
                raise BadRequestError(f"seed.{section} must be a list")
            for index, row in enumerate(rows):
                where = f"seed.{section}[{index}]"
                if not isinstance(row, dict):
                    raise BadRequestError(f"{where} must be an object")
                missing = required - set(row)
                if missing:
                    raise BadRequestError(f"{where} is missing {', '.join(sorted(missing))}")
                extra = set(row) - required - optional
                if extra:
                    raise BadRequestError(f"{where} has unknown key(s): {', '.join(sorted(extra))}")

        now = self.clock.now()
        apps = [App(str(r["app_id"]), str(r["app_key"])) for r in data.get("apps", [])]
        companies = []
        for i, r in enumerate(data.get("companies", [])):
            where = f"seed.companies[{i}]"
            try:
                ZoneInfo(str(r["timezone"]))
            except (ZoneInfoNotFoundError, ValueError):
                raise BadRequestError(
                    f"{where}.timezone is not an IANA time zone: {r['timezone']!r}"
                ) from None
            parent = r.get("parent_id")
            company_id = parse_int(r["id"], f"{where}.id", 1)
            details = {key: _text(r, key, where) for key in _COMPANY_DETAILS - {"extra"}}
            companies.append(
                Company(
                    company_id,
                    str(r["name"]),
                    str(r["timezone"]),
                    None if parent is None else parse_int(parent, f"{where}.parent_id"),
                    extra=parse_extra(r.get("extra"), f"{where}.extra"),
                    address=_parse_address(r.get("address"), f"{where}.address", company_id),
                    **{key: value for key, value in details.items() if value is not None},
                )
            )
        company_ids = set(self.companies) | {c.id for c in companies}
        self._check_unique("companies", [c.id for c in companies], self.companies)
        for c in companies:
            if c.parent_id is not None and c.parent_id not in company_ids:
                raise BadRequestError(f"company {c.id} has unknown parent_id {c.parent_id}")

        def company_of(row: dict[str, Any], where: str) -> int:
            cid = parse_int(row["company_id"], f"{where}.company_id")
            if cid not in company_ids:
                raise BadRequestError(f"{where}.company_id {cid} is not a known company")
            return cid

        admins = [
            Admin(
                str(r["email"]),
                str(r["password"]),
                company_of(r, f"seed.admins[{i}]"),
                str(r.get("name", "")),
            )
            for i, r in enumerate(data.get("admins", []))
        ]
        schedules = [
            Schedule(
                parse_int(r["id"], f"seed.schedules[{i}].id", 1),
                company_of(r, f"seed.schedules[{i}]"),
                str(r["name"]),
                parse_rules(r["rules"], f"seed.schedules[{i}].rules"),
            )
            for i, r in enumerate(data.get("schedules", []))
        ]
        self._check_unique("schedules", [s.id for s in schedules], self.schedules)
        schedule_ids = set(self.schedules) | {s.id for s in schedules}

        def staff_fields(row: dict[str, Any], where: str) -> dict[str, Any]:
            schedule_id = row.get("schedule_id")
            if schedule_id is not None:
                schedule_id = parse_int(schedule_id, f"{where}.schedule_id")
                if schedule_id not in schedule_ids:
                    raise BadRequestError(f"{where}.schedule_id {schedule_id} is not a known schedule")
            return {
                "id": parse_int(row["id"], f"{where}.id", 1),
                "company_id": company_of(row, where),
                "name": str(row["name"]),
                "email": _opt_str(row, "email"),
                "ews_email": _opt_str(row, "ews_email"),
                "schedule_id": schedule_id,
                "disabled": parse_bool(row.get("disabled", False), f"{where}.disabled"),
                "deleted": parse_bool(row.get("deleted", False), f"{where}.deleted"),
                **{key: _text(row, key, where) for key in ("description", "phone", "mobile", "reference")},
                "group_id": None
                if row.get("group_id") is None
                else parse_int(row["group_id"], f"{where}.group_id", 1),
                "group_name": _text(row, "group_name", where),
                "extra": parse_extra(row.get("extra"), f"{where}.extra"),
                "created_at": now,
            }

        people = [
            Person(**staff_fields(r, f"seed.people[{i}]")) for i, r in enumerate(data.get("people", []))
        ]
        resources = [
            Resource(**staff_fields(r, f"seed.resources[{i}]"))
            for i, r in enumerate(data.get("resources", []))
        ]
        services = []
        for i, r in enumerate(data.get("services", [])):
            where = f"seed.services[{i}]"
            types = {}
            for key in ("booking_type_public", "booking_type_member"):
                types[key] = r.get(key, "booking")
                if types[key] not in BOOKING_TYPES:
                    raise BadRequestError(f"{where}.{key} must be 'booking' or 'reservation'")
            services.append(
                Service(
                    parse_int(r["id"], f"{where}.id", 1),
                    company_of(r, where),
                    str(r["name"]),
                    parse_minutes(r["duration"], f"{where}.duration", 1, MAX_DURATION_MINUTES),
                    parse_minutes(r.get("pre_time", 0), f"{where}.pre_time", 0, MAX_BUFFER_MINUTES),
                    parse_minutes(r.get("post_time", 0), f"{where}.post_time", 0, MAX_BUFFER_MINUTES),
                    **types,
                    description=_text(r, "description", where),
                    price=parse_int(r.get("price", 0), f"{where}.price", 0),
                    reference=_text(r, "reference", where),
                    extra=parse_extra(r.get("extra"), f"{where}.extra"),
                    detail_group_id=None
                    if r.get("detail_group_id") is None
                    else parse_int(r["detail_group_id"], f"{where}.detail_group_id", 1),
                )
            )
        questions = [
            self._seed_question(r, f"seed.questions[{i}]") for i, r in enumerate(data.get("questions", []))
        ]
        for question in questions:
            if question.company_id not in company_ids:
                raise BadRequestError(
                    f"question {question.id}: company_id {question.company_id} is not a known company"
                )
        references = {(q.company_id, q.reference): q.id for q in self.questions.values()}
        for question in questions:
            taken = references.setdefault((question.company_id, question.reference), question.id)
            if taken != question.id:
                raise BadRequestError(
                    f"question {question.id}: reference {question.reference!r} is already question {taken}'s "
                    "in that company (a reference names one answer in Liquid)"
                )
        clients = []
        for i, r in enumerate(data.get("clients", [])):
            where = f"seed.clients[{i}]"
            clients.append(
                Client(
                    id=parse_int(r["id"], f"{where}.id", 1),
                    company_id=company_of(r, where),
                    first_name=_text(r, "first_name", where) or "",
                    last_name=_text(r, "last_name", where) or "",
                    reference=_text(r, "reference", where),
                    **{key: _text(r, key, where) for key in CLIENT_DETAILS},
                )
            )
        self._check_unique("people", [p.id for p in people], self.people)
        self._check_unique("resources", [p.id for p in resources], self.resources)
        self._check_unique("services", [s.id for s in services], self.services)
        self._check_unique("admins", [a.email for a in admins], self.admins)
        self._check_unique("apps", [a.app_id for a in apps], self.apps)
        self._check_unique("questions", [q.id for q in questions], self.questions)
        self._check_unique("clients", [c.id for c in clients], self.clients)

        # Everything is valid: apply.
        self.apps.update({a.app_id: a for a in apps})
        for company in companies:
            if company.address is not None:
                company.address.id = self._next_address_id
                self._next_address_id += 1
        self.companies.update({c.id: c for c in companies})
        self.questions.update({q.id: q for q in questions})
        self.clients.update({c.id: c for c in clients})
        self._next_client_id = max([self._next_client_id, *(c.id + 1 for c in clients)])
        self.admins.update({a.email: a for a in admins})
        self.schedules.update({s.id: s for s in schedules})
        self.people.update({p.id: p for p in people})
        self.resources.update({r.id: r for r in resources})
        self.services.update({s.id: s for s in services})

    @staticmethod
    def _seed_question(row: dict[str, Any], where: str) -> Question:
        reference = row["reference"]
        if not isinstance(reference, str) or not _SLUG.fullmatch(reference):
            raise BadRequestError(
                f"{where}.reference must be a slug of lower-case letters, digits and _ starting with a letter "
                f"(like reason_for_visit): {reference!r}"
            )
        detail_type = row.get("detail_type", "text_field")
        if detail_type not in DETAIL_TYPES:
            raise BadRequestError(f"{where}.detail_type must be one of {', '.join(DETAIL_TYPES)}")
        options = row.get("options", [])
        if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
            raise BadRequestError(f"{where}.options must be a list of strings")
        return Question(
            id=parse_int(row["id"], f"{where}.id", 1),
            company_id=parse_int(row["company_id"], f"{where}.company_id"),
            name=_text(row, "name", where) or "",
            reference=reference,
            detail_type=detail_type,
            required=parse_bool(row.get("required", False), f"{where}.required"),
            admin_only=parse_bool(row.get("admin_only", False), f"{where}.admin_only"),
            help_text=_text(row, "help_text", where),
            options=list(options),
            detail_group_id=None
            if row.get("detail_group_id") is None
            else parse_int(row["detail_group_id"], f"{where}.detail_group_id", 1),
        )

    @staticmethod
    def _check_unique(section: str, ids: list[Any], existing: dict[Any, Any]) -> None:
        seen: set[Any] = set()
        for ident in ids:
            if ident in seen or ident in existing:
                raise BadRequestError(f"seed.{section}: duplicate id {ident!r}")
            seen.add(ident)

    # ------------------------------------------------------------------------------------------ auth

    def check_app(self, app_id: str | None, app_key: str | None) -> None:
        """Every API call names a known application; an App-Key, when sent, must match it."""
        app = self.apps.get(app_id or "")
        if app is None or (app_key is not None and app_key != app.app_key):
            raise UnauthorizedError("unknown App-Id or wrong App-Key")

    def login(self, email: Any, password: Any, company_id: int | None) -> tuple[Token, Admin]:
        """Mint an Auth-Token for an administrator, at their company or (parent/child) a descendant of it."""
        if not isinstance(email, str) or not isinstance(password, str):
            raise BadRequestError("email and password are required")
        admin = self.admins.get(email)
        if admin is None or not secrets.compare_digest(admin.password, password):
            raise UnauthorizedError("wrong email or password")
        login_company = admin.company_id if company_id is None else company_id
        if login_company not in self.companies:
            raise NotFoundError(f"company {login_company} not found")
        if not self.is_within(login_company, admin.company_id):
            raise ForbiddenError(f"administrator {email} has no access to company {login_company}")
        # The token reaches the company it was minted at and that company's descendants, not the admin's whole tree.
        token = Token(secrets.token_urlsafe(18), email, login_company, self.clock.now())
        self.tokens[token.token] = token
        return token, admin

    def check_token(self, token_value: str | None) -> Token:
        """The live token for this value. It is not refreshed here: ``touch_token`` does that once the call
        succeeded (JRNI: "24 h from last use"; a call that ends in 403/404/409 does not keep a token alive)."""
        token = self.tokens.get(token_value or "")
        now = self.clock.now()
        if token is None or token.expired:
            raise UnauthorizedError("missing or unknown Auth-Token")
        if (now - token.last_used).total_seconds() > self.token_idle_seconds:
            token.expired = True
            raise UnauthorizedError("Auth-Token expired")
        return token

    def touch_token(self, token: Token) -> None:
        """Restart a token's idle time after a successful call."""
        token.last_used = self.clock.now()

    def admin_name(self, token: Token) -> str:
        """How JRNI shows the administrator behind a token in ``booked_by`` / ``bookedBy``: the name, else e-mail."""
        admin = self.admins.get(token.email)
        return (admin.name if admin else "") or token.email

    def check_company_access(self, token: Token, company_id: int) -> Company:
        """The company, if the token reaches it: 404 for an unknown company, 403 for another company's token."""
        company = self.company(company_id)
        if not self.is_within(company_id, token.company_id):
            raise ForbiddenError(f"this Auth-Token is not valid for company {company_id}")
        return company

    def logout(self, token_value: str | None) -> None:
        """Forget a token; later calls with it get 401."""
        token = self.check_token(token_value)
        del self.tokens[token.token]

    def expire_all_tokens(self) -> int:
        """Expire every issued token now (the token_expiry fault); returns how many."""
        for token in self.tokens.values():
            token.expired = True
        return len(self.tokens)

    # ------------------------------------------------------------------------------------------ lookups

    def company(self, company_id: int) -> Company:
        """A company by id, or 404."""
        company = self.companies.get(company_id)
        if company is None:
            raise NotFoundError(f"company {company_id} not found")
        return company

    def is_within(self, company_id: int, ancestor_id: int) -> bool:
        """True when company_id is ancestor_id or one of its descendants."""
        seen: set[int] = set()
        current: int | None = company_id
        while current is not None and current not in seen:
            if current == ancestor_id:
                return True
            seen.add(current)
            parent = self.companies.get(current)
            current = parent.parent_id if parent else None
        return False

    def children(self, company_id: int) -> list[Company]:
        """The direct child companies."""
        return sorted((c for c in self.companies.values() if c.parent_id == company_id), key=lambda c: c.id)

    @staticmethod
    def _owned(table: dict[int, T], ident: int, company_id: int, kind: str) -> T:
        obj = table.get(ident)
        if obj is None:
            raise NotFoundError(f"{kind} {ident} not found")
        if obj.company_id != company_id:  # type: ignore[attr-defined]
            raise ForbiddenError(f"{kind} {ident} belongs to another company")
        return obj

    def person(self, company_id: int, person_id: int) -> Person:
        """A person of this company (404 unknown, 403 another company's)."""
        return self._owned(self.people, person_id, company_id, "person")

    def resource(self, company_id: int, resource_id: int) -> Resource:
        """A resource of this company (404 unknown, 403 another company's)."""
        return self._owned(self.resources, resource_id, company_id, "resource")

    def service(self, company_id: int, service_id: int) -> Service:
        """A service of this company (404 unknown, 403 another company's)."""
        return self._owned(self.services, service_id, company_id, "service")

    def schedule(self, company_id: int, schedule_id: int) -> Schedule:
        """A schedule of this company (404 unknown, 403 another company's)."""
        return self._owned(self.schedules, schedule_id, company_id, "schedule")

    def booking(self, company_id: int, booking_id: int) -> Booking:
        """A booking (or block booking) of this company (404 unknown, 403 another company's)."""
        return self._owned(self.bookings, booking_id, company_id, "booking")

    def slot(self, company_id: int, slot_id: int) -> Booking:
        """The block booking behind a slot (404 unknown or deleted, 403 another company's)."""
        booking_id = self.slots.get(slot_id)
        if booking_id is None:
            raise NotFoundError(f"slot {slot_id} not found")
        return self._owned(self.bookings, booking_id, company_id, "slot")

    def question(self, company_id: int, question_id: int) -> Question:
        """A question a booking of this company can answer: the company's own or one of its ancestors' (a parent
        company's questions serve its branches, as in BBDOC's sample), else 404 unknown / 403 another company's."""
        question = self.questions.get(question_id)
        if question is None:
            raise NotFoundError(f"question {question_id} not found")
        if not self.is_within(company_id, question.company_id):
            raise ForbiddenError(f"question {question_id} belongs to another company")
        return question

    def company_questions(self, company_id: int, detail_group_id: int | None = None) -> list[Question]:
        """The questions this company's bookings can answer, by id; only one question group's when asked."""
        self.company(company_id)
        return [
            q
            for _, q in sorted(self.questions.items())
            if self.is_within(company_id, q.company_id)
            and (detail_group_id is None or q.detail_group_id == detail_group_id)
        ]

    def address(self, company_id: int, address_id: int) -> Address:
        """The company's address with this id, or 404."""
        address = self.company(company_id).address
        if address is None or address.id != address_id:
            raise NotFoundError(f"address {address_id} not found in company {company_id}")
        return address

    def of_company(self, table: dict[int, T], company_id: int) -> list[T]:
        """The rows of one company, by id."""
        return [row for _, row in sorted(table.items()) if row.company_id == company_id]  # type: ignore[attr-defined]

    # ------------------------------------------------------------------------------------------ schedules

    def shifts(self, schedule: Schedule, start: date, end: date) -> list[dict[str, Any]]:
        """Working periods from the schedule's rules, one per range per day; a date key beats a weekday key."""
        if end < start:
            raise BadRequestError("end_date is before start_date")
        if (end - start).days > 366:
            raise BadRequestError("at most 366 days of shifts per request")
        out = []
        day = start
        while day <= end:
            for begin, finish in self.working_ranges(schedule, day):
                out.append(
                    {
                        "shift_pattern_id": None,
                        "company_id": schedule.company_id,
                        "schedule_id": schedule.id,
                        "date": day.isoformat(),
                        "start": f"{day.isoformat()}T{begin[:2]}:{begin[2:]}",
                        "end": f"{day.isoformat()}T{finish[:2]}:{finish[2:]}",
                    }
                )
            day += timedelta(days=1)
        return out

    def working_dates(self, schedule: Schedule, start: date, end: date) -> dict[str, list[str] | str]:
        """Per date, the worked ``HHMM-HHMM`` ranges or ``"None"`` (the shape BBNG reads from ``?start_date&end_date``)."""
        self.shifts(schedule, start, end)  # the same range checks
        out: dict[str, list[str] | str] = {}
        day = start
        while day <= end:
            ranges = self.working_ranges(schedule, day)
            out[day.isoformat()] = [f"{a}-{b}" for a, b in ranges] if ranges else "None"
            day += timedelta(days=1)
        return out

    @staticmethod
    def working_ranges(schedule: Schedule, day: date) -> list[tuple[str, str]]:
        """The HHMM ranges worked on one day ([] when not working)."""
        weekday = str((day.weekday() + 1) % 7)  # moment's 'd': 0 = Sunday
        value = schedule.rules.get(day.isoformat(), schedule.rules.get(weekday))
        if not value or value == "None":
            return []
        return [_parse_range(part, "rules") for part in value.split(",")]

    # ------------------------------------------------------------------------------------------ bookings

    def list_bookings(
        self,
        company_id: int,
        *,
        start_date: date | None = None,
        end_date: date | None = None,
        include_cancelled: bool = False,
        modified_since: datetime | None = None,
        person_id: int | None = None,
        resource_id: int | None = None,
        service_id: int | None = None,
        slot_id: int | None = None,
        children: bool = False,
    ) -> list[Booking]:
        """The company's bookings matching every given filter, by start time then id; with ``children`` its child
        companies' (and theirs) too, each day compared in the booking's own company's time zone."""
        self.company(company_id)
        found = []
        for b in self.bookings.values():
            local_day = b.start.astimezone(self.company(b.company_id).tz).date()
            if (
                (b.company_id != company_id and not (children and self.is_within(b.company_id, company_id)))
                or (b.is_cancelled and not include_cancelled)
                or (start_date is not None and local_day < start_date)
                or (end_date is not None and local_day > end_date)
                # updated_at as shown (whole seconds) >= modified_since: the boundary is included
                or (modified_since is not None and b.updated_at.replace(microsecond=0) < modified_since)
                or (person_id is not None and b.person_id != person_id)
                or (resource_id is not None and b.resource_id != resource_id)
                or (service_id is not None and b.service_id != service_id)
                or (slot_id is not None and b.slot_id != slot_id)
            ):
                continue
            found.append(b)
        return sorted(found, key=lambda b: (b.start, b.id))

    def list_slots(
        self,
        company_id: int,
        *,
        start_date: date | None = None,
        end_date: date | None = None,
        person_id: int | None = None,
        resource_id: int | None = None,
    ) -> list[Booking]:
        """The company's live blocks, as their status-3 bookings."""
        ids = set(self.slots.values())
        return [
            b
            for b in self.list_bookings(
                company_id,
                start_date=start_date,
                end_date=end_date,
                person_id=person_id,
                resource_id=resource_id,
            )
            if b.id in ids
        ]

    def _find_clash(self, candidate: Booking) -> Booking | None:
        """An active booking that shares a person or resource with the candidate at an overlapping time.

        Bookings clash with bookings and with blocks; blocks may overlap other blocks (README.md).
        """
        start, end = candidate.busy_interval()
        for other in self.bookings.values():
            if other.id == candidate.id or other.is_cancelled:
                continue
            if candidate.is_block and other.is_block:
                continue
            shares = (candidate.person_id is not None and candidate.person_id == other.person_id) or (
                candidate.resource_id is not None and candidate.resource_id == other.resource_id
            )
            if not shares:
                continue
            other_start, other_end = other.busy_interval()
            if start < other_end and other_start < end:
                return other
        return None

    def _check_clash(self, candidate: Booking) -> None:
        clash = self._find_clash(candidate)
        if clash is not None:
            what = "block" if clash.is_block else "booking"
            raise ConflictError(f"the time clashes with {what} {clash.id}")

    def _check_free(
        self,
        company_id: int,
        start: datetime,
        end: datetime,
        person_id: int | None,
        resource_id: int | None,
        *,
        booking_id: int = 0,
        status: int = STATUS_BOOKED,
        pre_time: int = 0,
        post_time: int = 0,
    ) -> None:
        """409 unless the person or resource is free then: the booking as it would stand (``booking_id`` 0 for a
        new one, which is not stored) is checked against every other active booking and block."""
        self._check_clash(
            Booking(
                id=booking_id,
                company_id=company_id,
                start=start,
                end=end,
                status=status,
                person_id=person_id,
                resource_id=resource_id,
                pre_time=pre_time,
                post_time=post_time,
            )
        )

    def _new_booking_id(self) -> int:
        ident = self._next_booking_id
        self._next_booking_id += 1
        return ident

    def _new_purchase_id(self) -> int:
        ident = self._next_purchase_id
        self._next_purchase_id += 1
        return ident

    def _end_of(self, start: datetime, minutes: int, pre_time: int = 0, post_time: int = 0) -> datetime:
        """``start + minutes``, refused (400) when it or the buffers would leave the years every time is kept in."""
        end = start + timedelta(minutes=minutes)
        check_year(start - timedelta(minutes=pre_time), "the start (with pre_time)")
        check_year(end + timedelta(minutes=post_time), "the end (with duration and post_time)")
        return end

    def create_booking(
        self, company_id: int, body: dict[str, Any], *, booked_by: str, booked_by_email: str | None
    ) -> Booking:
        """Create a booking from the admin create body; 409 when its person or resource is busy then.

        Every field and the clash are checked before anything is stored (no stray client, no used-up ids).
        """
        self.company(company_id)
        if "datetime" not in body:
            raise BadRequestError("datetime is required")
        if "service_id" not in body:
            raise BadRequestError("service_id is required")
        start = parse_datetime(body["datetime"], "datetime")
        service = self.service(company_id, parse_int(body["service_id"], "service_id"))
        duration = parse_minutes(body.get("duration", service.duration), "duration", 1, MAX_DURATION_MINUTES)
        pre_time = parse_minutes(body.get("pre_time", service.pre_time), "pre_time", 0, MAX_BUFFER_MINUTES)
        post_time = parse_minutes(
            body.get("post_time", service.post_time), "post_time", 0, MAX_BUFFER_MINUTES
        )
        person_id = self._staff_ref(company_id, body, "person_id")
        resource_id = self._staff_ref(company_id, body, "resource_id")
        channel = body.get("channel")
        if channel is None:  # absent or null: the default
            channel = "Administrator"
        elif channel not in CHANNELS:
            raise BadRequestError(f"channel must be one of {', '.join(CHANNELS)}")
        settings = body.get("settings")
        if settings is None:
            settings = {}
        if not isinstance(settings, dict):
            raise BadRequestError("settings must be an object")
        if body.get("reservation") is None:
            reservation = service.starts_as_reservation(channel)
        else:
            reservation = parse_bool(body["reservation"], "reservation")
        external = parse_bool(body.get("external", False), "external")
        external_cal_id = _opt_str(body, "external_cal_id")
        private_note = _opt_str(body, "private_note")
        price = parse_int(body.get("price", 0), "price", 0)
        answers = self._answers_for(company_id, body.get("questions"))
        client = self._client_for(company_id, body)
        end = self._end_of(start, duration, pre_time, post_time)
        self._check_free(
            company_id, start, end, person_id, resource_id, pre_time=pre_time, post_time=post_time
        )

        # Everything is valid: store.
        if isinstance(client, Client):
            client.id = self._next_client_id
            self._next_client_id += 1
            self.clients[client.id] = client
        now = self.clock.now()
        booking = Booking(
            id=self._new_booking_id(),
            company_id=company_id,
            start=start,
            end=end,
            service_id=service.id,
            person_id=person_id,
            resource_id=resource_id,
            client_id=client.id if isinstance(client, Client) else client,
            pre_time=pre_time,
            post_time=post_time,
            channel=channel,
            reservation=reservation,
            external=external,
            external_cal_id=external_cal_id,
            settings=dict(settings),
            private_note=private_note,
            booked_by=booked_by,
            booked_by_email=booked_by_email,
            purchase_id=self._new_purchase_id(),
            price=price,
            answers=self._merge_answers([], answers),
            created_at=now,
            updated_at=now,
        )
        self.bookings[booking.id] = booking
        return booking

    def _answers_for(self, company_id: int, value: Any) -> dict[int, str | None]:
        """``questions {"<question id>": answer}`` (BBNG's getPostData) checked: each question one this company's
        bookings can answer, each answer text (a number or boolean is written out); null clears an answer."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise BadRequestError('questions must be an object of question id to answer, like {"12": "yes"}')
        answers: dict[int, str | None] = {}
        for key, answer in value.items():
            question = self.question(company_id, parse_int(key, "questions key (a question id)", 1))
            answers[question.id] = None if answer is None else answer_text(answer, f"questions[{key!r}]")
        return answers

    def _merge_answers(self, current: list[Answer], changes: dict[int, str | None]) -> list[Answer]:
        """The answers after ``changes``: new ones get an id, changed ones keep theirs, null removes; by question id."""
        by_question = {a.question_id: a for a in current}
        for question_id, value in changes.items():
            if value is None:
                by_question.pop(question_id, None)
            elif question_id in by_question:
                by_question[question_id] = Answer(by_question[question_id].id, question_id, value)
            else:
                by_question[question_id] = Answer(self._next_answer_id, question_id, value)
                self._next_answer_id += 1
        return [by_question[q] for q in sorted(by_question)]

    def _staff_ref(self, company_id: int, body: dict[str, Any], key: str) -> int | None:
        value = body.get(key)
        if value is None:
            return None
        ident = parse_int(value, key)
        if key == "person_id":
            self.person(company_id, ident)
        else:
            self.resource(company_id, ident)
        return ident

    def _client_for(self, company_id: int, body: dict[str, Any]) -> int | Client | None:
        """The id of an existing client, a new (not yet stored, id 0) client from ``client {…}``, or None."""
        ref = body.get("client_id", body.get("member_id"))
        if ref is not None:
            return self._owned(self.clients, parse_int(ref, "client_id"), company_id, "client").id
        data = body.get("client")
        if data is None:
            return None
        if not isinstance(data, dict):
            raise BadRequestError("client must be an object")
        return Client(
            id=0,
            company_id=company_id,
            first_name=_opt_str(data, "first_name") or "",
            last_name=_opt_str(data, "last_name") or "",
            **{key: _opt_str(data, key) for key in CLIENT_DETAILS},
        )

    def update_booking(
        self, company_id: int, booking_id: int, body: dict[str, Any], *, who: str
    ) -> list[Change]:
        """Apply an admin update; returns the webhook triggers it causes, each with the booking as it was right
        after that step ([] when nothing changed), so a move-and-confirm sends the move before the confirmation.

        ``confirm: true`` confirms a reservation (the emulator's choice of call, README.md). On a block (status 3)
        only the time can change: a new person or resource, or ``confirm``, is 403.
        """
        booking = self.booking(company_id, booking_id)
        if booking.is_cancelled:
            raise ForbiddenError(f"booking {booking_id} is cancelled and cannot be changed")
        start = booking.start
        if "datetime" in body:
            start = parse_datetime(body["datetime"], "datetime")
        elif "date" in body or "time" in body:
            # BBNG's shape: date plus minutes after midnight, in the company's time zone.
            if "date" not in body or "time" not in body:
                raise BadRequestError("date and time must be sent together")
            day = parse_date(body["date"], "date")
            if not MIN_YEAR <= day.year <= MAX_YEAR:
                raise BadRequestError(f"date must be between the years {MIN_YEAR} and {MAX_YEAR}")
            minutes = parse_int(body["time"], "time", 0, MINUTES_PER_DAY - 1)
            local = datetime(day.year, day.month, day.day, tzinfo=self.company(company_id).tz)
            start = (local + timedelta(minutes=minutes)).astimezone(UTC)
        duration = booking.duration
        if "duration" in body:
            duration = parse_minutes(body["duration"], "duration", 1, MAX_DURATION_MINUTES)
        person_id = (
            self._staff_ref(company_id, body, "person_id") if "person_id" in body else booking.person_id
        )
        resource_id = (
            self._staff_ref(company_id, body, "resource_id") if "resource_id" in body else booking.resource_id
        )
        pre_time = parse_minutes(body.get("pre_time", booking.pre_time), "pre_time", 0, MAX_BUFFER_MINUTES)
        post_time = parse_minutes(
            body.get("post_time", booking.post_time), "post_time", 0, MAX_BUFFER_MINUTES
        )
        confirm = parse_bool(body.get("confirm", False), "confirm")
        settings = body.get("settings")
        if settings is not None and not isinstance(settings, dict):
            raise BadRequestError("settings must be an object")
        external_cal_id = (
            _opt_str(body, "external_cal_id") if "external_cal_id" in body else booking.external_cal_id
        )
        multi_status = _opt_str(body, "current_multi_status") if "current_multi_status" in body else None
        private_note = _opt_str(body, "private_note") if "private_note" in body else booking.private_note
        answer_changes = self._answers_for(company_id, body.get("questions"))
        end = self._end_of(start, duration, pre_time, post_time)

        if booking.is_block:
            if (person_id, resource_id) != (booking.person_id, booking.resource_id):
                raise ForbiddenError(
                    f"booking {booking_id} is a block: its person or resource cannot be changed "
                    "(delete its slot and block the other one)"
                )
            if confirm:
                raise ForbiddenError(f"booking {booking_id} is a block and cannot be confirmed")

        reschedules = (start, end, person_id, resource_id) != (
            booking.start,
            booking.end,
            booking.person_id,
            booking.resource_id,
        )
        if reschedules and booking.external:
            raise ForbiddenError(f"booking {booking_id} was made externally and cannot be rescheduled")

        if reschedules or (pre_time, post_time) != (booking.pre_time, booking.post_time):
            self._check_free(
                company_id,
                start,
                end,
                person_id,
                resource_id,
                booking_id=booking.id,
                status=booking.status,
                pre_time=pre_time,
                post_time=post_time,
            )

        merged_settings = {**booking.settings, **(settings or {})}
        current_answers = {a.question_id: a.value for a in booking.answers}
        new_answers = {**current_answers, **answer_changes}
        answers_change = {q: v for q, v in new_answers.items() if v is not None} != current_answers
        modified = (
            answers_change
            or reschedules
            or (pre_time, post_time) != (booking.pre_time, booking.post_time)
            or external_cal_id != booking.external_cal_id
            or merged_settings != booking.settings
            or private_note != booking.private_note
            or (multi_status is not None and multi_status != booking.current_multi_status)
        )
        changes: list[Change] = []
        now = self.clock.now()
        if modified:
            booking.start, booking.end = start, end
            booking.person_id, booking.resource_id = person_id, resource_id
            booking.pre_time, booking.post_time = pre_time, post_time
            booking.external_cal_id = external_cal_id
            booking.settings = merged_settings
            booking.private_note = private_note
            if answers_change:
                booking.answers = self._merge_answers(booking.answers, answer_changes)
            if multi_status is not None:
                booking.current_multi_status = multi_status
            booking.updated_at = now
            booking.settings["who_updated"] = who
            changes.append(("modify", booking.snapshot()))
        if confirm and booking.reservation:
            booking.reservation = False
            booking.updated_at = now
            booking.settings["who_updated"] = who
            changes.append(("confirmed", booking.snapshot()))
        return changes

    def cancel_booking(self, company_id: int, booking_id: int, *, reason: str | None, who: str) -> bool:
        """Cancel a booking (or a block booking, freeing its slot); False when it already was cancelled.

        A cancelled reservation stays a reservation (``is_reservation`` true, ``booking_type`` "Reservation"), so a
        rejected reservation does not read like a cancelled booking; ``is_cancelled`` says it is cancelled.
        """
        booking = self.booking(company_id, booking_id)
        if booking.is_cancelled:
            return False
        now = self.clock.now()
        booking.is_cancelled = True
        booking.cancelled_by = who
        booking.cancel_reason = reason
        booking.cancellation_date = now
        booking.updated_at = now
        if booking.slot_id is not None:
            self.slots.pop(booking.slot_id, None)
        return True

    # ------------------------------------------------------------------------------------------ blocks

    def block(
        self,
        company_id: int,
        *,
        person_id: int | None,
        resource_id: int | None,
        start_time: Any,
        end_time: Any,
        booked_by: str,
        booked_by_email: str | None,
        private_note: str | None = None,
    ) -> Booking:
        """Block time for a person or resource: a slot plus its status-3 booking; 409 over a booking."""
        company = self.company(company_id)
        if person_id is not None:
            self.person(company_id, person_id)
        elif resource_id is not None:
            self.resource(company_id, resource_id)
        else:
            raise BadRequestError("person_id or resource_id is required")
        start, end = self._block_times(start_time, end_time)
        self._check_free(company.id, start, end, person_id, resource_id, status=STATUS_BLOCKED)
        now = self.clock.now()
        booking = Booking(
            id=self._new_booking_id(),
            company_id=company.id,
            start=start,
            end=end,
            status=STATUS_BLOCKED,
            person_id=person_id,
            resource_id=resource_id,
            booked_by=booked_by,
            booked_by_email=booked_by_email,
            private_note=private_note,
            purchase_id=self._new_purchase_id(),
            slot_id=self._next_slot_id,
            created_at=now,
            updated_at=now,
        )
        self._next_slot_id += 1
        self.bookings[booking.id] = booking
        self.slots[self._next_slot_id - 1] = booking.id
        return booking

    def _block_times(self, start_time: Any, end_time: Any) -> tuple[datetime, datetime]:
        """A block's start and end; its length is rounded up to whole minutes, as JRNI works in minutes."""
        if start_time is None or end_time is None:
            raise BadRequestError("start_time and end_time are required")
        start = parse_datetime(start_time, "start_time")
        end = parse_datetime(end_time, "end_time")
        if end <= start:
            raise BadRequestError("end_time must be after start_time")
        minutes = math.ceil((end - start).total_seconds() / 60)
        if minutes > MAX_DURATION_MINUTES:
            raise BadRequestError(f"a block lasts at most {MAX_DURATION_MINUTES} minutes")
        return start, self._end_of(start, minutes)

    def move_slot(self, company_id: int, slot_id: int, start_time: Any, end_time: Any, *, who: str) -> bool:
        """Move a block; False when the times did not change."""
        booking = self.slot(company_id, slot_id)
        start, end = self._block_times(start_time, end_time)
        if (start, end) == (booking.start, booking.end):
            return False
        self._check_free(
            company_id,
            start,
            end,
            booking.person_id,
            booking.resource_id,
            booking_id=booking.id,
            status=STATUS_BLOCKED,
        )
        booking.start, booking.end = start, end
        booking.updated_at = self.clock.now()
        booking.settings["who_updated"] = who
        return True

    def delete_slot(self, company_id: int, slot_id: int, *, who: str) -> Booking:
        """Remove a block (its booking is kept, cancelled, so pollers with include_cancelled see it go)."""
        booking = self.slot(company_id, slot_id)
        self.cancel_booking(company_id, booking.id, reason=None, who=who)
        return booking


def utc_iso(value: datetime | None) -> str | None:
    """``2016-05-16T09:14:57Z``: JRNI's UTC timestamp format (BBDOC index.md)."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def local_iso(value: datetime | None, tz: ZoneInfo) -> str | None:
    """An ISO timestamp with the company's offset, as booking datetimes are returned."""
    if value is None:
        return None
    return value.astimezone(tz).isoformat(timespec="seconds")
