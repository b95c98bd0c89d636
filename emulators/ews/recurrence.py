"""Recurring series: parsing EWS recurrence patterns, expanding occurrences (python-dateutil rrule), writing them back.

(Filled in by the recurrence work; until then a series cannot be created.)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from lxml import etree

from emulators.ews.errors import EwsError


def parse(el: etree._Element, start: datetime, time_zone: str | None) -> Any:
    raise EwsError("ErrorCalendarInvalidRecurrence", "Recurring items are not supported yet.")


def index_of(master: Any, original_start: datetime) -> int | None:
    return None


def expand(master: Any, window_start: datetime, window_end: datetime) -> list[tuple[datetime, int]]:
    return []


def write(parent: etree._Element, master: Any) -> None:
    return None


def start_of_index(master: Any, index: int) -> datetime | None:
    return None


def to_json(master: Any) -> dict[str, Any]:
    return {}


def from_json(data: Any, start: datetime, time_zone: str | None) -> Any:
    raise ValueError("recurring items are not supported yet")
