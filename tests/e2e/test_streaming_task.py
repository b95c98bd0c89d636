"""The streaming task dies (``kill -9``: out of memory, a host lost): as the ECS service does, the local stack starts a
new task within seconds; while none runs, the admin API's status says the watch is stale; and what changed in
Outlook meanwhile reaches JRNI exactly once, because a new task resyncs every mailbox when it starts."""

from __future__ import annotations

import os
import signal
from datetime import timedelta
from typing import Any

from tests.e2e.conftest import ALICE, E2E, MAILBOX, wait_for

RESTART_SECONDS = 10.0  # the supervisor replaces a task after about a second


def _kill(e2e: E2E) -> int:
    """SIGKILL the running task; its pid."""
    supervisor = e2e.stack.streaming
    assert supervisor is not None and supervisor.pid is not None and supervisor.returncode is None
    pid = supervisor.pid
    os.kill(pid, signal.SIGKILL)
    return pid


def _watch(e2e: E2E) -> dict[str, Any]:
    watch: dict[str, Any] = e2e.mapping_row("person", ALICE)["outlook_changes"] or {}
    return watch


def test_a_killed_streaming_task_is_replaced_and_the_change_made_meanwhile_reaches_jrni_once(
    e2e: E2E,
) -> None:
    supervisor = e2e.stack.streaming
    assert supervisor is not None
    wait_for(lambda: _watch(e2e).get("mode") == "streaming", "Alice's mailbox streamed")

    # Killed: a new task runs within seconds, with nobody asking.
    first = _kill(e2e)
    wait_for(
        lambda: supervisor.pid != first and supervisor.returncode is None,
        "a new streaming task",
        RESTART_SECONDS,
    )

    # Killed again, and (for the look at the status) not replaced until released.
    supervisor.hold()
    try:
        second = _kill(e2e)
        wait_for(lambda: supervisor.returncode is not None, "the task gone")
        start = e2e.day().replace(hour=10)
        e2e.meeting(MAILBOX[ALICE], start, minutes=60, subject="Made while no task ran")
        # Nothing watches: the status says so once 3 heartbeats are missed (6 s on the local stack).
        stale = wait_for(lambda: (w := _watch(e2e)).get("mode") == "stale" and w, "the watch shown stale", 30)
        assert stale["watched_as"] == "streaming"
        assert "the streaming task last reported at" in stale["detail"]
        assert "check the ECS service calsync-streaming" in stale["detail"]
        status = e2e.admin("GET", f"integrations/{e2e.integration_id}/status")
        assert status["streaming_task"]["state"] == "stale"
        assert status["outlook_changes"].get("streaming", 0) == 0
        assert e2e.blocks(ALICE) == []  # and indeed the meeting has not reached JRNI
    finally:
        supervisor.release()
    wait_for(
        lambda: supervisor.pid not in (first, second) and supervisor.returncode is None,
        "a new streaming task",
        RESTART_SECONDS,
    )

    # The new task resyncs Alice's mailbox at start: one block for the meeting, and one only.
    e2e.wait_blocks(
        ALICE, [(start, start + timedelta(minutes=60))], "the meeting made meanwhile, as one block"
    )
    e2e.stays(lambda: len(e2e.blocks(ALICE)) == 1, "one block for the meeting")
    wait_for(lambda: _watch(e2e).get("mode") == "streaming", "Alice's mailbox streamed again")
    assert e2e.admin("GET", f"integrations/{e2e.integration_id}/status")["streaming_task"]["state"] == "ok"
