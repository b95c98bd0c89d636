"""Where the local stack's CPU time goes: the functions' own work, apart from what stands in for AWS and Exchange.

Everything but the streaming task runs in one process, so the process's CPU time mixes the handlers (what a Lambda
would spend) with moto, both emulators, the API front and the pollers. ``CpuMeter`` adds up the CPU time of each
handler invocation on the thread that runs it (``time.thread_time``: the thread's own user + system time, whatever
the other threads do meanwhile) plus what calsync's pool of threads spent on calls it started, by function; the emulators' loops are long-lived threads read by their CPU clocks.
``snapshot()`` is what the front serves at ``GET /_local/cpu``.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

from calsync import parallel

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


class CpuMeter:
    """CPU seconds spent inside the handlers, by function, and the named threads whose CPU clocks are read."""

    def __init__(self) -> None:
        self._functions: dict[str, float] = {}
        self._invocations: dict[str, int] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()

    def wrap(self, function: str, handler: Handler) -> Handler:
        """``handler``, with the CPU time of each call added to ``function``'s."""

        def measured(event: dict[str, Any], context: Any) -> dict[str, Any]:
            me = threading.get_ident()
            began, pooled = time.thread_time(), parallel.cpu_spent_for(me)
            try:
                return handler(event, context)
            finally:
                # Its own thread's CPU, and what calsync's pool spent on calls it started (done by now: the handler
                # waits for each of them).
                spent = time.thread_time() - began + parallel.cpu_spent_for(me) - pooled
                with self._lock:
                    self._functions[function] = self._functions.get(function, 0.0) + spent
                    self._invocations[function] = self._invocations.get(function, 0) + 1

        return measured

    def watch(self, name: str, thread: threading.Thread) -> None:
        """Report ``thread``'s CPU time as ``name`` (an emulator's loop)."""
        with self._lock:
            self._threads[name] = thread

    def snapshot(self) -> dict[str, Any]:
        """CPU seconds so far: the whole process, each function's handlers, each watched thread."""
        times = os.times()
        with self._lock:
            functions = dict(self._functions)
            invocations = dict(self._invocations)
            threads = dict(self._threads)
        return {
            "process": times.user + times.system,
            "functions": functions,
            "invocations": invocations,
            "threads": {name: _thread_cpu(thread) for name, thread in threads.items()},
        }


def _thread_cpu(thread: threading.Thread) -> float | None:
    """A live thread's CPU seconds (its POSIX CPU clock); None once it ended, or where there is no such clock."""
    if thread.ident is None or not thread.is_alive():
        return None
    try:
        return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
    except (AttributeError, OSError):
        return None
