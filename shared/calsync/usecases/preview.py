"""The operator's template preview: an integration's subject and body (or ones being written) rendered for a real
JRNI booking or for the built-in sample, or what is wrong with them, with line and column. Nothing is stored."""

from __future__ import annotations

from dataclasses import dataclass

from calsync.domain import Integration, NotFoundError, TemplateError
from calsync.rendering import (
    DEFAULT_BODY,
    DEFAULT_SUBJECT,
    About,
    Templates,
    for_booking,
    kind_of,
    sample,
    templates_of,
)
from calsync.usecases.admin import AdminDeps, find_integration


@dataclass(frozen=True)
class Preview:
    """What the templates give (``errors`` empty), or why they cannot be used (``subject`` and ``body`` empty)."""

    subject: str
    body: str
    plain_text_body: bool
    booking: str  # what was rendered: "the sample booking" or "JRNI booking <company>/<id>"
    errors: tuple[TemplateError, ...] = ()


def preview(
    deps: AdminDeps,
    integration_id: str,
    *,
    subject_template: str | None = None,
    body_template: str | None = None,
    plain_text_body: bool | None = None,
    booking_id: str | None = None,
) -> Preview:
    """Render the integration's templates, each replaced by the one given, for JRNI booking ``booking_id`` (looked
    for in the whole company tree; NotFoundError when no company has it) or the sample booking. A template that
    cannot be used is not an error here: the preview says what is wrong with each."""
    integration = find_integration(deps.integrations, integration_id)
    current = templates_of(integration)
    templates = Templates(
        # None: the integration's; empty: the default (as a PATCH of "" or null gives)
        current.subject_source if subject_template is None else subject_template or DEFAULT_SUBJECT,
        current.body_source if body_template is None else body_template or DEFAULT_BODY,
        current.plain_text_body if plain_text_body is None else plain_text_body,
    )
    if problems := templates.problems():
        return Preview("", "", templates.plain_text_body, _described(booking_id), tuple(problems))
    if booking_id is None:
        context = sample(_about(integration, "booking"))
    else:
        source = deps.bookings_for(integration)
        booking = source.find_booking(booking_id)
        if booking is None:
            raise NotFoundError(
                f"JRNI has no booking {booking_id} in company {integration.jrni.company_id} or its child "
                "companies: check the booking's id in JRNI (leave it out to preview the sample booking)"
            )
        context = for_booking(booking, source.records(booking), _about(integration, kind_of(booking)))
        booking_id = f"{booking.key.company_id}/{booking.key.booking_id}"
    try:
        subject, body = templates.render(context)
    except TemplateError as exc:  # valid on the sample, failing on this booking's data
        return Preview("", "", templates.plain_text_body, _described(booking_id), (exc,))
    return Preview(subject, body, templates.plain_text_body, _described(booking_id))


def _about(integration: Integration, kind: str) -> About:
    return About(integration.name, integration.id, kind, integration.options.block_subject)


def _described(booking: str | None) -> str:
    return "the sample booking" if booking is None else f"JRNI booking {booking}"
