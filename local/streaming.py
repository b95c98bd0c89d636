"""The streaming task (ECS Fargate in AWS) as a child process: ``python functions/streaming/main.py``.

It gets the environment the template gives the task's container, plus what points it at moto and the short
intervals of the local stack. Its output (it logs to stdout) is copied line by line to the stack's log stream.
``stop()`` sends SIGTERM, as ECS does, and waits for it to end its subscriptions and connections.

``StreamingSupervisor`` is the ECS service around it: a task that exits (it crashed, or was killed) is replaced by a
new one (a new process, with a task id of its own) after ``RESTART_SECONDS``. The new task starts as any task does,
resyncing every mailbox it subscribes (wake reason ``start``), so what changed in Outlook meanwhile reaches JRNI.
"""

from __future__ import annotations

import itertools
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
# How long after a task exits its replacement is started: ECS takes some seconds to place a new task.
RESTART_SECONDS = 1.0


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
            [sys.executable, str(MAIN)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
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
                self.note(f"calsync local: the streaming task did not stop within {timeout:g} s; killed\n")
                process.kill()
                process.wait()
        if self._pump is not None:
            self._pump.join(5)
        return process.returncode

    def _copy_output(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            self.note(line)

    def note(self, text: str) -> None:
        with self._log_lock:
            try:
                self.log_stream.write(text)
                self.log_stream.flush()
            except ValueError:  # the stream was closed under us (the stack is being torn down)
                pass


class StreamingSupervisor:
    """Keeps one streaming task running, as the ECS service does (desired count 1). ``returncode`` and ``pid`` are
    the current task's; ``restarts`` counts the tasks started after the first."""

    def __init__(
        self,
        env: Mapping[str, str],
        log_stream: IO[str],
        *,
        task_id: str = "local-streaming",
        restart_seconds: float = RESTART_SECONDS,
    ) -> None:
        self.env = dict(env)
        self.log_stream = log_stream
        self.task_id = task_id
        self.restart_seconds = restart_seconds
        self.task: StreamingProcess | None = None
        self.restarts = 0
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._holding = threading.Event()  # set: a task that exits is not replaced until release()
        self._changed = threading.Event()
        self._watcher: threading.Thread | None = None

    def start(self) -> StreamingSupervisor:
        self._start_task()
        self._watcher = threading.Thread(target=self._watch, name="streaming-supervisor", daemon=True)
        self._watcher.start()
        return self

    @property
    def pid(self) -> int | None:
        return self.task.pid if self.task is not None else None

    @property
    def returncode(self) -> int | None:
        return self.task.returncode if self.task is not None else None

    def hold(self) -> None:
        """Replace no task that exits from now on (a test looking at the stack while no task runs)."""
        self._holding.set()

    def release(self) -> None:
        """Replace an exited task again (at once, when it has already exited)."""
        self._holding.clear()
        self._changed.set()

    def pause(self, timeout: float = STOP_TIMEOUT_SECONDS) -> int | None:
        """The service scaled to 0 (an outage of the task, in a test): the current task is stopped (SIGTERM, as ECS
        does) and none replaces it until ``resume()``; its exit status."""
        self.hold()
        with self._lock:
            task = self.task
        return task.stop(timeout) if task is not None else None

    def resume(self) -> None:
        """Back to one task after ``pause()``: a new one is started within ``restart_seconds``, which resyncs every
        mailbox as it starts."""
        self.release()

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> int | None:
        """Stop replacing tasks, and stop the current one (SIGTERM, as ECS does); its exit status."""
        self._stopping.set()
        self._changed.set()
        if self._watcher is not None:
            self._watcher.join(10)
        with self._lock:
            task = self.task
        return task.stop(timeout) if task is not None else None

    def _start_task(self) -> None:
        env = {**self.env, "STREAMING_TASK_ID": f"{self.task_id}-{next(self._numbers)}"}
        with self._lock:
            self.task = StreamingProcess(env, self.log_stream).start()

    def _watch(self) -> None:
        while not self._stopping.is_set():
            task = self.task
            if task is None or task.returncode is None or self._holding.is_set():
                self._changed.wait(0.2)
                self._changed.clear()
                continue
            task.stop()  # reaps it and drains its output
            task.note(
                f"calsync local: the streaming task exited (status {task.returncode}); starting a new one\n"
            )
            if self._stopping.wait(self.restart_seconds):
                return
            if self._holding.is_set():
                continue
            with self._lock:
                if self._stopping.is_set():
                    return
                self.restarts += 1
            self._start_task()
