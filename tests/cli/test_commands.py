"""Each command of ``calsync`` that maps to a route of the admin API, against the local stack's demo bank."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from local.stack import LocalStack
from tests.cli.conftest import Cli, calsync


@pytest.fixture(scope="module")
def cli(demo_stack: LocalStack) -> Iterator[Cli]:
    yield Cli(demo_stack)


def _booking_for_chloe(stack: LocalStack, days: int = 3, first: str = "Sam", last: str = "Lee") -> int:
    """A Savings review with Chloe (person 3, not mapped) in ``days`` days, made in JRNI: its id."""
    assert stack.urls is not None
    start = datetime.now(UTC).replace(microsecond=0, second=0, minute=0) + timedelta(days=days)
    made = requests.post(
        f"{stack.urls.jrni}/_emulator/bookings",
        json={
            "company_id": 37001,
            "service_id": 22,
            "person_id": 3,
            "datetime": start.isoformat(),
            "client": {"first_name": first, "last_name": last, "email": "sam@customer.example.test"},
        },
        timeout=5,
    )
    assert made.status_code == 201, made.text
    return int(made.json()["id"])


def test_integrations_list_shows_the_demo_bank_as_a_table_and_as_json(cli: Cli) -> None:
    shown = cli("integrations", "list")
    assert shown.exit_code == 0, shown.stderr
    (line,) = [line for line in shown.stdout.splitlines() if "demo-bank" in line]
    assert "Example Bank (local demo)" in line and "basic, impersonation" in line

    as_json = cli("--json", "integrations", "list")
    assert as_json.exit_code == 0
    assert [i["id"] for i in json.loads(as_json.stdout)["integrations"]] == ["demo-bank"]


def test_mappings_list_uses_the_only_integration_and_shows_who_is_not_mapped(cli: Cli) -> None:
    shown = cli("mappings", "list")
    assert shown.exit_code == 0, shown.stderr
    rows = {line.split("│")[2].strip(): line for line in shown.stdout.splitlines() if line.count("│") > 5}
    assert "alice@bank.example.test" in rows["1"]
    assert "(not mapped)" in rows["3"] and "Chloe Clark" in rows["3"]

    as_json = json.loads(cli("--json", "--integration", "demo-bank", "mappings", "list").stdout)
    mailboxes = {(r["kind"], r["jrni_id"]): r["mailbox"] for r in as_json["mappings"]}
    assert mailboxes == {
        ("person", "1"): "alice@bank.example.test",
        ("person", "2"): "ben@bank.example.test",
        ("person", "3"): None,
        ("resource", "11"): "room1@bank.example.test",
    }


def test_mappings_set_with_wait_follows_the_backfill_then_unset_removes_the_mapping(
    cli: Cli, demo_stack: LocalStack
) -> None:
    _booking_for_chloe(demo_stack)
    mapped = cli("mappings", "set", "person", "3", "Chloe@bank.example.test", "--wait")
    assert mapped.exit_code == 0, mapped.stderr
    lines = mapped.stdout.splitlines()
    # Plain progress lines (stdout is not a terminal), the last one the backfill's end: Chloe's booking written.
    assert all(line.startswith("backfill person 3 → chloe@bank.example.test: ") for line in lines), lines
    assert lines[-1].endswith(": 1/1 writes done (created 1)"), lines
    items = requests.get(
        f"{demo_stack.urls.ews}/_emulator/mailboxes/chloe@bank.example.test/items", timeout=5
    )  # type: ignore[union-attr]
    assert ["Sam Lee" in item["subject"] for item in items.json()] == [True]

    again = cli("mappings", "set", "person", "3", "chloe@bank.example.test")
    assert again.exit_code == 0
    assert "unchanged: already mapped there" in again.stdout

    unset = cli("--json", "mappings", "unset", "person", "3")
    assert unset.exit_code == 0
    assert json.loads(unset.stdout) == {"kind": "person", "jrni_id": "3", "mailbox": None}
    rows = json.loads(cli("--json", "mappings", "list").stdout)["mappings"]
    assert next(r for r in rows if r["jrni_id"] == "3")["mailbox"] is None

    gone = cli("mappings", "unset", "person", "3")
    assert gone.exit_code == 3
    assert "person 3 is not mapped" in gone.stderr and "what to do:" in gone.stderr
    assert gone.stdout == ""


def test_status_shows_a_row_per_mapping_with_its_state_and_last_sync(cli: Cli) -> None:
    shown = cli("status")
    assert shown.exit_code == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith("integration demo-bank: 3 mapped; outcomes: ")
    header = next(line for line in lines if "last reconcile" in line)
    assert [cell.strip() for cell in header.split("┃")[1:-1]] == [
        "kind", "id", "name", "mailbox", "state", "last sync", "last reconcile", "lag", "last error",
    ]  # fmt: skip
    rows = {line.split("│")[2].strip(): line for line in lines if line.count("│") > 5}
    assert set(rows) == {"1", "2", "11", "3"}, shown.stdout
    cells = [cell.strip() for cell in rows["1"].split("│")[1:-1]]
    assert cells[:3] == ["person", "1", "Alice Adams"]
    assert re.fullmatch(r"\d+[smh] ago", cells[6]), cells  # reconciled: the seed's backfill

    # Chloe, mapped and unmapped again by the test above, is listed for the booking she has that syncs nowhere.
    chloe = [cell.strip() for cell in rows["3"].split("│")[1:-1]]
    assert chloe[3:5] == ["(not mapped)", "skipped"] and chloe[8].startswith("unmapped: "), chloe

    as_json = json.loads(cli("--json", "status").stdout)
    assert as_json["status"]["integration_id"] == "demo-bank" and len(as_json["mappings"]) == 4


def test_reconcile_with_wait_shows_the_run_to_its_end(cli: Cli) -> None:
    run = cli("reconcile", "--deep", "--wait")
    assert run.exit_code == 0, run.stderr
    last = run.stdout.splitlines()[-1]
    assert re.fullmatch(r"reconcile [0-9a-f]+: 3/3 mappings done", last), run.stdout

    as_json = cli("--json", "reconcile", "--wait")
    assert as_json.exit_code == 0
    (finished,) = json.loads(as_json.stdout)["runs"]
    assert finished["state"] == "done" and finished["mappings_done"] == 3
    assert "mappings done" in as_json.stderr  # progress goes to stderr with --json: stdout is JSON only


def test_resync_with_wait_follows_one_mapping_and_a_mapping_that_is_not_there_is_not_found(cli: Cli) -> None:
    run = cli("resync", "resource", "11", "--wait")
    assert run.exit_code == 0, run.stderr
    assert run.stdout.splitlines()[-1].startswith("resync resource 11: ")
    assert run.stdout.splitlines()[-1].endswith(" done")

    missing = cli("resync", "person", "3")
    assert missing.exit_code == 3
    assert "person 3 is not mapped in integration 'demo-bank'" in missing.stderr


def test_an_unknown_integration_is_exit_3_with_what_to_do(cli: Cli) -> None:
    answer = cli("--integration", "nobody", "mappings", "list")
    assert answer.exit_code == 3
    assert "calsync: " in answer.stderr and "what to do: check the id" in answer.stderr


def test_bad_input_is_a_usage_error_before_any_request(cli: Cli) -> None:
    answer = cli("mappings", "set", "person", "3", "not an address")
    assert answer.exit_code == 2
    assert "is not a mailbox address" in answer.stderr
    answer = cli("mappings", "set", "team", "3", "chloe@bank.example.test")
    assert answer.exit_code == 2


def test_an_unreachable_api_is_exit_5_and_no_api_at_all_is_a_usage_error() -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    answer = calsync("--api", f"http://127.0.0.1:{port}", "integrations", "list")
    assert answer.exit_code == 5
    assert "cannot reach the API" in answer.stderr and "what to do:" in answer.stderr

    answer = calsync("integrations", "list")
    assert answer.exit_code == 2
    assert "no API given" in answer.stderr


def test_integrations_show_lists_every_setting_by_its_key(cli: Cli) -> None:
    shown = cli("integrations", "show", "demo-bank")
    assert shown.exit_code == 0, shown.stderr
    assert re.search(r"│ exchange\.verify_tls\s+│ true\s+│", shown.stdout), shown.stdout
    assert "version " in shown.stdout.splitlines()[0]


def test_preview_shows_the_sample_a_real_booking_and_each_problem_of_a_template_file(
    cli: Cli, tmp_path: Path
) -> None:
    sample = cli("preview")
    assert sample.exit_code == 0, sample.stderr
    assert "the sample booking, as Outlook shows it" in sample.stdout
    assert "subject: Mortgage advice: Sam Sample" in sample.stdout  # the default subject

    booking = _booking_for_chloe(cli.stack, days=4, first="Kim", last="Park")
    subject = tmp_path / "subject.liquid"
    subject.write_text("{{ service.name }} with {{ client.first_name }} {{ client.last_name }}")
    real = cli("preview", "--booking", str(booking), "--subject", str(subject))
    assert real.exit_code == 0, real.stderr
    assert f"JRNI booking 37001/{booking}" in real.stdout
    assert "subject: Savings review with Kim Park" in real.stdout

    subject.write_text("{{ client.frist_name }}")
    body = tmp_path / "body.liquid"
    body.write_text("<p>\n{% for a in booking.answers %}</p>")
    refused = cli("preview", "--subject", str(subject), "--body", str(body))
    assert refused.exit_code == 1
    assert (
        "subject template: unknown name 'client.frist_name' (did you mean 'client.first_name'?)"
        in refused.stderr
    )
    assert "-> 1:4" in refused.stderr
    assert "body template: {% for %} is never closed" in refused.stderr and "-> 2:1" in refused.stderr

    assert cli("preview", "--booking", "99999999").exit_code == 3
    assert cli("preview", "--booking", "../x").exit_code == 2
