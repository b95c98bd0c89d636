"""moto in server mode, without the per-request work AWS itself never does.

The local stack talks to moto as the functions talk to AWS: boto3, signed requests over HTTP. moto's own server
(``ThreadedMotoServer``) spends most of its time deciding which of its backends a request is for: for every request
it lists moto's package directory (an ``isdir`` per module) and tries the URL patterns of every backend in turn, all
under one lock. The answer depends only on the host it inferred (``dynamodb``, ``sqs.eu-west-2.amazonaws.com``…),
so it is worked out once per host here and remembered.

moto's SQS long poll also spins: ``receive_message`` waits for "some visible message" and, on a FIFO queue whose
visible messages all belong to a message group already in flight, that wait returns at once, so a waiting receive
loops without sleeping until its ``WaitTimeSeconds`` is over. And it takes the groups in flight once, when the
receive starts, so a group whose message was deleted meanwhile stays closed to that receive until it ends (up to its
whole wait, where SQS would hand the next message out at once). Here the wait is for a message a receive could
actually take (visible, not delayed, its group not in flight), a deletion wakes the waiters (as a new message
already does), and a group counts as in flight for a receive only while it still is. The rest of a receive is moto's
own code, unchanged (several messages of one group may still come in one batch, as in SQS).

``start_moto()`` is what the local stack and the benchmarks use instead of ``ThreadedMotoServer``.
"""

from __future__ import annotations

import threading
import time
from typing import Any

_patched = False
_patch_lock = threading.Lock()


def _groups_in_flight(queue: Any) -> set[str]:
    """moto's ``Queue.pending_message_groups``: the groups with a message received and not yet deleted."""
    return {message.group_id for message in queue._pending_messages if message.group_id is not None}


class _GroupsInFlight:
    """What ``receive_message`` takes (and deep-copies) as the groups in flight: those in flight when it began, and
    still in flight when it asks."""

    def __init__(self, queue: Any) -> None:
        self._queue = queue
        self._groups = frozenset(_groups_in_flight(queue))

    def __contains__(self, group: object) -> bool:
        return group in self._groups and group in _groups_in_flight(self._queue)

    def __iter__(self) -> Any:
        return iter(self._groups & _groups_in_flight(self._queue))

    def __len__(self) -> int:
        return len(self._groups & _groups_in_flight(self._queue))

    def __deepcopy__(self, memo: dict[int, Any]) -> _GroupsInFlight:
        return self


def _deliverable(queue: Any) -> bool:
    """Whether a receive on ``queue`` could take a message now (moto's own rules: visible, not delayed, and on a FIFO
    queue not in a message group with a message in flight)."""
    busy = _groups_in_flight(queue) if queue.fifo_queue else set()
    for message in queue._messages:
        if not message.visible or message.delayed:
            continue
        if message in queue.pending_messages:
            return True  # in flight but visible again: its consumer timed out, moto hands it out again
        if not (queue.fifo_queue and message.group_id and message.group_id in busy):
            return True
    return False


def _until_due(queue: Any, timeout: float) -> float:
    """Seconds until a message of ``queue`` becomes visible or its delay ends (nobody is notified when that
    happens), at most ``timeout``."""
    now = time.time() * 1000
    due = [at for message in queue._messages for at in (message.visible_at, message.delayed_until) if at > now]
    return min(timeout, (min(due) - now) / 1000 + 0.001) if due else timeout


def patch_sqs_wait() -> None:
    """Make moto's SQS long poll sleep until a message can be received (idempotent; the process's moto only)."""
    global _patched
    with _patch_lock:
        if _patched:
            return
        from moto.sqs.models import Queue

        original_delete = Queue.delete_message

        def wait_for_messages(self: Any, timeout: int) -> None:
            with self._messages_lock:
                self._messages_lock.wait_for(lambda: _deliverable(self), timeout=_until_due(self, timeout))

        def delete_message(self: Any, receipt_handle: str) -> None:
            original_delete(self, receipt_handle)
            with self._messages_lock:
                self._messages_lock.notify_all()  # its message group may be free now

        Queue.wait_for_messages = wait_for_messages
        Queue.pending_message_groups = property(_GroupsInFlight)
        Queue.delete_message = delete_message
        _patched = True


def cached_dispatcher() -> Any:
    """moto's ``DomainDispatcherApplication`` that resolves each host to its backend once."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    class CachedDispatcher(DomainDispatcherApplication):  # type: ignore[misc]  # moto has no type hints here
        def __init__(self) -> None:
            super().__init__(create_backend_app)
            self._backend_of: dict[str | None, Any] = {}

        def get_backend_for_host(self, host: str | None) -> Any:
            # Called under moto's lock, so the dictionary needs none of its own.
            if host not in self._backend_of:
                self._backend_of[host] = super().get_backend_for_host(host)
            return self._backend_of[host]

    return CachedDispatcher()


class MotoServer:
    """moto's server on ``host``:``port`` (0: a free port) in a thread, as ``ThreadedMotoServer`` runs it."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> MotoServer:
        from moto.moto_server.werkzeug_app import MotoRequestHandler
        from werkzeug.serving import make_server

        patch_sqs_wait()
        self._server = make_server(self.host, self.port, cached_dispatcher(), threaded=True,
                                   request_handler=MotoRequestHandler)  # fmt: skip
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto", daemon=True)
        self._thread.start()
        return self

    def get_host_and_port(self) -> tuple[str, int]:
        assert self._server is not None, "start() first"
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = self._thread = None


def start_moto(host: str = "127.0.0.1", port: int = 0) -> MotoServer:
    """A started moto server (see the module's docstring for how it differs from ``ThreadedMotoServer``)."""
    return MotoServer(host, port).start()
