"""The streaming task (ECS Fargate in AWS) as a child process: ``python functions/streaming/main.py``.

It gets the environment the template gives the task's container, plus what points it at moto and the short
intervals of the local stack. Its output (it logs to stdout) is copied line by line to the stack's log stream.
``stop()`` sends SIGTERM, as ECS does, and waits for it to end its subscriptions and connections.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from typing import IO

from local import ROOT

MAIN = ROOT / "functions" / "streaming" / "main.py"
# ECS's default stop timeout; the task itself gives its connections 10 s (RunnerSettings.stop_grace_seconds).
STOP_TIMEOUT_SECONDS = 30.0


class StreamingProcess:
    """One streaming task. ``returncode`` is None while it runs."""

    def __init__(self, env: Mapping[str, str], log_stream: IO[str]) -> None:
        self.env = dict(env)
        self.log_stream = log_stream
        self.process: subprocess.Popen[str] | None = None
        self._pump: threading.Thread | None = None
        self._log_lock = threading.Lock()

    def start(self) -> StreamingProcess:
        path = os.pathsep.join([str(ROOT), str(ROOT / "shared")])
        env = {**os.environ, **self.env, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [sys.executable, str(MAIN)], cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, bufsize=1,
        )  # fmt: skip
        self._pump = threading.Thread(target=self._copy_output, name="streaming-task-log", daemon=True)
        self._pump.start()
        return self

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def returncode(self) -> int | None:
        return self.process.poll() if self.process is not None else None

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> int | None:
        """SIGTERM, then wait; SIGKILL after ``timeout`` (as ECS does). The exit status (negative: a signal)."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._log(f"calsync local: the streaming task did not stop within {timeout:g} s; killed\n")
                process.kill()
                process.wait()
        if self._pump is not None:
            self._pump.join(5)
        return process.returncode

    def _copy_output(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            self._log(line)

    def _log(self, text: str) -> None:
        with self._log_lock:
            try:
                self.log_stream.write(text)
                self.log_stream.flush()
            except ValueError:  # the stream was closed under us (the stack is being torn down)
                pass
