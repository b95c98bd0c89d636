"""Exchange Web Services adapter: ``EwsCalendar`` (the ``CalendarProvider``) and ``EwsFeed`` (the ``CalendarFeed``),
for on-premises and online Exchange."""

from calsync.adapters.ews.feed import EwsFeed
from calsync.adapters.ews.provider import EwsCalendar
from calsync.adapters.ews.stamps import PROPERTY_SET_ID

__all__ = ["PROPERTY_SET_ID", "EwsCalendar", "EwsFeed"]
