"""Every process the project starts stops on SIGTERM, also as a background job of a non-interactive shell (which
starts it with SIGINT ignored, so SIGTERM cannot be passed on as SIGINT): the emulators, ``calsync local`` and the
streaming task, each started with ``bash -c '… &'`` exactly as a script starts it."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from local.stack import LocalStack, StackOptions

ROOT = Path(__file__).resolve().parents[2]
READY_SECONDS = 60.0  # a busy machine may take long to start a Python process and its imports
STOP_SECONDS = 15.0  # the streaming task gives its connections 10 s at most; the rest stop at once


def _wait(check: Callable[[], object], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout:g} s: {what}"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _in_background(
    command: list[str], log: Path, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], int]:
    """``bash -c '<command> >log 2>&1 & echo $!; wait $!; echo $?'``: the shell and the background job's pid."""
    script = f"{shlex.join(command)} >{shlex.quote(str(log))} 2>&1 & echo $!; wait $!; echo $?"
    shell = subprocess.Popen(["bash", "-c", script], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    assert shell.stdout is not None
    return shell, int(shell.stdout.readline())


def _stops_on_sigterm(
    command: list[str], ready: Callable[[str], bool], tmp_path: Path, env: dict[str, str] | None = None
) -> str:
    """Start ``command`` in the background, wait until ``ready(its output)``, SIGTERM it: it exits with status 0."""
    log = tmp_path / "output.log"
    shell, pid = _in_background(command, log, env)
    try:
        _wait(
            lambda: ready(log.read_text(errors="replace")) if log.exists() else False,
            f"{command[2:4]} ready",
            READY_SECONDS,
        )
        os.kill(pid, signal.SIGTERM)
        out, _ = shell.communicate(timeout=STOP_SECONDS)
        assert not _alive(pid)
    finally:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        if shell.poll() is None:
            shell.kill()
            shell.wait()
    status = out.strip().splitlines()[-1]
    assert status == "0", f"exit status {status}; output:\n{log.read_text(errors='replace')}"
    return log.read_text(errors="replace")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'shared'}"}


@pytest.mark.parametrize("module", ["emulators.ews", "emulators.jrni"])
def test_an_emulator_started_in_the_background_stops_on_sigterm(module: str, tmp_path: Path) -> None:
    _stops_on_sigterm(
        [sys.executable, "-m", module, "--port", str(_free_port())],
        lambda out: "listening on" in out,
        tmp_path,
        _env(),
    )


def test_calsync_local_started_in_the_background_stops_on_sigterm_with_its_streaming_task(
    tmp_path: Path,
) -> None:
    out = _stops_on_sigterm(
        [sys.executable, "-m", "local", "local", "--api-port", "0", "--ews-port", "0", "--jrni-port", "0"],
        lambda out: "calsync local ready" in out,
        tmp_path,
        _env(),
    )
    assert "calsync local stopped" in out


@pytest.fixture
def stack_without_task() -> Iterator[LocalStack]:
    with (
        open(os.devnull, "w") as logs,
        LocalStack(
            StackOptions(api_port=0, ews_port=0, jrni_port=0, log_stream=logs, streaming=False)
        ) as running,
    ):
        yield running


def test_the_streaming_task_started_in_the_background_stops_on_sigterm(
    stack_without_task: LocalStack, tmp_path: Path
) -> None:
    stack = stack_without_task
    assert stack.urls is not None
    env = {
        **os.environ,
        **stack.streaming_environment(),
        "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'shared'}",
    }
    stats = f"{stack.urls.ews}/_emulator/stats"

    def subscribed(out: str) -> bool:
        return bool(requests.get(stats, timeout=5).json()["streaming_connections"])

    _stops_on_sigterm(
        [sys.executable, str(ROOT / "functions" / "streaming" / "main.py")], subscribed, tmp_path, env
    )
    assert requests.get(stats, timeout=5).json()["streaming_connections"] == 0  # it closed its connection


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
