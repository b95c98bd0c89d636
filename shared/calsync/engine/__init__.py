"""Pure decision logic: given what JRNI and Exchange hold and what links them, what must be done.

Imports only the standard library and ``calsync.domain``: no clock, no environment, no I/O. Every decision can be
tested in a plain unit test with the network off.
"""

from calsync.engine.outbound import (
    Action,
    CreateEvent,
    DeleteEvent,
    RecoverEvent,
    SkipUnmapped,
    UpdateEvent,
    desired_content,
    plan_outbound,
)
from calsync.engine.schedules import (
    ChangeOccurrence,
    CreateSeries,
    CreateSingle,
    RemoveSeries,
    RemoveSingle,
    RestoreOccurrence,
    ScheduleAction,
    busy_plan,
    plan_schedule,
)

__all__ = [
    "Action",
    "ChangeOccurrence",
    "CreateEvent",
    "CreateSeries",
    "CreateSingle",
    "DeleteEvent",
    "RecoverEvent",
    "RemoveSeries",
    "RemoveSingle",
    "RestoreOccurrence",
    "ScheduleAction",
    "SkipUnmapped",
    "UpdateEvent",
    "busy_plan",
    "desired_content",
    "plan_outbound",
    "plan_schedule",
]
