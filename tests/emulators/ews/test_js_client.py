"""Microsoft's EWS Managed API port (ews-javascript-api, npm) works against the emulator, not only exchangelib.

The Node script ``tests/js/ews_client_check.js`` uses the library as a Node user would (``ExchangeService``,
``WebCredentials``, ``ImpersonatedUserId`` with ``SmtpAddress``) and stops at checkpoints so this test can look at the
emulator's state between steps and, once it is subscribed, make the change it must be notified of.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from emulators.ews.testing import EwsEmulator

from .conftest import PASSWORD, SERVICE

JS_DIR = Path(__file__).resolve().parents[2] / "js"
SCRIPT = JS_DIR / "ews_client_check.js"
OWNER = "alice@example.com"
LINE_TIMEOUT = 30.0


class NodeScript:
    """The Node client as a subprocess, read line by line with a timeout."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            args,
            cwd=JS_DIR,
            env=env,
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def next(self) -> dict[str, Any]:
        """The next JSON line; fails with the script's stderr when it ends or reports an error."""
        try:
            line = self.lines.get(timeout=LINE_TIMEOUT)
        except queue.Empty:
            pytest.fail(f"the Node client printed nothing for {LINE_TIMEOUT} s")
        if line is None:
            self.proc.wait(timeout=10)
            assert self.proc.stderr is not None
            pytest.fail(f"the Node client exited ({self.proc.returncode}) early: {self.proc.stderr.read()}")
        data: dict[str, Any] = json.loads(line)
        if "error" in data:
            pytest.fail(f"the Node client failed: {data['error']}\nprogress so far: {data.get('partial')}")
        return data

    def expect(self, checkpoint: str) -> dict[str, Any]:
        data = self.next()
        assert data.get("checkpoint") == checkpoint, data
        return data

    def go_on(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


def _node_or_skip() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not on PATH: the ews-javascript-api client check needs Node.js")
    if not (JS_DIR / "node_modules" / "ews-javascript-api").is_dir():
        # `make setup` installs it; a missing package is a broken checkout, not an optional extra.
        pytest.fail(
            "tests/js/node_modules/ews-javascript-api is missing: run `make setup` (npm ci in tests/js)"
        )
    return node


def test_ews_javascript_api_crud_find_and_streaming(ews: EwsEmulator) -> None:
    node = _node_or_skip()
    ews.add_account(SERVICE, PASSWORD)
    ews.add_account(OWNER, PASSWORD, time_zone="GMT Standard Time")
    ews.control("POST", "impersonation", {"service_account": SERVICE, "mailboxes": [OWNER]}, expect=201)
    # Heartbeats every half second (Exchange: tens of seconds): the client reports being subscribed once the stream's
    # first envelope has arrived, so the change below is made while the connection is demonstrably open.
    ews.control("POST", "config", {"heartbeat_seconds": 0.5})
    # A summer time in London: the client must turn 09:00 BST into 08:00 UTC.
    env = {**os.environ, "TZ": "Europe/London"}
    script = NodeScript(
        [
            node,
            str(SCRIPT),
            ews.ews_url,
            SERVICE,
            PASSWORD,
            "--impersonate",
            OWNER,
            "--start",
            "2030-07-04T09:00:00",
        ],
        env,
    )
    try:
        created = script.expect("created")
        [item] = ews.items(OWNER)
        assert item["id"] == created["id"]
        assert (item["subject"], item["location"]) == ("JS client check", "Room 1")
        assert (item["start"], item["end"]) == ("2030-07-04T08:00:00Z", "2030-07-04T09:00:00Z")
        script.go_on()

        updated = script.expect("updated")
        [item] = ews.items(OWNER)
        assert item["id"] == updated["id"] == created["id"]
        assert item["subject"] == "JS client check (updated)"
        assert (item["start"], item["end"]) == ("2030-07-04T08:00:00Z", "2030-07-04T09:30:00Z")
        script.go_on()

        script.expect("deleted")
        assert ews.items(OWNER) == []
        script.go_on()

        script.expect("subscribed")
        # Alice adds a meeting in Outlook while the Node client listens.
        outlook_item = ews.control(
            "POST",
            f"mailboxes/{OWNER}/items",
            {
                "subject": "Added in Outlook",
                "start": "2030-07-05T10:00:00Z",
                "end": "2030-07-05T11:00:00Z",
            },
            expect=201,
        )
        script.go_on()

        result = script.next()["result"]
    finally:
        script.close()

    assert result["calendar"]["display_name"] == "Calendar"
    found = [f for f in result["found"] if f["id"] == created["id"]]
    assert found == [
        {
            "id": created["id"],
            "subject": "JS client check",
            "start": "2030-07-04T08:00:00Z",
            "end": "2030-07-04T09:00:00Z",
        }
    ]
    assert {"type": "Created", "item_id": outlook_item["id"]} in result["notifications"]
