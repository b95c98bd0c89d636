"""Subject and body of the Outlook items we write, from the integration's Liquid templates (python-liquid).

Strict: an unknown name is an error, found when the template is saved (with line and column), never a blank in an
adviser's calendar. The body is HTML and every value from JRNI is escaped; the subject is plain text.
"""

from calsync.domain import TemplateError
from calsync.rendering.templates import (
    DEFAULT_BODY,
    DEFAULT_SUBJECT,
    SAMPLE_CONTEXT,
    Templates,
    booking_context,
    templates_of,
)

__all__ = [
    "DEFAULT_BODY",
    "DEFAULT_SUBJECT",
    "SAMPLE_CONTEXT",
    "TemplateError",
    "Templates",
    "booking_context",
    "templates_of",
]
