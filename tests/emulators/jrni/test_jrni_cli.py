"""The command line: ``python -m emulators.jrni`` prints its banner and serves the seed it was given."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import requests

from .conftest import APP_ID, BRANCH_ADMIN, NORTH, SEED

REPO = Path(__file__).resolve().parents[3]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_cli_prints_banner_and_serves_the_seed_file(tmp_path: Path) -> None:
    # Given a seed file and a free port
    seed_file = tmp_path / "seed.json"
    seed_file.write_text(json.dumps(SEED))
    port = _free_port()
    # When the emulator is started as a user would start it
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "emulators.jrni",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--seed",
            str(seed_file),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline().strip()
        # Then it announces exactly where it listens, and the seeded administrator can log in there
        assert banner == f"JRNI emulator listening on http://127.0.0.1:{port}"
        response = requests.post(
            f"http://127.0.0.1:{port}/api/v1/login/admin/{NORTH}",
            json={"email": BRANCH_ADMIN[0], "password": BRANCH_ADMIN[1]},
            headers={"App-Id": APP_ID},
            timeout=5,
        )
        assert response.status_code == 201
        assert response.json()["company_id"] == NORTH
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_cli_port_zero_announces_the_real_port() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "emulators.jrni", "--port", "0"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline().strip()
        prefix = "JRNI emulator listening on http://127.0.0.1:"
        assert banner.startswith(prefix)
        port = int(banner.removeprefix(prefix))
        assert port > 0
        # The announced port answers (an unknown App-Id is refused the JRNI way).
        response = requests.get(f"http://127.0.0.1:{port}/api/v1/admin/1/people", timeout=5)
        assert response.status_code == 401
        assert response.json() == {"error": "401 Unauthorized"}
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_cli_rejects_a_seed_with_a_typo(tmp_path: Path) -> None:
    seed_file = tmp_path / "seed.json"
    seed_file.write_text(json.dumps({"compnies": []}))
    result = subprocess.run(
        [sys.executable, "-m", "emulators.jrni", "--port", "0", "--seed", str(seed_file)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "compnies" in result.stderr
