"""POST /admin/integrations/{id}/templates/preview on in-memory fakes: the sample booking, a booking of JRNI's, and
templates that cannot be used (each problem with line and column). A real JRNI booking over HTTP is previewed in
tests/calsync/adapters/test_drops.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from calsync.domain import BookingRecords
from calsync.transport.admin import build_admin_api
from calsync.usecases.admin import AdminDeps
from tests.apigw import LambdaContext, rest_event
from tests.calsync.builders import INTEGRATION, booking, integration
from tests.calsync.fakes import FakeBookingSource, fake_admin_deps

PATH = f"/admin/integrations/{INTEGRATION}/templates/preview"
RESOURCE = "/admin/integrations/{integration_id}/templates/preview"


@pytest.fixture
def jrni() -> FakeBookingSource:
    made = booking("777", person="11")
    source = FakeBookingSource(made)
    source.linked[made.key] = BookingRecords(
        company={"name": "Branch North", "timezone": "Europe/London", "address": {"address1": "Unit 4"}},
        service={"name": "Consultation"},
    )
    return source


@pytest.fixture
def services(jrni: FakeBookingSource) -> AdminDeps:
    return fake_admin_deps(
        integration(subject_template="{{ service.name }} for {{ client.name }}"), bookings_for=lambda _: jrni
    )


def preview(services: AdminDeps, body: dict[str, Any], integration_id: str = INTEGRATION) -> tuple[int, Any]:
    event = rest_event(
        "POST",
        PATH.replace(INTEGRATION, integration_id),
        body,
        resource=RESOURCE,
        path_parameters={"integration_id": integration_id},
    )
    answer = build_admin_api(lambda: services).resolve(event, LambdaContext())
    return answer["statusCode"], json.loads(answer["body"])


def test_the_sample_booking_is_rendered_with_the_integrations_templates(services: AdminDeps) -> None:
    status, shown = preview(services, {})
    assert status == 200, shown
    assert shown["subject"] == "Mortgage advice for Sam Sample"
    assert shown["booking"] == "the sample booking" and shown["body_type"] == "html"
    assert "<p><strong>Mortgage advice</strong></p>" in shown["body"]  # the default body


def test_templates_being_written_are_rendered_in_place_of_the_stored_ones_and_nothing_is_saved(
    services: AdminDeps,
) -> None:
    before = services.integrations.get(INTEGRATION)
    status, shown = preview(
        services,
        {
            "subject_template": "{{ client.first_name }} at {{ booking.datetime | date: '%H:%M' }}",
            "body_template": "{{ company.address.address1 }} <{{ booking.reason_for_visit }}>",
            "plain_text_body": True,
        },
    )
    assert status == 200, shown
    assert (shown["subject"], shown["body"], shown["body_type"]) == (
        "Sam at 10:00",
        "10 High Street <Remortgage>",
        "text",
    )
    assert services.integrations.get(INTEGRATION) == before


def test_a_booking_of_jrnis_is_rendered_with_its_company_and_service(services: AdminDeps) -> None:
    status, shown = preview(
        services,
        {"booking_id": "777", "body_template": "{{ company.address.address1 }}, {{ company.timezone }}"},
    )
    assert status == 200, shown
    assert shown["booking"] == "JRNI booking 100/777"
    assert shown["subject"] == "Consultation for"  # the builder's booking has no client
    assert shown["body"] == "Unit 4, Europe/London"


def test_a_booking_jrni_does_not_have_is_404_saying_so(services: AdminDeps) -> None:
    status, shown = preview(services, {"booking_id": "778"})
    assert status == 404 and "no booking 778" in shown["message"], shown


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"subject_template": "{{ servce.name }}"},
            [("subject", "1:4", "did you mean 'service'?")],
        ),
        (
            {"body_template": "<p>ok</p>\n<p>{% if client.name %}open</p>"},
            [("body", "2:4", "{% if %} is never closed: add {% endif %}")],
        ),
        (
            {"subject_template": "{{ nope }}", "body_template": "{% include 'secrets.txt' %}"},
            [("subject", "1:4", "nope"), ("body", "1:", "include")],
        ),
    ],
    ids=["unknown name", "syntax error", "both templates"],
)
def test_templates_that_cannot_be_used_get_422_with_every_problem_and_where(
    services: AdminDeps, body: dict[str, Any], expected: list[tuple[str, str, str]]
) -> None:
    status, shown = preview(services, body)
    assert status == 422, shown
    found = [(e["template"], e["detail"]) for e in shown["errors"]]
    assert [which for which, _ in found] == [which for which, _, _ in expected], found
    for (_, detail), (_, where, said) in zip(found, expected, strict=True):
        assert f"-> {where}" in detail and said in detail, detail
    assert (shown["template"], shown["detail"]) == found[0]


def test_an_unknown_integration_or_a_malformed_booking_id_is_refused(services: AdminDeps) -> None:
    assert preview(services, {}, "nobody")[0] == 404
    assert preview(services, {"booking_id": "../people"})[0] == 422
    assert preview(services, {"subject_template": "x" * 2_001})[0] == 422
