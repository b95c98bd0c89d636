"""How ``calsync`` shows the answers of the admin API's newer routes (test, automap, import, dead letters), and
what it sends them, against a loopback server answering as /admin's contract says."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.cli.conftest import calsync
from tests.cli.loopback import Server


def _run(server: Server, *args: str) -> tuple[int, str, str]:
    answer = calsync("--api", server.url, "--integration", "bank-1", *args)
    return answer.exit_code, answer.stdout, answer.stderr


def test_a_failed_check_is_shown_with_its_fix_and_exits_1(server: Server) -> None:
    server.answer = (
        200,
        {
            "ok": False,
            "checks": [
                {"name": "JRNI reachable", "state": "ok", "detail": "JRNI answered in 80 ms", "fix": None},
                {
                    "name": "Exchange login",
                    "state": "failed",
                    "detail": "Exchange refused the service account's password",
                    "fix": "put the right password in the exchange secret",
                },
                {
                    "name": "test item written",
                    "state": "skipped",
                    "detail": "not asked (--write)",
                    "fix": None,
                },
            ],
        },
    )
    code, out, _ = _run(server, "test", "--mailbox", "Ann@Bank.example.test", "--write")
    assert code == 1
    (login,) = [line for line in out.splitlines() if "Exchange login" in line]
    assert "✘ failed" in login and "put the right password in the exchange secret" in login
    assert "✔ ok" in next(line for line in out.splitlines() if "JRNI reachable" in line)
    assert out.splitlines()[-1] == "1 check(s) failed: see the fix column"
    (sent,) = server.received
    assert sent.path == "/v1/admin/integrations/bank-1/test"
    assert json.loads(sent.body) == {"mailbox": "ann@bank.example.test", "write": True}


def test_all_checks_passing_exits_0_and_json_is_the_answer_alone(server: Server) -> None:
    answer = {
        "ok": True,
        "checks": [{"name": "JRNI reachable", "state": "ok", "detail": "fine", "fix": None}],
    }
    server.answer = (200, answer)
    code, out, _ = _run(server, "test")
    assert code == 0 and out.splitlines()[-1] == "all checks passed"
    answer_json = calsync("--api", server.url, "-i", "bank-1", "--json", "test")
    assert answer_json.exit_code == 0 and json.loads(answer_json.stdout) == answer


def test_automap_shows_who_was_mapped_and_why_the_others_were_not(server: Server) -> None:
    server.answer = (
        200,
        {
            "mapped": [{"kind": "person", "jrni_id": "1", "name": "Ann", "mailbox": "ann@bank.example.test"}],
            "not_mapped": [
                {
                    "kind": "person",
                    "jrni_id": "2",
                    "name": "Bob",
                    "reason": "bob@bank.example.test cannot be opened",
                }
            ],
        },
    )
    code, out, _ = _run(server, "mappings", "automap")
    assert code == 0
    assert "mapped (1)" in out and "not mapped (1)" in out
    assert "bob@bank.example.test cannot be opened" in next(
        line for line in out.splitlines() if "Bob" in line
    )
    (sent,) = server.received
    assert (sent.method, sent.path, json.loads(sent.body)) == (
        "POST",
        "/v1/admin/integrations/bank-1/mappings/automap",
        {},
    )


def test_an_import_with_bad_rows_shows_each_with_its_line_and_exits_1(server: Server, tmp_path: Path) -> None:
    server.answer = (
        422,
        {
            "message": "2 rows cannot be imported; nothing was applied",
            "errors": [
                {"line": 2, "message": "'ann@' is not a mailbox address"},
                {"line": 4, "message": "JRNI has no person 99"},
            ],
        },
    )
    rows = tmp_path / "staff.csv"
    rows.write_text(
        "kind,jrni_id,mailbox\nperson,1,ann@\nperson,2,bob@bank.example.test\nperson,99,x@bank.example.test\n"
    )
    code, out, err = _run(server, "mappings", "import", str(rows))
    assert code == 1 and out == ""
    assert "staff.csv:2: 'ann@' is not a mailbox address" in err
    assert "staff.csv:4: JRNI has no person 99" in err
    (sent,) = server.received
    assert sent.headers["Content-Type"] == "text/csv" and sent.body == rows.read_bytes()


def test_a_json_import_sends_the_rows_as_mappings(server: Server, tmp_path: Path) -> None:
    server.answer = (200, {"applied": 1, "unchanged": 0, "backfills": []})
    rows = tmp_path / "staff.json"
    rows.write_text(json.dumps([{"kind": "person", "jrni_id": "1", "mailbox": "ann@bank.example.test"}]))
    code, out, _ = _run(server, "mappings", "import", str(rows))
    assert code == 0 and out.strip() == "1 applied, 0 unchanged, 0 backfill(s)"
    (sent,) = server.received
    assert sent.headers["Content-Type"] == "application/json"
    assert json.loads(sent.body) == {
        "mappings": [{"kind": "person", "jrni_id": "1", "mailbox": "ann@bank.example.test"}]
    }


def test_dead_letters_are_listed_and_replayed_by_id(server: Server) -> None:
    server.answer = (
        200,
        {
            "dead_letters": [
                {
                    "id": "m-1",
                    "queue": "outbound",
                    "about": {"booking": "37001/100012"},
                    "reason": "Exchange refused the mailbox: ErrorNonExistentMailbox",
                    "at": "2026-12-07T09:00:00+00:00",
                    "attempts": 5,
                }
            ]
        },
    )
    code, out, _ = _run(server, "dead-letters", "list")
    assert code == 0
    (row,) = [line for line in out.splitlines() if "m-1" in line]
    assert "outbound" in row and "booking 37001/100012" in row and "ErrorNonExistentMailbox" in row

    server.answer = (202, {"replayed": 1, "ids": ["m-1"]})
    code, out, _ = _run(server, "dead-letters", "replay", "m-1")
    assert code == 0 and out.strip() == "1 dead letter(s) replayed"
    assert json.loads(server.received[-1].body) == {"ids": ["m-1"]}
    _run(server, "dead-letters", "replay")
    assert json.loads(server.received[-1].body) == {}  # all of them


def test_a_refused_body_is_told_field_by_field(server: Server, tmp_path: Path) -> None:
    server.answer = (
        422,
        {
            "statusCode": 422,
            "detail": [{"loc": ["body", "jrni", "base_url"], "type": "string_pattern_mismatch"}],
        },
    )
    body = tmp_path / "bank.json"
    body.write_text(json.dumps({"name": "Bank"}))
    code, _, err = _run(server, "integrations", "create", str(body))
    assert code == 1
    assert "the API refused the input: jrni.base_url: string_pattern_mismatch" in err


CALSYNC = str(Path(sys.executable).with_name("calsync"))  # the installed entry point


def test_status_watch_shows_the_table_again_until_interrupted(server: Server) -> None:
    server.paths = {
        "/status": (
            200,
            {"integration_id": "bank-1", "mapped": 1, "states": {"ok": 1}, "problems": [], "reconcile": []},
        ),
        "/mappings": (
            200,
            {
                "mappings": [
                    {
                        "kind": "person",
                        "jrni_id": "1",
                        "name": "Ann",
                        "mailbox": "ann@bank.example.test",
                        "status": {"state": "ok", "detail": None, "at": "2026-12-07T09:00:00+00:00"},
                        "problems": [],
                        "outlook_changes": {
                            "mode": "streaming",
                            "detail": None,
                            "at": "2026-12-07T09:00:00+00:00",
                        },
                        "last_reconciled_at": None,
                        "backfill": None,
                    }
                ],
                "next_cursor": None,
            },
        ),
    }
    watching = subprocess.Popen(
        [CALSYNC, "--api", server.url, "-i", "bank-1", "status", "--watch", "--interval", "0.5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("CALSYNC_")},
    )
    try:
        assert watching.stdout is not None
        summaries = 0
        while summaries < 2:
            line = watching.stdout.readline()
            assert line, watching.stderr.read() if watching.stderr else ""
            summaries += line.startswith("integration bank-1: 1 mapped; outcomes: 1 ok")
        watching.send_signal(signal.SIGINT)
        watching.communicate(timeout=10)
    finally:
        if watching.poll() is None:
            watching.kill()
            watching.wait()
    assert watching.returncode == 0
    assert sum(r.path.startswith("/v1/admin/integrations/bank-1/status") for r in server.received) >= 2


def test_delete_asks_first_and_without_a_terminal_wants_yes(server: Server) -> None:
    code, _, err = _run(server, "integrations", "delete", "bank-1")
    assert code == 2 and "--yes" in err
    assert server.received == []


def test_an_import_body_the_api_cannot_read_is_told_as_such_not_as_rows(
    server: Server, tmp_path: Path
) -> None:
    server.answer = (422, {"statusCode": 422, "detail": [{"loc": ["body", "mappings"], "type": "missing"}]})
    rows = tmp_path / "staff.json"
    rows.write_text(json.dumps({"rows": []}))
    code, out, err = _run(server, "mappings", "import", str(rows))
    assert code == 1 and out == ""
    assert "the API refused the input: mappings: missing" in err and "what to do:" in err


def _run_answers(server: Server, final: dict[str, object]) -> None:
    started = {"run_id": "r1", "state": "running", "deep": False, "mappings_total": 2, "mappings_done": 0}
    server.paths = {
        "/reconcile": (202, started),
        "/reconcile/r1": (
            200,
            {**started, "mappings_done": 2, "repaired": {"created": 1, "removed": 0}, **final},
        ),
    }


def test_on_a_terminal_wait_draws_a_progress_bar(server: Server) -> None:
    _run_answers(server, {"state": "done"})
    answer = calsync("--api", server.url, "-i", "bank-1", "reconcile", "--wait", env={"FORCE_COLOR": "1"})
    assert answer.exit_code == 0, answer.stderr
    assert "reconcile r1" in answer.stdout and "━" in answer.stdout and "2/2" in answer.stdout


def test_a_run_ending_in_error_exits_1_with_its_error(server: Server) -> None:
    _run_answers(server, {"state": "error", "error": "JRNI refused the login: check the jrni secret"})
    code, out, err = _run(server, "reconcile", "--wait")
    assert code == 1
    assert out.splitlines()[-1] == "reconcile r1: 2/2 mappings ended in error (created 1)"
    assert "reconcile r1 ended in error: JRNI refused the login: check the jrni secret" in err


def test_show_lists_each_setting_by_the_key_set_takes_with_the_version(server: Server) -> None:
    server.answer = (
        200,
        {"id": "bank-1", "exchange": {"verify_tls": True, "auth": "ntlm"}, "auto_confirm": False},
    )
    server.etag = '"7"'
    code, out, _ = _run(server, "integrations", "show", "bank-1")
    assert code == 0
    assert out.splitlines()[0].strip() == "integration bank-1 (version 7)"
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in out.splitlines()]
    assert {row[0]: row[1] for row in rows if len(row) == 2} == {
        "id": '"bank-1"',
        "exchange.verify_tls": "true",
        "exchange.auth": '"ntlm"',
        "auto_confirm": "false",
    }


def test_create_sends_the_file_and_the_idempotency_key(server: Server, tmp_path: Path) -> None:
    server.answer = (201, {"id": "bank-1", "webhook_path": "/webhooks/jrni/bank-1"})
    body = {"id": "bank-1", "name": "Bank"}
    (tmp_path / "bank.json").write_text(json.dumps(body))
    code, out, _ = _run(
        server, "integrations", "create", str(tmp_path / "bank.json"), "--idempotency-key", "k-1"
    )
    assert code == 0
    assert out.strip() == "integration bank-1 created; point JRNI's webhook at <ApiUrl>/webhooks/jrni/bank-1"
    (sent,) = server.received
    assert json.loads(sent.body) == body and sent.headers["Idempotency-Key"] == "k-1"

    (tmp_path / "broken.json").write_text("{not json")
    code, _, err = _run(server, "integrations", "create", str(tmp_path / "broken.json"))
    assert code == 2 and "is not JSON" in err
