"""The installed ``calsync`` command: ``calsync local`` runs the local stack exactly as before, and the operator
commands talk to it, each as a process of its own."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

CALSYNC = str(Path(sys.executable).with_name("calsync"))
READY = re.compile(r"^calsync local ready (\{.*\})$")


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CALSYNC_")}


def test_calsync_local_runs_the_stack_and_the_operator_commands_reach_it() -> None:
    local = subprocess.Popen(
        [CALSYNC, "local", "--api-port", "0", "--ews-port", "0", "--jrni-port", "0", "--seed", "none"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        assert local.stdout is not None
        first = local.stdout.readline().rstrip("\n")
        match = READY.match(first)
        assert match, f"not a ready line: {first!r}"
        api = json.loads(match.group(1))["api"]

        listed = subprocess.run(
            [CALSYNC, "--api", api, "--json", "integrations", "list"],
            capture_output=True,
            text=True,
            env=_env(),
        )
        assert listed.returncode == 0, listed.stderr
        assert json.loads(listed.stdout) == {"integrations": []}

        nothing = subprocess.run(
            [CALSYNC, "--api", api, "status"], capture_output=True, text=True, env=_env()
        )
        assert nothing.returncode == 1
        assert "there is no integration yet" in nothing.stderr
        assert "create one: calsync integrations create FILE.json" in nothing.stderr

        local.send_signal(signal.SIGTERM)
        out, err = local.communicate(timeout=30)
    finally:
        if local.poll() is None:
            local.kill()
            local.wait()
    assert local.returncode == 0
    assert out == "" and "calsync local stopped" in err


def test_calsync_help_names_every_command() -> None:
    shown = subprocess.run(
        [CALSYNC, "--help"], capture_output=True, text=True, env={**_env(), "COLUMNS": "120"}
    )
    assert shown.returncode == 0
    for command in (
        "local",
        "integrations",
        "mappings",
        "status",
        "test",
        "reconcile",
        "resync",
        "dead-letters",
    ):
        assert re.search(rf"│ {command}\s", shown.stdout), command
