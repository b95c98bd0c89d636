"""Independent remote calls made at once, so that a function waits for the slowest of them, not for their sum.

One small pool per process, shared by every use case: its threads outlive an invocation (a warm Lambda keeps them,
idle, as it keeps its connections). Nothing submitted here submits again and waits, so the pool cannot starve itself.
Each call runs in a copy of its caller's context (``contextvars``), so what an invocation set there (the metrics it
counts into, its overall deadline: ``calsync.deadline``) holds in the call too.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

# Few calls are ever independent at once (a booking's reads; its mailboxes' writes); far below Exchange's and
# DynamoDB's limits on concurrent requests.
MAX_AT_ONCE = 8

_pool = ThreadPoolExecutor(max_workers=MAX_AT_ONCE, thread_name_prefix="calsync-io")
# CPU seconds the pool spent for each thread that started calls: what an invocation costs is its own thread's CPU
# time plus this (the local stack's figures count both).
_spent: dict[int, float] = {}
_spent_lock = threading.Lock()


def start(call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> Future[T]:
    """Begin ``call`` now; ``.result()`` waits for it and raises what it raised."""
    origin = threading.get_ident()
    context = contextvars.copy_context()

    def run() -> T:
        began = time.thread_time()
        try:
            return call(*args, **kwargs)
        finally:
            spent = time.thread_time() - began
            with _spent_lock:
                _spent[origin] = _spent.get(origin, 0.0) + spent

    return _pool.submit(context.run, run)


def cpu_spent_for(thread_id: int) -> float:
    """CPU seconds the pool has spent so far on calls started by thread ``thread_id``."""
    with _spent_lock:
        return _spent.get(thread_id, 0.0)
