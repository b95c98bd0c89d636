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

__all__ = [
    "Action",
    "CreateEvent",
    "DeleteEvent",
    "RecoverEvent",
    "SkipUnmapped",
    "UpdateEvent",
    "desired_content",
    "plan_outbound",
]
