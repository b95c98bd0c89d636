"""``POST /admin/integrations/{id}/test`` with the real JRNI and EWS checks, against both emulators over HTTP: all
well, and each way an integration is commonly set up wrong, told apart with its own sentence and fix."""

from __future__ import annotations

import copy
import json
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from calsync.adapters.ews.diagnosis import PROBE_SUBJECT, EwsDiagnosis
from calsync.adapters.jrni import JrniBookingSource, JrniClient
from calsync.adapters.jrni.diagnosis import JrniDiagnosis
from calsync.domain import (
    AccessType,
    ExchangeAuth,
    ExchangeConnection,
    Integration,
    JrniConnection,
    Mapping,
    ResourceKind,
)
from calsync.ports import ConnectionChecks
from calsync.transport.admin import build_admin_api
from calsync.usecases.admin import AdminDeps
from calsync.usecases.diagnose import diagnose
from emulators.common.server import BackgroundServer
from emulators.ews.app import build_app
from emulators.ews.settings import EmulatorSettings
from emulators.ews.testing import EwsEmulator
from local.seed import DEMO_SEED
from tests.apigw import LambdaContext, rest_event
from tests.calsync.adapters.jrni_support import HEAD_OFFICE, SECRET, control
from tests.calsync.builders import integration
from tests.calsync.fakes import (
    FakeMappings,
    FakeSecrets,
    fake_admin_deps,
)
from tests.tls import write_self_signed

pytestmark = pytest.mark.usefixtures("fresh_exchangelib")

PASSWORD = "pass-for-tests"
SERVICE = "svc@example.com"
ALICE, BOB = "alice@example.com", "bob@example.com"
TENANT, CLIENT_ID, CLIENT_SECRET = "contoso-tenant", "calsync-app", "client-secret-for-tests"
BASIC = {"username": SERVICE, "password": PASSWORD}
OAUTH = {"tenant_id": TENANT, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
JRNI_SECRET, EWS_SECRET = "int-1/jrni", "int-1/exchange"


@pytest.fixture
def ews(ews_server: EwsEmulator) -> Iterator[EwsEmulator]:
    """The service account, alice and bob; impersonation not granted yet."""
    ews_server.reset()
    for address in (SERVICE, ALICE, BOB):
        ews_server.add_account(address, PASSWORD)
    yield ews_server
    ews_server.control("DELETE", "faults")


def impersonation(ews: EwsEmulator) -> None:
    ews.control("POST", "impersonation", {"service_account": SERVICE, "mailboxes": ["*"]})


def an_integration(jrni_url: str, endpoint: str, **exchange: Any) -> Integration:
    return integration(
        jrni=JrniConnection(jrni_url, str(HEAD_OFFICE), JRNI_SECRET),
        exchange=replace(ExchangeConnection(endpoint, EWS_SECRET), **exchange),
    )


def services(
    found: Integration,
    *,
    jrni_secret: dict[str, str] | None = None,
    ews_secret: dict[str, str] | None = None,
    mailboxes: tuple[str, ...] = (ALICE, BOB),
) -> AdminDeps:
    checks = ConnectionChecks(
        jrni=JrniDiagnosis(found.jrni, lambda: jrni_secret or SECRET),
        exchange=EwsDiagnosis(found.exchange, lambda: ews_secret or BASIC),
    )
    return fake_admin_deps(
        found,
        mappings=FakeMappings(
            *[Mapping(found.id, ResourceKind.PERSON, str(n), m) for n, m in enumerate(mailboxes, start=1)]
        ),
        checks_for=lambda _: checks,
    )


def post_test(deps: AdminDeps, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    path = "/admin/integrations/int-1/test"
    event = rest_event(
        "POST",
        path,
        body if body is not None else {},
        resource="/admin/integrations/{integration_id}/test",
        path_parameters={"integration_id": "int-1"},
    )
    answer = build_admin_api(lambda: deps).resolve(event, LambdaContext())
    return answer["statusCode"], json.loads(answer["body"])


def checks(answer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {check["name"]: check for check in answer["checks"]}


def states(answer: dict[str, Any]) -> list[tuple[str, str]]:
    return [(check["name"], check["state"]) for check in answer["checks"]]


def failed(answer: dict[str, Any]) -> list[dict[str, Any]]:
    return [check for check in answer["checks"] if check["state"] == "failed"]


# ---- all well --------------------------------------------------------------------------------------------------------


def test_all_well_is_ok_with_every_line_of_the_checklist(jrni_url: str, ews: EwsEmulator) -> None:
    impersonation(ews)
    status, answer = post_test(services(an_integration(jrni_url, ews.ews_url)))

    assert status == 200 and answer["ok"] is True, failed(answer)
    assert states(answer) == [
        ("JRNI reachable", "ok"),
        ("JRNI login", "ok"),
        ("JRNI companies", "ok"),
        ("Exchange endpoint reachable", "ok"),
        ("TLS certificate", "skipped"),  # plain http: a test integration
        ("Exchange authentication", "ok"),
        ("Exchange server version", "ok"),
        ("autodiscover", "skipped"),
        ("mailboxes", "ok"),
        (f"mailbox {ALICE}", "ok"),
        (f"mailbox {BOB}", "ok"),
    ]
    found = checks(answer)
    assert "Head Office (10) and 2 child companies: Branch Paris (11), Paris Annex (12)" in found[
        "JRNI companies"
    ]["detail"].replace("the parent company ", "")
    assert (
        found["Exchange server version"]["detail"]
        == "Exchange (build 15.1.2507.6) answers requests as Exchange2016"
    )
    assert "by impersonation, with Editor rights" in found[f"mailbox {ALICE}"]["detail"]
    assert all(check["fix"] is None for check in answer["checks"])


def test_the_write_probe_creates_a_private_free_item_and_deletes_it(jrni_url: str, ews: EwsEmulator) -> None:
    impersonation(ews)
    deps = services(an_integration(jrni_url, ews.ews_url))
    status, answer = post_test(deps, {"mailbox": ALICE, "write": True})

    assert status == 200 and answer["ok"] is True, failed(answer)
    assert states(answer)[-3:] == [
        (f"mailbox {ALICE}", "ok"),
        (f"write probe in {ALICE}: create", "ok"),
        (f"write probe in {ALICE}: delete", "ok"),
    ]
    assert ews.items(ALICE) == [] and ews.items(BOB) == []  # gone again; bob (mapped, not given) untouched

    # When the delete is refused, the answer says so and names the item to remove by hand.
    ews.control("POST", "faults", {"operation": "DeleteItem", "kind": "server_busy", "count": 1})
    _, answer = post_test(deps, {"mailbox": ALICE, "write": True})
    [refused] = failed(answer)
    assert refused["name"] == f"write probe in {ALICE}: delete"
    assert refused["detail"].startswith("the probe item was created but not deleted: Exchange is throttling")
    assert refused["fix"].startswith(f"delete {PROBE_SUBJECT!r} at ")
    [probe] = ews.items(ALICE)
    assert probe["subject"] == PROBE_SUBJECT
    assert (probe["sensitivity"], probe["legacy_free_busy_status"]) == ("Private", "Free")


def test_oauth2_all_well(jrni_url: str, ews: EwsEmulator) -> None:
    oauth_app(ews)
    found = an_integration(
        jrni_url,
        ews.ews_url,
        auth=ExchangeAuth.OAUTH2,
        token_url=f"{ews.base_url}/{{tenant}}/oauth2/v2.0/token",
    )
    status, answer = post_test(services(found, ews_secret=OAUTH))

    assert status == 200 and answer["ok"] is True, failed(answer)
    assert checks(answer)["Exchange authentication"]["detail"] == (
        f"the token endpoint issued an access token to OAuth application {CLIENT_ID}"
    )
    assert checks(answer)["Exchange server version"]["state"] == "skipped"


def test_oauth2_app_not_granted_a_mailbox(jrni_url: str, ews: EwsEmulator) -> None:
    oauth_app(ews)
    ews.add_account("carol@example.com", PASSWORD)
    found = an_integration(
        jrni_url,
        ews.ews_url,
        auth=ExchangeAuth.OAUTH2,
        token_url=f"{ews.base_url}/{{tenant}}/oauth2/v2.0/token",
    )
    _, answer = post_test(services(found, ews_secret=OAUTH), {"mailbox": "carol@example.com"})

    [refused] = failed(answer)
    assert refused["detail"] == (
        f"OAuth application {CLIENT_ID} may not impersonate carol@example.com (ErrorImpersonateUserDenied)"
    )
    assert "full_access_as_app" in refused["fix"] and "application access policy" in refused["fix"]


def test_ntlm_all_well(jrni_url: str, ews: EwsEmulator) -> None:
    impersonation(ews)
    _, answer = post_test(services(an_integration(jrni_url, ews.ews_url, auth=ExchangeAuth.NTLM)))

    assert answer["ok"] is True, failed(answer)
    assert (
        checks(answer)["Exchange authentication"]["detail"]
        == f"Exchange accepted the NTLM credentials of {SERVICE}"
    )


def oauth_app(ews: EwsEmulator) -> None:
    ews.control(
        "POST",
        "oauth-apps",
        {
            "tenant_id": TENANT,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "mailboxes": [ALICE, BOB],
        },
        expect=201,
    )


# ---- each way it goes wrong ------------------------------------------------------------------------------------------


def test_wrong_exchange_password(jrni_url: str, ews: EwsEmulator) -> None:
    impersonation(ews)
    deps = services(
        an_integration(jrni_url, ews.ews_url), ews_secret={"username": SERVICE, "password": "wrong"}
    )
    _, answer = post_test(deps)

    assert answer["ok"] is False
    [refused] = failed(answer)
    assert refused["name"] == "Exchange authentication"
    assert refused["detail"].endswith(f"refused the credentials of {SERVICE} (HTTP 401)")
    assert f"user name and password in the secret '{EWS_SECRET}'" in refused["fix"]
    assert checks(answer)[f"mailbox {ALICE}"] == {
        "name": f"mailbox {ALICE}",
        "state": "skipped",
        "detail": "not checked: Exchange authentication failed",
        "fix": None,
    }


def test_impersonation_not_granted(jrni_url: str, ews: EwsEmulator) -> None:
    _, answer = post_test(services(an_integration(jrni_url, ews.ews_url)))

    assert checks(answer)["Exchange authentication"]["state"] == "ok"
    assert [c["name"] for c in failed(answer)] == [f"mailbox {ALICE}", f"mailbox {BOB}"]
    refused = checks(answer)[f"mailbox {ALICE}"]
    assert refused["detail"] == f"{SERVICE} may not impersonate {ALICE} (ErrorImpersonateUserDenied)"
    assert refused["fix"].startswith(
        f"grant ApplicationImpersonation to {SERVICE} (New-ManagementRoleAssignment"
    )


def test_delegate_access_missing_for_one_mailbox(jrni_url: str, ews: EwsEmulator) -> None:
    ews.control("POST", "delegates", {"owner": ALICE, "delegate": SERVICE, "permission": "Editor"})
    ews.control("POST", "delegates", {"owner": BOB, "delegate": SERVICE, "permission": "None"})
    deps = services(an_integration(jrni_url, ews.ews_url, access_type=AccessType.DELEGATE))
    _, answer = post_test(deps)

    assert checks(answer)[f"mailbox {ALICE}"]["state"] == "ok"
    assert "as a delegate" in checks(answer)[f"mailbox {ALICE}"]["detail"]
    [refused] = failed(answer)
    assert refused["name"] == f"mailbox {BOB}"
    assert refused["detail"] == f"{SERVICE} may not open the calendar of {BOB} (ErrorAccessDenied)"
    assert refused["fix"].startswith(
        f"give {SERVICE} Editor on {BOB}'s calendar (Add-MailboxFolderPermission"
    )


def test_delegate_that_may_only_read_is_not_enough(jrni_url: str, ews: EwsEmulator) -> None:
    ews.control("POST", "delegates", {"owner": ALICE, "delegate": SERVICE, "permission": "Reviewer"})
    deps = services(
        an_integration(jrni_url, ews.ews_url, access_type=AccessType.DELEGATE), mailboxes=(ALICE,)
    )
    _, answer = post_test(deps)

    [refused] = failed(answer)
    assert refused["detail"] == (
        f"{SERVICE} opens {ALICE} as a delegate but may not create or change or delete items in its calendar"
    )
    assert "Editor" in refused["fix"]


def test_unknown_mailbox(jrni_url: str, ews: EwsEmulator) -> None:
    impersonation(ews)
    _, answer = post_test(services(an_integration(jrni_url, ews.ews_url)), {"mailbox": "nobody@example.com"})

    [refused] = failed(answer)
    assert refused["name"] == "mailbox nobody@example.com"
    assert refused["detail"] == "Exchange has no mailbox nobody@example.com (ErrorNonExistentMailbox)"
    assert "primary SMTP address" in refused["fix"]


def test_endpoint_unreachable(jrni_url: str) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    _, answer = post_test(services(an_integration(jrni_url, f"http://127.0.0.1:{port}/EWS/Exchange.asmx")))

    [refused] = failed(answer)
    assert refused["name"] == "Exchange endpoint reachable"
    assert refused["detail"] == f"127.0.0.1:{port} refused the connection: nothing listens there"
    assert "firewall" in refused["fix"]
    assert [c["state"] for c in answer["checks"][:3]] == ["ok", "ok", "ok"]  # JRNI is checked all the same
    assert checks(answer)["TLS certificate"]["detail"] == "not checked: Exchange endpoint reachable failed"
    assert checks(answer)[f"mailbox {ALICE}"]["detail"] == "not checked: Exchange endpoint reachable failed"


def test_endpoint_with_a_wrong_path(jrni_url: str, ews: EwsEmulator) -> None:
    _, answer = post_test(services(an_integration(jrni_url, f"{ews.base_url}/EWS/Exchange.aspx")))

    [refused] = failed(answer)
    assert refused["detail"].endswith("answers, but has no EWS at /EWS/Exchange.aspx (HTTP 404)")
    assert "/EWS/Exchange.asmx" in refused["fix"]


def test_endpoint_host_that_does_not_resolve(jrni_url: str) -> None:
    _, answer = post_test(services(an_integration(jrni_url, "https://ews.invalid/EWS/Exchange.asmx")))

    [refused] = failed(answer)
    assert refused["detail"] == "the host name ews.invalid does not resolve"


def test_oauth2_client_secret_wrong(jrni_url: str, ews: EwsEmulator) -> None:
    oauth_app(ews)
    found = an_integration(
        jrni_url,
        ews.ews_url,
        auth=ExchangeAuth.OAUTH2,
        token_url=f"{ews.base_url}/{{tenant}}/oauth2/v2.0/token",
    )
    _, answer = post_test(services(found, ews_secret={**OAUTH, "client_secret": "not-the-secret"}))

    [refused] = failed(answer)
    assert refused["name"] == "Exchange authentication"
    assert refused["detail"] == f"the token endpoint refused OAuth application {CLIENT_ID} (invalid_client)"
    assert f"client_secret in the secret '{EWS_SECRET}'" in refused["fix"]


def test_wrong_jrni_password(jrni_url: str, ews: EwsEmulator) -> None:
    impersonation(ews)
    _, answer = post_test(
        services(an_integration(jrni_url, ews.ews_url), jrni_secret={**SECRET, "password": "wrong"})
    )

    [refused] = failed(answer)
    assert refused["name"] == "JRNI login"
    assert "(HTTP 401)" in refused["detail"] and f"in the secret '{JRNI_SECRET}'" in refused["fix"]
    assert checks(answer)["JRNI reachable"]["state"] == "ok"
    assert checks(answer)["JRNI companies"]["detail"] == "not checked: JRNI login failed"
    assert checks(answer)[f"mailbox {ALICE}"]["state"] == "ok"  # Exchange is checked all the same


def test_an_exchange_that_does_not_answer_in_time(jrni_url: str, ews: EwsEmulator) -> None:
    impersonation(ews)
    ews.control("POST", "faults", {"operation": "ConvertId", "kind": "delay", "delay_ms": 2500, "count": 1})
    began = time.monotonic()

    found = diagnose(services(an_integration(jrni_url, ews.ews_url)), "int-1", deadline_seconds=1)

    assert time.monotonic() - began < 2
    by_name = {c.name: c for c in found.checks}
    assert (by_name["Exchange authentication"].state.value, by_name["Exchange authentication"].detail) == (
        "failed",
        "did not answer within 1 s",
    )
    assert by_name[f"mailbox {ALICE}"].detail == "not checked: Exchange authentication did not answer in time"
    assert by_name["JRNI companies"].state.value == "ok"
    time.sleep(1.6)  # the delayed answer arrives, and is thrown away, before the next test


def test_bad_requests_are_refused(jrni_url: str, ews: EwsEmulator) -> None:
    deps = services(an_integration(jrni_url, ews.ews_url))
    status, answer = post_test(deps, {"mailbox": "not an address"})
    assert status == 400 and "not a mailbox address" in answer["message"]
    status, answer = post_test(deps, {"write": "sometimes"})
    assert status == 422
    status, answer = post_test(deps, {"mailboxes": [ALICE]})
    assert status == 422
    event = rest_event(
        "POST",
        "/admin/integrations/nope/test",
        {},
        resource="/admin/integrations/{integration_id}/test",
        path_parameters={"integration_id": "nope"},
    )
    answer_404 = build_admin_api(lambda: deps).resolve(event, LambdaContext())
    assert answer_404["statusCode"] == 404 and "nope" in json.loads(answer_404["body"])["message"]


# ---- TLS -------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def https_ews(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EwsEmulator]:
    """An https emulator with a self-signed certificate, the service account allowed to impersonate alice."""
    cert_file, key_file = write_self_signed(Path(tmp_path_factory.mktemp("tls")))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    emulator = EwsEmulator(EmulatorSettings())
    emulator.server = BackgroundServer(lambda: build_app(emulator.settings), ssl_context=context)
    emulator.http.verify = str(cert_file)  # the control plane: the test trusts its own certificate
    emulator.http.trust_env = False
    emulator.start()
    emulator.add_account(SERVICE, PASSWORD)
    emulator.add_account(ALICE, PASSWORD)
    emulator.control("POST", "impersonation", {"service_account": SERVICE, "mailboxes": ["*"]})
    yield emulator
    emulator.stop()


def test_tls_verification_failing_on_a_self_signed_certificate(jrni_url: str, https_ews: EwsEmulator) -> None:
    _, answer = post_test(services(an_integration(jrni_url, https_ews.ews_url), mailboxes=(ALICE,)))

    assert checks(answer)["Exchange endpoint reachable"]["state"] == "ok"
    [refused] = failed(answer)
    assert refused["name"] == "TLS certificate"
    assert "could not be verified (self-signed certificate)" in refused["detail"]
    assert "public certificate authority" in refused["fix"] and "verify_tls false" in refused["fix"]


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_tls_verification_off_is_a_warning_and_the_rest_works(jrni_url: str, https_ews: EwsEmulator) -> None:
    found = an_integration(jrni_url, https_ews.ews_url, verify_tls=False)
    _, answer = post_test(services(found, mailboxes=(ALICE,)))

    assert answer["ok"] is True, failed(answer)
    tls = checks(answer)["TLS certificate"]
    assert tls["state"] == "warning" and "would not verify (self-signed certificate)" in tls["detail"]
    assert "verify_tls" in tls["fix"]
    assert checks(answer)[f"mailbox {ALICE}"]["state"] == "ok"


def test_jrni_unreachable(ews: EwsEmulator) -> None:
    impersonation(ews)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    _, answer = post_test(services(an_integration(f"http://127.0.0.1:{port}", ews.ews_url)))

    [refused] = failed(answer)
    assert (refused["name"], refused["detail"]) == (
        "JRNI reachable",
        f"127.0.0.1:{port} refused the connection",
    )
    assert [checks(answer)[n]["detail"] for n in ("JRNI login", "JRNI companies")] == [
        "not checked: JRNI reachable failed"
    ] * 2


def test_a_secret_that_cannot_be_read_is_a_failed_check_not_an_error(jrni_url: str, ews: EwsEmulator) -> None:
    found = an_integration(jrni_url, ews.ews_url)
    secrets = FakeSecrets()
    deps = replace(
        services(found),
        checks_for=lambda _: ConnectionChecks(
            jrni=JrniDiagnosis(found.jrni, lambda: secrets.get(JRNI_SECRET)),
            exchange=EwsDiagnosis(found.exchange, lambda: secrets.get(EWS_SECRET)),
        ),
    )
    status, answer = post_test(deps)

    assert status == 200
    assert [(c["name"], c["fix"]) for c in failed(answer)] == [
        ("JRNI login", f'store {{"app_id", "app_key", "email", "password"}} in the secret {JRNI_SECRET!r}'),
        ("Exchange authentication", f'store {{"username", "password"}} in the secret {EWS_SECRET!r}'),
    ]
    assert checks(answer)["JRNI reachable"]["state"] == "skipped"
    assert checks(answer)["Exchange endpoint reachable"]["state"] == "ok"


# ---- automap on the demo organisation --------------------------------------------------------------------------------

DEMO: dict[str, Any] = json.loads(DEMO_SEED.read_text(encoding="utf-8"))
# Besides the demo's staff: an adviser from a partner firm (no mailbox in the bank's Exchange), one on leave
# (disabled), one whose e-mail JRNI holds mistyped, and a room JRNI has no e-mail for.
EXTRA_PEOPLE = [
    {"id": 4, "company_id": 37001, "name": "Dan Davies", "email": "dan@partner.example.test"},
    {"id": 5, "company_id": 37001, "name": "Eva Evans", "email": "eva@bank.example.test", "disabled": True},
    {"id": 6, "company_id": 37001, "name": "Finn Fox", "email": "finn at bank.example.test"},
]
EXTRA_RESOURCES = [{"id": 12, "company_id": 37001, "name": "Meeting Room 2"}]


@pytest.fixture
def demo(emulator: BackgroundServer, ews_server: EwsEmulator) -> Iterator[AdminDeps]:
    """The demo organisation on both emulators, as local/seed.py sets it up, and an integration with no mappings."""
    jrni_seed = copy.deepcopy(DEMO["jrni"])
    jrni_seed["people"] += EXTRA_PEOPLE
    jrni_seed["resources"] += EXTRA_RESOURCES
    control(emulator.base_url, "POST", "reset")
    control(emulator.base_url, "POST", "seed", json=jrni_seed)
    ews_server.reset()
    service = DEMO["exchange"]["service_account"]
    ews_server.add_account(service["address"], service["password"])
    for mailbox in DEMO["exchange"]["mailboxes"]:
        ews_server.add_account(mailbox["address"], PASSWORD, display_name=mailbox["display_name"])
    ews_server.control("POST", "impersonation", {"service_account": service["address"], "mailboxes": ["*"]})
    app, admin = jrni_seed["apps"][0], jrni_seed["admins"][0]
    jrni_secret = {
        "app_id": app["app_id"],
        "app_key": app["app_key"],
        "email": admin["email"],
        "password": PASSWORD,
    }
    found = integration(
        jrni=JrniConnection(emulator.base_url, str(DEMO["integration"]["company_id"]), JRNI_SECRET),
        exchange=ExchangeConnection(ews_server.ews_url, EWS_SECRET),
    )
    client = JrniClient(found.jrni, jrni_secret)
    deps = replace(
        services(
            found, jrni_secret=jrni_secret, ews_secret={"username": service["address"], "password": PASSWORD}
        ),
        mappings=FakeMappings(),
        bookings_for=lambda _: JrniBookingSource(client),
    )
    yield deps
    client.close()


def test_automap_on_the_demo_organisation(demo: AdminDeps) -> None:
    status, answer = post_automap(demo)

    assert status == 200
    assert [(row["jrni_id"], row["name"], row["mailbox"]) for row in answer["mapped"]] == [
        ("1", "Alice Adams", "alice@bank.example.test"),
        ("2", "Ben Brown", "ben@bank.example.test"),
        ("3", "Chloe Clark", "chloe@bank.example.test"),  # her JRNI e-mail (no ews_email) is her mailbox
        ("11", "Meeting Room 1", "room1@bank.example.test"),
    ]
    assert {row["jrni_id"]: row["reason"] for row in answer["not_mapped"]} == {
        "4": "cannot open dan@partner.example.test: Exchange has no mailbox dan@partner.example.test "
        "(ErrorNonExistentMailbox); check the address: map the staff member or resource to the mailbox's primary "
        "SMTP address",
        "5": "disabled in JRNI: map it by hand if it should be synced",
        "6": "its JRNI e-mail 'finn at bank.example.test' is not a mailbox address",
        "12": "JRNI has no e-mail for it (neither ews_email nor email)",
    }
    mapped = {(m.kind.value, m.jrni_id): m.mailbox for m in demo.mappings.mappings("int-1")}
    assert mapped == {
        ("person", "1"): "alice@bank.example.test",
        ("person", "2"): "ben@bank.example.test",
        ("person", "3"): "chloe@bank.example.test",
        ("resource", "11"): "room1@bank.example.test",
    }
    assert len(demo.reconcile_queue.sent) == 4  # type: ignore[attr-defined]  # each new mapping backfilled

    # Again: nothing left to map; the same four are reported, and nothing is sent twice.
    status, again = post_automap(demo)
    assert status == 200 and again["mapped"] == [] and again["not_mapped"] == answer["not_mapped"]
    assert len(demo.reconcile_queue.sent) == 4  # type: ignore[attr-defined]


def post_automap(deps: AdminDeps) -> tuple[int, dict[str, Any]]:
    event = rest_event(
        "POST",
        "/admin/integrations/int-1/mappings/automap",
        {},
        resource="/admin/integrations/{integration_id}/mappings/automap",
        path_parameters={"integration_id": "int-1"},
    )
    answer = build_admin_api(lambda: deps).resolve(event, LambdaContext())
    return answer["statusCode"], json.loads(answer["body"])
