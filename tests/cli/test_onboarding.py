"""A whole onboarding with ``calsync`` on the local stack, as an operator does it after deploying: create the
integration, test it, automap, import the rest from CSV (a bad file first: nothing applied), follow the backfill,
read the status table. The stack starts empty; JRNI and Exchange hold the demo bank plus one adviser, Dan, whose
JRNI e-mail is not his mailbox (so automap cannot map him, and the CSV does)."""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from local.seed import DEMO_SEED, load_seed, seed_emulators, store_secrets
from local.stack import LocalStack
from tests.cli.conftest import Cli, local_stack

DAN = {"id": 4, "company_id": 37001, "name": "Dan Diaz", "email": "dan@bank.example.test"}
DAN_MAILBOX = "d.diaz@bank.example.test"
DAN_BOOKINGS = 4


@pytest.fixture(scope="module")
def bare_stack() -> Iterator[LocalStack]:
    yield from local_stack(seed=False)


@pytest.fixture(scope="module")
def organisation(bare_stack: LocalStack) -> dict[str, Any]:
    """The demo bank and Dan in both emulators; nothing in calsync yet."""
    assert bare_stack.urls is not None
    seed = copy.deepcopy(load_seed(DEMO_SEED))
    seed["jrni"]["people"].append(DAN)
    seed["exchange"]["mailboxes"].append(
        {"address": DAN_MAILBOX, "display_name": "Dan Diaz", "time_zone": "GMT Standard Time"}
    )
    seed_emulators(seed, ews_url=bare_stack.urls.ews, jrni_url=bare_stack.urls.jrni)
    return seed


def _book_dan(stack: LocalStack) -> None:
    assert stack.urls is not None
    first = datetime.now(UTC).replace(microsecond=0, second=0, minute=0) + timedelta(days=2)
    for day in range(DAN_BOOKINGS):
        made = requests.post(
            f"{stack.urls.jrni}/_emulator/bookings",
            json={
                "company_id": 37001,
                "service_id": 22,
                "person_id": DAN["id"],
                "datetime": (first + timedelta(days=day)).isoformat(),
                "client": {
                    "first_name": "Client",
                    "last_name": f"No{day}",
                    "email": "c@customer.example.test",
                },
            },
            timeout=5,
        )
        assert made.status_code == 201, made.text


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.split("│")[1:-1]]


def test_an_operator_onboards_a_bank_with_the_cli_alone(
    bare_stack: LocalStack, organisation: dict[str, Any], tmp_path: Path
) -> None:
    assert bare_stack.urls is not None
    cli = Cli(bare_stack)
    # The secrets an operator puts in Secrets Manager (the CLI never handles them), under the stack's prefix.
    names = store_secrets(
        {**organisation, "integration": {**organisation["integration"], "id": "branch"}},
        "branch",
        secrets_client=bare_stack.client("secretsmanager"),
        secrets_prefix=os.environ.get("SECRETS_PREFIX", ""),
    )
    integration = tmp_path / "branch.json"
    integration.write_text(
        json.dumps(
            {
                "id": "branch",
                "name": "Example Bank Manchester",
                "jrni": {
                    "base_url": bare_stack.urls.jrni,
                    "company_id": "37000",
                    "secret_name": names["jrni"],
                },
                "exchange": {
                    "endpoint": f"{bare_stack.urls.ews}/EWS/Exchange.asmx",
                    "secret_name": names["exchange"],
                    "auth": "basic",
                    "access_type": "impersonation",
                },
                "webhook_secret_name": names["webhook"],
                "test_endpoints": True,  # the emulators are plain http on loopback
            }
        ),
        encoding="utf-8",
    )

    created = cli("integrations", "create", str(integration))
    assert created.exit_code == 0, created.stderr
    assert created.stdout.startswith("integration branch created")

    tested = cli("test")
    assert tested.exit_code == 0, tested.stdout + tested.stderr
    checks = [_cells(line) for line in tested.stdout.splitlines() if line.count("│") == 5]
    assert checks and all(cells[0] in ("✔ ok", "! warning", "- skipped") for cells in checks), tested.stdout
    assert tested.stdout.splitlines()[-1] == "all checks passed"

    automapped = cli("mappings", "automap")
    assert automapped.exit_code == 0, automapped.stderr
    out = automapped.stdout
    assert "mapped (4)" in out and "not mapped (1)" in out, out
    (dan,) = [_cells(line) for line in out.splitlines() if "Dan Diaz" in line]
    # Why not: his JRNI e-mail is no mailbox the service account can open.
    assert dan[:2] == ["person", "4"] and "dan@bank.example.test" in dan[3], dan

    _book_dan(bare_stack)
    bad = tmp_path / "rest-bad.csv"
    bad.write_text(f"kind,jrni_id,mailbox\nperson,4,{DAN_MAILBOX}\nperson,99,nobody@bank.example.test\n")
    refused = cli("mappings", "import", str(bad))
    assert refused.exit_code == 1
    assert re.search(r"rest-bad\.csv:3: .*99", refused.stderr), refused.stderr
    rows = json.loads(cli("--json", "mappings", "list").stdout)["mappings"]
    assert next(r for r in rows if r["jrni_id"] == "4")["mailbox"] is None  # nothing applied

    rest = tmp_path / "rest.csv"
    rest.write_text(f"kind,jrni_id,mailbox\nperson,4,{DAN_MAILBOX}\n")
    imported = cli("mappings", "import", str(rest), "--wait")
    assert imported.exit_code == 0, imported.stderr
    lines = imported.stdout.splitlines()
    assert lines[0] == "1 applied, 0 unchanged, 1 backfill(s)"
    progress = lines[1:]
    assert progress and all(line.startswith("backfill person 4: ") for line in progress), lines
    assert (
        progress[-1]
        == f"backfill person 4: {DAN_BOOKINGS}/{DAN_BOOKINGS} writes done (created {DAN_BOOKINGS})"
    )
    items = requests.get(f"{bare_stack.urls.ews}/_emulator/mailboxes/{DAN_MAILBOX}/items", timeout=5).json()
    assert len(items) == DAN_BOOKINGS

    status = cli("status")
    assert status.exit_code == 0, status.stderr
    assert status.stdout.startswith("integration branch: 5 mapped")
    table = {cells[1]: cells for cells in map(_cells, status.stdout.splitlines()) if len(cells) == 9}
    assert set(table) == {"1", "2", "3", "4", "11"}, status.stdout
    assert table["4"][2:4] == ["Dan Diaz", DAN_MAILBOX]
    assert re.fullmatch(r"\d+s ago", table["4"][6]) and table["4"][8] == "—", table["4"]
