"""Writing a staff member's time outside working hours into their Exchange calendar: weekly series with no end,
their modified and deleted occurrences, and single items; and reading back what was written.

Every item is a plain busy appointment (nobody invited, no reminder, empty body, Normal sensitivity) stamped as
calsync's own, as ``provider.py`` stamps booking items (integration id, and a JRNI key of the form
``schedule/<key>``, so the change feed's test of "ours" holds), plus three properties of its own: the kind
(``schedule``), the schedule key, and the IANA zone the series repeats in. ``written`` finds the items by the
integration and the kind.

An occurrence is named as Exchange names it, by ``OccurrenceItemId`` (the master's id and the occurrence's 1-based
``InstanceIndex`` in the pattern, deleted occurrences counted), the index computed from the master's pattern read
with the change. A modified occurrence set back to the pattern's times stays an exception in Exchange; ``written``
reports it as not modified. A deleted occurrence cannot be brought back (EWS has no undelete):
``restore_occurrence`` raises ``OccurrenceDeletedError`` and the caller removes the series and creates it again.

Requests: ``create_series`` and ``create_single`` one CreateItem; ``change_occurrence`` and ``restore_occurrence``
one GetItem of the master then one UpdateItem or DeleteItem (none when it already is as asked); ``remove`` one
DeleteItem; ``written`` one FindItem (1000 items a page) then one GetItem for all the masters.
https://learn.microsoft.com/exchange/client-developer/exchange-web-services/how-to-update-a-recurring-series-by-using-ews
https://learn.microsoft.com/exchange/client-developer/web-service-reference/occurrenceitemid
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from exchangelib import CalendarItem, EWSDateTime, EWSTimeZone, Q
from exchangelib.errors import ErrorItemNotFound
from exchangelib.extended_properties import ExtendedProperty
from exchangelib.fields import FieldPath
from exchangelib.items import (
    ALL_OCCURRENCES,
    ALWAYS_OVERWRITE,
    HARD_DELETE,
    ID_ONLY,
    SAVE_ONLY,
    SEND_TO_NONE,
    SHALLOW,
)
from exchangelib.properties import Body, OccurrenceItemId
from exchangelib.recurrence import NoEndPattern, Recurrence, WeeklyPattern
from exchangelib.restriction import Restriction
from exchangelib.services import FindItem

from calsync.adapters.ews.connection import DEFAULT_TIMEOUT_SECONDS, AccountCache
from calsync.adapters.ews.session import MailboxSession, calendar_of, create_item, delete_item
from calsync.adapters.ews.stamps import (
    INTEGRATION_FIELD,
    JRNI_KEY_FIELD,
    PROPERTY_SET_ID,
    SCHEDULE_KIND,
    register_fields,
)
from calsync.domain import (
    ExchangeConnection,
    OccurrenceDeletedError,
    PermanentError,
    SeriesGoneError,
    TimeWindow,
)
from calsync.domain.schedules import WrittenItem

KIND_FIELD = "calsync_kind"
SCHEDULE_KEY_FIELD = "calsync_schedule_key"
SCHEDULE_ZONE_FIELD = "calsync_schedule_zone"

# Items per FindItem page: Exchange's default find-count limit.
WRITTEN_PAGE = 1000
FREE_BUSY = frozenset({"Busy", "OOF"})
# exchangelib numbers weekdays 1 (Monday) to 7; calsync as date.weekday(), 0 to 6.
_MONDAY = 1
# What a change of one occurrence needs of its master.
_MASTER_FIELDS = (
    "start",
    "end",
    "recurrence",
    "modified_occurrences",
    "deleted_occurrences",
    SCHEDULE_ZONE_FIELD,
)

_FIND_FIELDS = ("type", "start", "end")


class KindProperty(ExtendedProperty):  # type: ignore[misc]
    """What calsync wrote the item for; ``schedule`` for time outside working hours (booking items have none)."""

    property_set_id = PROPERTY_SET_ID
    property_name = "CalsyncKind"
    property_type = "String"


class ScheduleKeyProperty(ExtendedProperty):  # type: ignore[misc]
    """The schedule item's stable identity (a series' key, or a single's)."""

    property_set_id = PROPERTY_SET_ID
    property_name = "CalsyncScheduleKey"
    property_type = "String"


class ScheduleZoneProperty(ExtendedProperty):  # type: ignore[misc]
    """The IANA zone a series was written in: Exchange keeps only a Windows zone, which names several IANA ones."""

    property_set_id = PROPERTY_SET_ID
    property_name = "CalsyncScheduleZone"
    property_type = "String"


def register_schedule_fields() -> None:
    """Make the schedule properties ordinary CalendarItem fields; safe to call any number of times."""
    register_fields(
        (
            (KIND_FIELD, KindProperty),
            (SCHEDULE_KEY_FIELD, ScheduleKeyProperty),
            (SCHEDULE_ZONE_FIELD, ScheduleZoneProperty),
        )
    )


def _find_paths() -> set[Any]:
    """What ``written`` asks of every item in its FindItem (the fields registered first)."""
    register_schedule_fields()
    names = (*_FIND_FIELDS, SCHEDULE_KEY_FIELD)
    return {FieldPath(field=CalendarItem.get_field_by_fieldname(name)) for name in names}


def schedule_stamp(integration_id: str, key: str, zone: str | None = None) -> dict[str, str]:
    """The properties a schedule item carries, as CalendarItem field values: calsync's stamp (the JRNI key
    ``schedule/<key>``), the kind, the key and, for a series, its zone."""
    values = {
        INTEGRATION_FIELD: integration_id,
        JRNI_KEY_FIELD: f"{SCHEDULE_KIND}/{key}",
        KIND_FIELD: SCHEDULE_KIND,
        SCHEDULE_KEY_FIELD: key,
    }
    if zone is not None:
        values[SCHEDULE_ZONE_FIELD] = zone
    return values


class EwsScheduleWriter(MailboxSession):
    """Schedule items in mailboxes reached through one ``ExchangeConnection`` with the credentials from its secret."""

    name = "ews"

    def __init__(
        self,
        connection: ExchangeConnection,
        secret: dict[str, str],
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        accounts: AccountCache | None = None,
    ) -> None:
        super().__init__(connection, secret, timeout=timeout, accounts=accounts)
        register_schedule_fields()

    def create_series(
        self,
        mailbox: str,
        *,
        integration_id: str,
        key: str,
        zone: str,
        weekdays: tuple[int, ...],
        start: time,
        minutes: int,
        first_day: date,
        subject: str,
        free_busy: str,
    ) -> str:
        """A weekly series with no end, from the first of ``weekdays`` (0 = Monday) on or after ``first_day``, each
        occurrence ``minutes`` long in local wall-clock time from ``start`` in ``zone``: one CreateItem. The answer is
        the master's id."""
        days = sorted(set(weekdays))
        if not days or not all(0 <= day <= 6 for day in days):
            raise ValueError(f"weekdays must be 0 (Monday) to 6 (Sunday), at least one: {weekdays!r}")
        if minutes <= 0:
            raise ValueError(f"an occurrence lasts at least a minute: {minutes!r}")
        _check_free_busy(free_busy)
        ews_zone = _ews_zone(zone)
        first = next(first_day + timedelta(days=n) for n in range(7) if (first_day.weekday() + n) % 7 in days)
        local_start = datetime.combine(first, start)
        recurrence = Recurrence(
            pattern=WeeklyPattern(
                interval=1, weekdays=[day + _MONDAY for day in days], first_day_of_week=_MONDAY
            ),
            boundary=NoEndPattern(start=first_day),
        )

        def create(account: Any) -> str:
            created = create_item(
                account,
                mailbox,
                subject=subject,
                body=Body(""),
                sensitivity="Normal",
                start=_local(local_start, ews_zone),
                end=_local(local_start + timedelta(minutes=minutes), ews_zone),
                legacy_free_busy_status=free_busy,
                recurrence=recurrence,
                **schedule_stamp(integration_id, key, zone),
            )
            return str(created.id)

        return self._call(mailbox, create)

    def create_single(
        self, mailbox: str, *, integration_id: str, key: str, window: TimeWindow, subject: str, free_busy: str
    ) -> str:
        """One busy item over ``window``: one CreateItem. The answer is its id."""
        _check_free_busy(free_busy)

        def create(account: Any) -> str:
            utc = window.utc()
            created = create_item(
                account,
                mailbox,
                subject=subject,
                body=Body(""),
                sensitivity="Normal",
                start=_ews(utc.start, EWSTimeZone("UTC")),
                end=_ews(utc.end, EWSTimeZone("UTC")),
                legacy_free_busy_status=free_busy,
                **schedule_stamp(integration_id, key),
            )
            return str(created.id)

        return self._call(mailbox, create)

    def change_occurrence(
        self, mailbox: str, master_id: str, original_start: datetime, window: TimeWindow | None
    ) -> None:
        """Make the series' occurrence the pattern puts at ``original_start`` show ``window`` instead (None: delete
        it): one GetItem of the master, then one UpdateItem or DeleteItem; nothing when it already is so.

        SeriesGoneError when the series is gone; OccurrenceDeletedError for a window on a deleted occurrence;
        PermanentError when the pattern has no occurrence at ``original_start``."""

        def change(account: Any) -> None:
            master = _master(account, mailbox, master_id)
            occurrence = _occurrence(account, master, original_start)
            if window is None:
                if occurrence.deleted:
                    return
                _delete_occurrence(account, occurrence.item)
                return
            if occurrence.deleted:
                raise OccurrenceDeletedError(
                    f"the occurrence of series {master_id} at {original_start.isoformat()} in {mailbox} was deleted: "
                    f"Exchange cannot bring it back; remove the series and create it again"
                )
            if occurrence.window == window.utc():
                return
            _move_occurrence(account, occurrence, window)

        self._call(mailbox, change)

    def restore_occurrence(self, mailbox: str, master_id: str, original_start: datetime) -> None:
        """Undo an earlier change of one occurrence: a modified one gets the pattern's times back (one GetItem, one
        UpdateItem; nothing when it has them). A deleted one cannot come back (EWS has no undelete):
        OccurrenceDeletedError, and the caller removes the series and creates it again."""

        def restore(account: Any) -> None:
            master = _master(account, mailbox, master_id)
            occurrence = _occurrence(account, master, original_start)
            if occurrence.deleted:
                raise OccurrenceDeletedError(
                    f"the occurrence of series {master_id} at {original_start.isoformat()} in {mailbox} was deleted: "
                    f"Exchange cannot bring it back; remove the series and create it again"
                )
            if occurrence.window == occurrence.pattern_window:
                return
            _move_occurrence(account, occurrence, occurrence.pattern_window)

        self._call(mailbox, restore)

    def remove(self, mailbox: str, item_id: str) -> None:
        """Hard-delete a series (with all its occurrences) or a single, nobody told; one already gone counts as
        removed: one DeleteItem."""

        def delete(account: Any) -> None:
            result = delete_item(account, item_id)
            if isinstance(result, Exception) and not isinstance(result, ErrorItemNotFound):
                raise result

        self._call(mailbox, delete)

    def written(self, mailbox: str, integration_id: str) -> list[WrittenItem]:
        """Every schedule item of ``integration_id`` in the mailbox, series with their modified and deleted
        occurrences, sorted by key then id: one FindItem (``WRITTEN_PAGE`` items a page) and, when there are series,
        one GetItem of all their masters."""

        def read(account: Any) -> list[WrittenItem]:
            # The FindItem service itself rather than filter().only(): exchangelib counts extended properties as
            # "complex" and would add a GetItem (and a GetFolder) for them, while Exchange returns them in a FindItem.
            calendar = calendar_of(account, mailbox)
            query = Q(**{INTEGRATION_FIELD: integration_id, KIND_FIELD: SCHEDULE_KIND})
            found = FindItem(account=account, page_size=WRITTEN_PAGE).call(
                folders=[calendar],
                additional_fields=_find_paths(),
                restriction=Restriction(query, folders=[calendar], applies_to=Restriction.ITEMS),
                order_fields=None,
                shape=ID_ONLY,
                query_string=None,
                depth=SHALLOW,
                calendar_view=None,
                max_items=None,
                offset=0,
            )
            singles: list[WrittenItem] = []
            masters: list[Any] = []
            for item in found:
                if isinstance(item, Exception):
                    raise item
                if item.type == "RecurringMaster":
                    masters.append(item)
                else:
                    key = str(getattr(item, SCHEDULE_KEY_FIELD, "") or "")
                    window = TimeWindow(_utc(item.start), _utc(item.end))
                    singles.append(WrittenItem(item.id, key, is_series=False, window=window))
            series = [_written_series(master) for master in _fetch(account, mailbox, masters)]
            return sorted([*series, *singles], key=lambda written: (written.key, written.item_id))

        return self._call(mailbox, read)


# ---- occurrences ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Occurrence:
    """One occurrence of a master as Exchange names and holds it."""

    item: CalendarItem  # named by OccurrenceItemId
    zone: EWSTimeZone
    pattern_window: TimeWindow  # UTC, as the pattern alone puts it
    window: TimeWindow | None  # UTC, what it shows now (None: deleted)

    @property
    def deleted(self) -> bool:
        return self.window is None


def _master(account: Any, mailbox: str, master_id: str) -> Any:
    """The series' master with its pattern and exceptions: one GetItem; SeriesGoneError when it is gone."""
    # The calendar (built, not looked up) validates the fields: without it exchangelib would GetFolder the root.
    [master] = account.fetch(
        ids=[(master_id, None)], folder=calendar_of(account, mailbox), only_fields=list(_MASTER_FIELDS)
    )
    if isinstance(master, ErrorItemNotFound):
        raise SeriesGoneError(f"series {master_id} is no longer in the calendar of {mailbox}")
    if isinstance(master, Exception):
        raise master
    if master.recurrence is None or not isinstance(master.recurrence.pattern, WeeklyPattern):
        raise PermanentError(f"item {master_id} in {mailbox} is not a weekly series")
    return master


def _occurrence(account: Any, master: Any, original_start: datetime) -> _Occurrence:
    """The occurrence of ``master`` the pattern puts at ``original_start``, by its InstanceIndex."""
    zone = _series_zone(master)
    pattern = master.recurrence.pattern
    weekdays = {int(day) - _MONDAY for day in pattern.weekdays}
    first_day = _as_date(master.recurrence.boundary.start)
    wall_time = master.start.astimezone(zone).replace(tzinfo=None).time()
    when = original_start.astimezone(UTC)
    day = when.astimezone(zone).date()
    # Compared as Exchange puts the pattern's wall-clock start in the zone (a start in a spring-forward gap keeps the
    # offset from before it), not as the local reading of ``when``.
    wall = datetime.combine(day, wall_time)
    if day < first_day or day.weekday() not in weekdays or _utc(_local(wall, zone)) != when:
        raise PermanentError(
            f"series {master.id} has no occurrence at {when.isoformat()} (it repeats at "
            f"{wall_time.strftime('%H:%M')} {zone.key} on weekdays {sorted(weekdays)} from {first_day})"
        )
    index = _instance_index(first_day, day, weekdays)
    minutes = _local_minutes(master, zone)
    pattern_window = TimeWindow(when, _utc(_local(wall + timedelta(minutes=minutes), zone)))
    window: TimeWindow | None = pattern_window
    if any(_utc(deleted.start) == when for deleted in master.deleted_occurrences or ()):
        window = None
    for modified in master.modified_occurrences or ():
        if _utc(modified.original_start) == when:
            window = TimeWindow(_utc(modified.start), _utc(modified.end))
    item = CalendarItem(
        account=account,
        _id=OccurrenceItemId(id=master.id, changekey=None, instance_index=index),
    )
    return _Occurrence(item, zone, pattern_window, window)


def _instance_index(first_day: date, day: date, weekdays: set[int]) -> int:
    """The 1-based position of ``day`` among the pattern's dates from ``first_day`` (a weekly pattern, every week)."""
    weeks, rest = divmod((day - first_day).days, 7)
    tail = sum(1 for n in range(rest + 1) if (first_day.weekday() + n) % 7 in weekdays)
    return weeks * len(weekdays) + tail


def _move_occurrence(account: Any, occurrence: _Occurrence, window: TimeWindow) -> None:
    """Give one occurrence other times (it becomes, or stays, an exception): one UpdateItem."""
    zone = occurrence.zone
    item = occurrence.item
    item.start = _ews(window.start, zone)
    item.end = _ews(window.end, zone)
    item._start_timezone = zone
    item._end_timezone = zone
    # The schedule decides: an Outlook edit of the occurrence in between loses, as booking items' do.
    [result] = account.bulk_update(
        items=[(item, ["start", "end"])],
        conflict_resolution=ALWAYS_OVERWRITE,
        message_disposition=SAVE_ONLY,
        send_meeting_invitations_or_cancellations=SEND_TO_NONE,
        suppress_read_receipts=True,
    )
    if isinstance(result, Exception):
        raise result


def _delete_occurrence(account: Any, item: CalendarItem) -> None:
    """Delete one occurrence from its series, nobody told: one DeleteItem of its OccurrenceItemId."""
    [result] = account.bulk_delete(
        ids=[item],
        delete_type=HARD_DELETE,
        send_meeting_cancellations=SEND_TO_NONE,
        affected_task_occurrences=ALL_OCCURRENCES,
        suppress_read_receipts=True,
    )
    if isinstance(result, Exception) and not isinstance(result, ErrorItemNotFound):
        raise result


# ---- reading back --------------------------------------------------------------------------------------------------


def _fetch(account: Any, mailbox: str, masters: Sequence[Any]) -> list[Any]:
    """The masters with their pattern and exceptions: one GetItem for all (none without masters). A master deleted
    since the FindItem is left out."""
    if not masters:
        return []
    fetched = account.fetch(
        ids=[(master.id, master.changekey) for master in masters],
        folder=calendar_of(account, mailbox),
        only_fields=[*_MASTER_FIELDS, SCHEDULE_KEY_FIELD],
    )
    found = []
    for master in fetched:
        if isinstance(master, ErrorItemNotFound):
            continue
        if isinstance(master, Exception):
            raise master
        found.append(master)
    return found


def _written_series(master: Any) -> WrittenItem:
    """A master as ``written`` reports it: occurrences back at the pattern's times are not modified."""
    zone = _series_zone(master)
    minutes = _local_minutes(master, zone)
    modified = []
    for occurrence in master.modified_occurrences or ():
        original = _utc(occurrence.original_start)
        shows = TimeWindow(_utc(occurrence.start), _utc(occurrence.end))
        local = original.astimezone(zone).replace(tzinfo=None)
        pattern_end = _utc(_local(local + timedelta(minutes=minutes), zone))
        if shows != TimeWindow(original, pattern_end):
            modified.append((original, shows))
    deleted = sorted(_utc(occurrence.start) for occurrence in master.deleted_occurrences or ())
    return WrittenItem(
        item_id=master.id,
        key=str(getattr(master, SCHEDULE_KEY_FIELD, "") or ""),
        is_series=True,
        modified=tuple(sorted(modified, key=lambda change: change[0])),
        deleted=tuple(deleted),
        zone=zone.key,
        first_day=_as_date(master.recurrence.boundary.start) if master.recurrence is not None else None,
    )


# ---- times ---------------------------------------------------------------------------------------------------------


def _check_free_busy(free_busy: str) -> None:
    if free_busy not in FREE_BUSY:
        raise ValueError(f"free_busy must be one of {sorted(FREE_BUSY)}: {free_busy!r}")


def _ews_zone(zone: str) -> EWSTimeZone:
    """The IANA zone as exchangelib's, which knows its Windows id; PermanentError for a zone no one knows."""
    try:
        ZoneInfo(zone)
        return EWSTimeZone(zone)
    except (ZoneInfoNotFoundError, ValueError, KeyError) as exc:
        raise PermanentError(f"time zone {zone!r} is not one Exchange can repeat a series in: {exc}") from exc


def _series_zone(master: Any) -> EWSTimeZone:
    """The zone a master repeats in: the IANA zone stamped on it (Exchange's own is a Windows zone, which several
    IANA zones share), else its start zone."""
    stamped = getattr(master, SCHEDULE_ZONE_FIELD, None)
    if stamped:
        return _ews_zone(str(stamped))
    zone = getattr(master, "_start_timezone", None)
    return zone if isinstance(zone, EWSTimeZone) else EWSTimeZone("UTC")


def _local_minutes(master: Any, zone: EWSTimeZone) -> int:
    """An occurrence's length in local wall-clock minutes, as Exchange repeats it."""
    start = master.start.astimezone(zone).replace(tzinfo=None)
    end = master.end.astimezone(zone).replace(tzinfo=None)
    return int((end - start).total_seconds() // 60)


def _local(wall: datetime, zone: EWSTimeZone) -> Any:
    """A naive wall-clock time in ``zone`` (the earlier one when it occurs twice, the offset before a gap)."""
    return EWSDateTime(wall.year, wall.month, wall.day, wall.hour, wall.minute, wall.second, tzinfo=zone)


def _ews(value: datetime, zone: EWSTimeZone) -> Any:
    """An aware datetime as exchangelib writes it, in ``zone``."""
    return EWSDateTime.from_datetime(value.astimezone(UTC)).astimezone(zone)


def _utc(value: Any) -> datetime:
    return datetime.fromtimestamp(value.timestamp(), tz=UTC)


def _as_date(value: Any) -> date:
    return value.date() if isinstance(value, datetime) else date(value.year, value.month, value.day)
