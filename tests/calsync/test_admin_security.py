"""The admin API tried as an attacker with admin access to one integration would: another integration's secrets,
endpoints on this machine or without a host, ids longer than any key, and mailboxes carrying control characters or
markup are each refused with a 4xx and the reason; nothing is stored."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any

import pytest

from calsync.adapters.jrni import JrniBookingSource, JrniClient
from calsync.domain import JrniConnection
from calsync.transport.admin import DEADLINE_SECONDS, build_admin_api
from calsync.usecases.admin import AdminDeps
from tests.apigw import LambdaContext, load_event, rest_event
from tests.calsync.adapters.jrni_support import SECRET, slow_jrni
from tests.calsync.builders import INTEGRATION, integration
from tests.calsync.fakes import (
    FakeIntegrations,
    fake_admin_deps,
)

PREFIX = "calsync/"


@pytest.fixture
def services() -> AdminDeps:
    return fake_admin_deps(integration(), secrets_prefix=PREFIX)


def call(services: AdminDeps, event: dict[str, Any]) -> tuple[int, Any]:
    answer = build_admin_api(lambda: services).resolve(event, LambdaContext())
    body = answer.get("body")
    return answer["statusCode"], json.loads(body) if body else None


def remote_body(**changes: Any) -> dict[str, Any]:
    """A new integration on remote https servers, its secrets' names left to calsync."""
    body: dict[str, Any] = {
        "id": "branch-7",
        "name": "Branch 7",
        "jrni": {"base_url": "https://branch7.jrni.example", "company_id": "37000"},
        "exchange": {"endpoint": "https://mail.branch7.example/EWS/Exchange.asmx"},
    }
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(body.get(key), dict):
            body[key] = {**body[key], **value}
        else:
            body[key] = value
    return body


def create(services: AdminDeps, body: dict[str, Any]) -> tuple[int, Any]:
    return call(services, rest_event("POST", "/admin/integrations", body))


def test_an_integration_s_secrets_are_named_from_its_id(services: AdminDeps) -> None:
    status, created = create(services, remote_body())
    assert status == 201, created
    assert created["jrni"]["secret_name"] == "calsync/branch-7/jrni"
    assert created["exchange"]["secret_name"] == "calsync/branch-7/exchange"
    assert created["webhook_secret_name"] == "calsync/branch-7/webhook"
    assert created["test_endpoints"] is False


def test_a_new_integration_without_an_id_is_told_the_names_of_its_secrets(services: AdminDeps) -> None:
    body = remote_body()
    del body["id"]
    status, created = create(services, body)
    assert status == 201, created
    assert created["jrni"]["secret_name"] == f"calsync/{created['id']}/jrni"
    assert created["webhook_secret_name"] == f"calsync/{created['id']}/webhook"


def test_its_own_secret_names_may_be_given_with_or_without_the_prefix(services: AdminDeps) -> None:
    body = remote_body(
        jrni={"secret_name": "calsync/branch-7/jrni"},
        exchange={"secret_name": "branch-7/exchange"},
        webhook_secret_name="calsync/branch-7/webhook",
    )
    status, created = create(services, body)
    assert status == 201, created
    assert created["exchange"]["secret_name"] == "calsync/branch-7/exchange"


@pytest.mark.parametrize(
    "change",
    [
        {
            "jrni": {"secret_name": f"calsync/{INTEGRATION}/jrni"}
        },  # the attack: another integration's JRNI login
        {"exchange": {"secret_name": f"{INTEGRATION}/exchange"}},
        {"webhook_secret_name": "calsync/shared-webhook"},
        {"jrni": {"secret_name": "calsync/branch-7/exchange"}},  # its own, but another part
        {"jrni": {"secret_name": "calsync/branch-7/jrni/../../example-bank/jrni"}},
    ],
)
def test_another_integration_s_secret_is_refused(services: AdminDeps, change: dict[str, Any]) -> None:
    status, answer = create(services, remote_body(**change))
    assert status == 422, answer
    assert "must be named 'calsync/branch-7/" in answer["message"]
    assert "reads only its own secrets" in answer["message"]
    assert services.integrations.get("branch-7") is None  # nothing stored


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        # The attack: JRNI's credentials sent to a listener on this machine.
        ({"jrni": {"base_url": "https://127.0.0.1:9999"}}, "points at this machine"),
        ({"jrni": {"base_url": "https://localhost:9999"}}, "points at this machine"),
        ({"jrni": {"base_url": "https://[::1]:9999"}}, "points at this machine"),
        ({"jrni": {"base_url": "https://[::ffff:127.0.0.1]/"}}, "points at this machine"),
        ({"jrni": {"base_url": "https://0.0.0.0/"}}, "points at this machine"),
        # The cloud's metadata service.
        ({"exchange": {"endpoint": "https://169.254.169.254/latest/meta-data"}}, "points at this machine"),
        ({"jrni": {"base_url": "http:"}}, "is not a URL"),
        ({"jrni": {"base_url": "https://"}}, "is not a URL"),
        ({"jrni": {"base_url": "ftp://jrni.example"}}, "is not a URL"),
        ({"jrni": {"base_url": "http://branch7.jrni.example"}}, "is plain http"),
        ({"exchange": {"endpoint": "http://mail.branch7.example/EWS/Exchange.asmx"}}, "is plain http"),
        ({"exchange": {"token_url": "http://login.branch7.example/token"}}, "is plain http"),
        ({"exchange": {"token_url": "https://127.0.0.1/token"}}, "points at this machine"),
        ({"jrni": {"base_url": "https://user:pw@branch7.jrni.example"}}, "carries credentials"),
        ({"jrni": {"base_url": "https://branch7.jrni.example/\x00"}}, "control characters"),
        ({"jrni": {"company_id": "37000/../../other"}}, "is not a JRNI id"),
    ],
)
def test_an_endpoint_on_this_machine_or_without_a_host_is_refused(
    services: AdminDeps, change: dict[str, Any], reason: str
) -> None:
    status, answer = create(services, remote_body(**change))
    assert status == 422, answer
    assert reason in answer["message"]
    assert services.integrations.get("branch-7") is None


def test_a_test_integration_may_use_plain_http_on_this_machine(services: AdminDeps) -> None:
    body = remote_body(
        jrni={"base_url": "http://127.0.0.1:8088/"},
        exchange={"endpoint": "http://127.0.0.1:8089/EWS/Exchange.asmx"},
        test_endpoints=True,
    )
    status, created = create(services, body)
    assert status == 201, created
    assert created["test_endpoints"] is True and created["jrni"]["base_url"] == "http://127.0.0.1:8088"
    # Still not without a host, nor with another integration's secret.
    assert create(services, {**body, "id": "b", "jrni": {"base_url": "http:", "company_id": "1"}})[0] == 422
    assert create(services, {**body, "id": "c", "webhook_secret_name": "calsync/branch-7/webhook"})[0] == 422


def mapping_event(jrni_id: str, mailbox: Any, integration_id: str = INTEGRATION) -> dict[str, Any]:
    return rest_event(
        "PUT",
        f"/admin/integrations/{integration_id}/mappings/person/{jrni_id}",
        {"mailbox": mailbox},
        resource="/admin/integrations/{integration_id}/mappings/{kind}/{jrni_id}",
        path_parameters={"integration_id": integration_id, "kind": "person", "jrni_id": jrni_id},
    )


def test_a_jrni_id_longer_than_any_key_is_refused(services: AdminDeps) -> None:
    status, answer = call(services, mapping_event("1" * 1024, "alice@example.com"))
    assert status == 400 and "is not a JRNI id: 1 to 64" in answer["message"]
    assert services.mappings.mappings(INTEGRATION) == []


@pytest.mark.parametrize(
    ("method", "resource", "params"),
    [
        ("GET", "/mappings", {"integration_id": "x" * 65}),
        ("GET", "/status", {"integration_id": "x" * 65}),
        ("POST", "/reconcile", {"integration_id": "x" * 1024}),
        ("GET", "/reconcile/{run_id}", {"run_id": "r" * 200}),
        ("DELETE", "/mappings/{kind}/{jrni_id}", {"kind": "person", "jrni_id": "<x>"}),
        ("POST", "/mappings/{kind}/{jrni_id}/resync", {"kind": "person", "jrni_id": "a%00b"}),
    ],
)
def test_every_route_checks_its_ids(
    services: AdminDeps, method: str, resource: str, params: dict[str, str]
) -> None:
    params = {"integration_id": INTEGRATION, **params}
    template = "/admin/integrations/{integration_id}" + resource
    event = rest_event(
        method,
        template.format(**params),
        {} if method == "POST" else None,
        resource=template,
        path_parameters=params,
    )
    status, answer = call(services, event)
    assert status == 400, answer
    assert " is not a" in answer["message"] and "1 to 64 letters, digits" in answer["message"]


@pytest.mark.parametrize(
    "mailbox",
    [
        "alice\x00@example.com",
        "alice@example.com\x00",
        "alice\x1b[2J@example.com",
        "<x>&amp;@x.y",
        "</t:EmailAddress>@example.com",
        "alice@example.com</t:EmailAddress><t:EmailAddress>bob@example.com",
        '"alice"@example.com',
        "alice smith@example.com",
        "alice@localhost",
        "alice@@example.com",
        "a" * 243 + "@example.com",  # 255 characters
    ],
)
def test_a_hostile_mailbox_is_refused(services: AdminDeps, mailbox: str) -> None:
    status, answer = call(services, mapping_event("11", mailbox))
    assert status in (400, 422), answer
    assert status == 422 or "is not a mailbox address" in answer["message"]
    assert services.mappings.mappings(INTEGRATION) == []


def test_a_real_address_is_mapped_lower_cased(services: AdminDeps) -> None:
    status, answer = call(services, mapping_event("11", " Alice.Adviser+cal@Bank.Example.com "))
    assert status == 200, answer
    assert answer["mailbox"] == "alice.adviser+cal@bank.example.com"


def test_the_sample_event_is_a_test_integration_with_its_own_secrets(services: AdminDeps) -> None:
    status, created = call(services, load_event("admin_create_integration.json"))
    assert status == 201, created
    assert created["test_endpoints"] is True
    assert created["jrni"]["secret_name"] == f"{PREFIX}{created['id']}/jrni"


def test_an_admin_call_reaching_a_trickling_jrni_answers_504_within_its_deadline(services: AdminDeps) -> None:
    # JRNI (or a host posing as it) answers at once, then sends its body one byte every 0.2 s: each read is quick,
    # the whole answer would take minutes.
    with slow_jrni(every=0.2, size=1000) as url:
        jrni = JrniConnection(url, "37000", f"{PREFIX}{INTEGRATION}/jrni")
        services = replace(
            services,
            integrations=FakeIntegrations(integration(jrni=jrni, test_endpoints=True)),
            bookings_for=lambda i: JrniBookingSource(JrniClient(i.jrni, SECRET, timeout=5.0)),
        )
        event = rest_event(
            "GET",
            f"/admin/integrations/{INTEGRATION}/mappings",
            resource="/admin/integrations/{integration_id}/mappings",
            path_parameters={"integration_id": INTEGRATION},
        )
        api = build_admin_api(lambda: services, deadline_seconds=1.5)
        started = time.monotonic()
        answer = api.resolve(event, LambdaContext())
        took = time.monotonic() - started
    assert answer["statusCode"] == 504, answer["body"]
    message = json.loads(answer["body"])["message"]
    assert "JRNI did not answer" in message and "within the 1.5 s" in message and "try again" in message
    assert took < 2.0


def test_the_admin_deadline_is_well_under_api_gateway_s() -> None:
    assert DEADLINE_SECONDS <= 20
