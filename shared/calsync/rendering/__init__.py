"""Subject and body of the Outlook items we write, from the integration's Liquid templates (python-liquid).

Strict: an unknown name is an error, found when the template is saved (with line and column), never a blank in an
adviser's calendar. Templates see JRNI's drops (``drops``) built from what JRNI's admin API returns. The body is HTML
and every value from JRNI is escaped (or plain text, as the integration chooses); the subject is one line of plain
text. What a template may cost is bounded (``LIMITS``).
"""

from calsync.domain import TemplateError
from calsync.rendering.drops import (
    SAMPLE_BOOKING,
    SAMPLE_RECORDS,
    About,
    for_booking,
    kind_of,
    sample,
)
from calsync.rendering.templates import DEFAULT_BODY, DEFAULT_SUBJECT, LIMITS, Limits, Templates, templates_of

__all__ = [
    "DEFAULT_BODY",
    "DEFAULT_SUBJECT",
    "LIMITS",
    "SAMPLE_BOOKING",
    "SAMPLE_RECORDS",
    "About",
    "Limits",
    "TemplateError",
    "Templates",
    "for_booking",
    "kind_of",
    "sample",
    "templates_of",
]
