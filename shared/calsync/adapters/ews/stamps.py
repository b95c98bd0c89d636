"""Our two extended properties on every calendar item we write: which integration, which JRNI object.

They live in calsync's own MAPI property set, so no other application's properties can collide with them, and they
survive Outlook edits (Outlook keeps named properties it does not know). ``find_stamped`` looks items up by both.
See https://learn.microsoft.com/exchange/client-developer/exchange-web-services/properties-and-extended-properties-in-ews-in-exchange
"""

from __future__ import annotations

import threading

from exchangelib import CalendarItem
from exchangelib.extended_properties import ExtendedProperty

from calsync.domain import Stamp

# calsync's property set. Constant for ever: changing it would orphan every item already written.
PROPERTY_SET_ID = "4f0c2b9e-6d1a-4c3e-9b57-2a8e61c0d7f3"
INTEGRATION_FIELD = "calsync_integration_id"
JRNI_KEY_FIELD = "calsync_jrni_key"
# The kind of the items that show time outside working hours (``schedules.py``): their JRNI key is
# ``schedule/<key>``. They are calsync's, and show no JRNI booking: the change feed and the listing of booking items
# leave them out, so that inbound never makes a JRNI block of one nor removes one as a stray.
SCHEDULE_KIND = "schedule"


def is_schedule_item(item: object) -> bool:
    """Whether an item read with its stamp fields is one of calsync's time-outside-working-hours items."""
    return str(getattr(item, JRNI_KEY_FIELD, "") or "").startswith(f"{SCHEDULE_KIND}/")


class IntegrationIdProperty(ExtendedProperty):  # type: ignore[misc]
    """The calsync integration that wrote the item."""

    property_set_id = PROPERTY_SET_ID
    property_name = "CalsyncIntegrationId"
    property_type = "String"


class JrniKeyProperty(ExtendedProperty):  # type: ignore[misc]
    """The JRNI object the item shows, as ``str(JrniKey)`` (company/booking)."""

    property_set_id = PROPERTY_SET_ID
    property_name = "CalsyncJrniKey"
    property_type = "String"


_lock = threading.Lock()


def register_fields(fields: tuple[tuple[str, type[ExtendedProperty]], ...]) -> None:
    """Make extended properties ordinary CalendarItem fields, by name; safe to call any number of times."""
    with _lock:
        registered = {field.name for field in CalendarItem.FIELDS}
        for name, prop in fields:
            if name not in registered:
                CalendarItem.register(name, prop)


def register_stamp_fields() -> None:
    """Make both properties ordinary CalendarItem fields; safe to call any number of times."""
    register_fields(((INTEGRATION_FIELD, IntegrationIdProperty), (JRNI_KEY_FIELD, JrniKeyProperty)))


def stamp_values(stamp: Stamp) -> dict[str, str]:
    """The stamp as CalendarItem field values (also usable as ``.filter()`` arguments)."""
    return {INTEGRATION_FIELD: stamp.integration_id, JRNI_KEY_FIELD: str(stamp.jrni_key)}
