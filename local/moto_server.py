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

Most of what is left is moto turning DynamoDB answers into JSON: a generic serializer walks every attribute of every
item against botocore's shapes, which costs far more than the query itself. The answers of the item operations
are already DynamoDB's wire format (``{"S": ...}`` values), so for those they are written with ``json.dumps``
(binary values base64-encoded, members the operation's output shape does not have left out, as the serializer does);
anything else goes through moto's serializer as before.

It runs in a process of its own (``python -m local.moto_server``), as AWS is not in the functions' process either:
its CPU time and its garbage collections are its own, not the functions', the emulators' or the front's (one
interpreter holding all of them spent long pauses in full collections of moto's heap). ``start_moto()`` starts it
and is what the local stack uses instead of ``ThreadedMotoServer``; ``MotoServer`` serves in a thread of the calling
process, for the benchmark that runs everything in one process on purpose.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import copy
import functools
import gc
import importlib
import inspect
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

_patched = False
_dynamodb_patched = False
_query_patched = False
_overheads_patched = False
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
    due = [
        at for message in queue._messages for at in (message.visible_at, message.delayed_until) if at > now
    ]
    return min(timeout, (min(due) - now) / 1000 + 0.001) if due else timeout


# DynamoDB operations whose answers are items and keys in wire format, plus counts and consumed capacity.
_ITEM_OPERATIONS = frozenset(
    {
        "GetItem",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "Query",
        "Scan",
        "BatchGetItem",
        "BatchWriteItem",
        "TransactGetItems",
        "TransactWriteItems",
    }
)


def _wire_value(value: object) -> str:
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    raise TypeError(f"{type(value).__name__} is not in DynamoDB's wire format")


def patch_dynamodb_answers() -> None:
    """Write the item operations' answers with ``json.dumps`` (idempotent; the process's moto only)."""
    global _dynamodb_patched
    with _patch_lock:
        if _dynamodb_patched:
            return
        from moto.dynamodb.responses import DynamoResult

        serialize = DynamoResult.execute_result

        def execute_result(self: Any, context: Any) -> Any:
            operation = context.operation_model
            result = self.result
            if (
                operation.name in _ITEM_OPERATIONS
                and isinstance(result, dict)
                and operation.output_shape is not None
            ):
                members = operation.output_shape.members
                try:
                    body = json.dumps(
                        {k: v for k, v in result.items() if k in members and v is not None},
                        default=_wire_value,
                    )
                except TypeError:
                    pass
                else:
                    return 200, {"Content-Type": "application/x-amz-json-1.0"}, body
            return serialize(self, context)

        setattr(DynamoResult, "execute_result", execute_result)  # noqa: B010  # moto's class, patched in place
        _dynamodb_patched = True


_query_scope = threading.local()


def _equal(got: Any, value: Any) -> bool:
    return got is not None and got == value


def _query_candidates(table: Any, scope: tuple[Any, ...]) -> list[Any]:
    """The items a query can match: its partition for a query on the table's own key; for one on an index, the items
    whose attributes equal the key condition's (index hash keys, and the range key when it is compared with ``=``).
    moto's query then checks, sorts and filters them as it would have all of them."""
    index_name, hash_key, hash_conditions, range_conditions = scope
    if index_name is None:
        partition = table.items.get(hash_key)
        if partition is None:
            return []
        return list(partition.values()) if table.range_key_attr else [partition]
    equal = list(hash_conditions or [])
    if range_conditions and len(range_conditions) == 1 and range_conditions[0][1] in ("=", "EQ"):
        equal.append((range_conditions[0][0], range_conditions[0][2][0]))
    found = []
    # Copies of the table's and each partition's values (taken at once, under the GIL): other requests' threads may
    # add partitions and items while this one reads.
    for partition in list(table.items.values()):
        for item in list(partition.values()) if table.range_key_attr else (partition,):
            if all(_equal(item.attrs.get(name), value) for name, value in equal):
                found.append(item)
    return found


def patch_dynamodb_query() -> None:
    """A query reads its own partition (or the index entries with its key), not the whole table.

    moto answers every ``Query`` by listing and sorting every item of the table (``Table.all_items``) and then
    checking each against the key condition, so a query costs more the larger the table, where DynamoDB reads only the
    partition. Here, while a query runs, ``all_items`` of its table gives the items that can match; the sort and every
    check after it are moto's, unchanged (idempotent; the process's moto only)."""
    global _query_patched
    with _patch_lock:
        if _query_patched:
            return
        from moto.dynamodb.models.table import Table

        query, all_items = Table.query, Table.all_items

        signature = inspect.signature(query)

        def scoped_query(*args: Any, **kwargs: Any) -> Any:
            call = signature.bind(*args, **kwargs).arguments
            table, hash_key = call["self"], call.get("hash_key")
            hash_conditions, range_conditions = (
                call.get("hash_key_conditions"),
                call.get("range_key_conditions"),
            )
            if hash_key is None and not hash_conditions:
                return query(*args, **kwargs)
            _query_scope.table = table
            _query_scope.scope = (call.get("index_name"), hash_key, hash_conditions, range_conditions)
            try:
                return query(*args, **kwargs)
            finally:
                _query_scope.table = None

        def scoped_all_items(self: Any) -> Any:
            if getattr(_query_scope, "table", None) is self:
                return _query_candidates(self, _query_scope.scope)
            return all_items(self)

        setattr(Table, "query", scoped_query)  # noqa: B010  # moto's class, patched in place
        setattr(Table, "all_items", scoped_all_items)  # noqa: B010
        _query_patched = True


_transaction = threading.local()
_transaction_patched = False


def _named_items(table: Any, transact_items: list[dict[str, Any]]) -> list[tuple[Any, Any, Any]]:
    """The items of ``table`` a transaction names, as they are now: (hash, range or None, a deep copy or None when
    there is none). Undoing the transaction puts exactly these back; other items, written meanwhile by other
    requests, are left as they are."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    named = []
    for entry in transact_items:
        op = next(iter(entry.values()))
        key = op.get("Key") or op.get("Item") or {}
        if op.get("TableName") != table.name or table.hash_key_attr not in key:
            continue
        hash_value = DynamoType(key[table.hash_key_attr])
        if table.range_key_attr:
            if table.range_key_attr not in key:
                continue
            range_value = DynamoType(key[table.range_key_attr])
            current = table.items.get(hash_value, {}).get(range_value)
        else:
            range_value, current = None, table.items.get(hash_value)
        named.append((hash_value, range_value, copy.deepcopy(current) if current is not None else None))
    return named


def _put_back(table: Any, named: list[tuple[Any, Any, Any]]) -> None:
    for hash_value, range_value, item in reversed(named):  # the first copy of an item named twice wins
        if table.range_key_attr:
            partition = table.items[hash_value]
            if item is None:
                partition.pop(range_value, None)
            else:
                partition[range_value] = item
        elif item is None:
            table.items.pop(hash_value, None)
        else:
            table.items[hash_value] = item


class _CopyWithoutTables:
    """moto's module-level ``copy`` for its DynamoDB backend: a table is not copied while a transaction runs under
    ``patch_dynamodb_transactions`` (its own backup is made instead); everything else is ``copy``'s."""

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)

    @staticmethod
    def deepcopy(value: Any, memo: Any = None) -> Any:
        from moto.dynamodb.models.table import Table

        if isinstance(value, Table) and getattr(_transaction, "active", False):
            return value
        return copy.deepcopy(value, memo)


def patch_dynamodb_transactions() -> None:
    """A transaction's undo copy made of the items it names only, not of whole tables once per item.

    moto backs up a ``TransactWriteItems`` by deep-copying the whole table once for every item of the transaction:
    with 100 items on a table of 10,000 links, a million items copied for one request (about two seconds of CPU),
    where DynamoDB writes 100. Here the backup is of the items the transaction names, put back when moto cancels
    it (other items, written meanwhile by other requests, stay as they are); moto's checks, writes and errors are
    its own (idempotent; the process's moto only)."""
    global _transaction_patched
    with _patch_lock:
        if _transaction_patched:
            return
        import moto.dynamodb.models as backend_module

        backend = backend_module.DynamoDBBackend
        transact = backend.transact_write_items

        def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> Any:
            names = {
                op.get("TableName")
                for entry in transact_items
                for op in entry.values()
                if isinstance(op, dict)
            }
            tables = {name: self.tables[name] for name in names if name in self.tables}
            backups = {name: _named_items(table, transact_items) for name, table in tables.items()}
            _transaction.active = True
            try:
                return transact(self, transact_items)
            except Exception:
                for name, table in tables.items():  # moto's own "rollback" put back these same tables
                    _put_back(table, backups[name])
                raise
            finally:
                _transaction.active = False

        backend_module.copy = _CopyWithoutTables()  # type: ignore[assignment]
        setattr(backend, "transact_write_items", transact_write_items)  # noqa: B010  # moto's class, in place
        _transaction_patched = True


_writes_patched = False
_writing = threading.RLock()


def patch_dynamodb_writes() -> None:
    """DynamoDB's writes one at a time: DynamoDB applies each write to an item atomically, moto reads and changes an
    item in steps, so two ``UpdateItem ... ADD`` of one counter at the same moment (mappings finishing a reconcile
    side by side) could both read the old value and one count was lost. Reads still run beside writes (queries read
    copies of the partitions, ``patch_dynamodb_query``). Apply after ``patch_dynamodb_transactions`` (idempotent;
    the process's moto only)."""
    global _writes_patched
    with _patch_lock:
        if _writes_patched:
            return
        import moto.dynamodb.models as backend_module

        backend = backend_module.DynamoDBBackend
        for name in ("put_item", "update_item", "delete_item", "transact_write_items"):
            original = getattr(backend, name)

            @functools.wraps(original)
            def one_at_a_time(self: Any, *args: Any, __original: Any = original, **kwargs: Any) -> Any:
                with _writing:  # re-entrant: a transaction writes through put_item and the others
                    return __original(self, *args, **kwargs)

            setattr(backend, name, one_at_a_time)
        _writes_patched = True


def patch_moto_overheads() -> None:
    """Work moto and waitress repeat for every request with the same answer each time, done once (idempotent; the
    process's moto only): the method names of a response class (``inspect.getmembers`` on every request), an action's
    name in snake case, and the ``Date`` header (waitress formats it anew for every answer)."""
    global _overheads_patched
    with _patch_lock:
        if _overheads_patched:
            return
        from moto.core import responses, utils
        from waitress import task

        names = functools.lru_cache(maxsize=None)(utils.method_names_from_class)
        snake = functools.lru_cache(maxsize=4096)(utils.camelcase_to_underscores)
        setattr(responses, "method_names_from_class", names)  # noqa: B010
        setattr(responses, "camelcase_to_underscores", snake)  # noqa: B010
        http_date = functools.lru_cache(maxsize=4)(task.build_http_date)  # the header has whole seconds
        setattr(task, "build_http_date", lambda when: http_date(int(when)))  # noqa: B010
        _overheads_patched = True


def _now_millis() -> float:
    return time.time() * 1000


def _now_seconds() -> float:
    return time.time()


def patch_sqs_wait() -> None:
    """Make moto's SQS long poll sleep until a message can be received (idempotent; the process's moto only)."""
    global _patched
    with _patch_lock:
        if _patched:
            return
        from moto.sqs import models
        from moto.sqs.models import Queue

        # moto's SQS reads the clock through datetime arithmetic, twice per message for every visibility check and
        # for every attribute count it works out on each send and receive: the same value, read directly.
        setattr(models, "unix_time_millis", _now_millis)  # noqa: B010
        setattr(models, "unix_time", _now_seconds)  # noqa: B010

        original_delete = Queue.delete_message

        def wait_for_messages(self: Any, timeout: int) -> None:
            with self._messages_lock:
                self._messages_lock.wait_for(lambda: _deliverable(self), timeout=_until_due(self, timeout))

        def delete_message(self: Any, receipt_handle: str) -> None:
            original_delete(self, receipt_handle)
            with self._messages_lock:
                self._messages_lock.notify_all()  # its message group may be free now

        # moto's class, patched in place (setattr: mypy would refuse assigning to its methods).
        setattr(Queue, "wait_for_messages", wait_for_messages)  # noqa: B010
        setattr(Queue, "pending_message_groups", property(_GroupsInFlight))  # noqa: B010
        setattr(Queue, "delete_message", delete_message)  # noqa: B010
        _patched = True


def cached_dispatcher() -> Any:
    """moto's ``DomainDispatcherApplication`` that resolves each host to its backend once."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    class CachedDispatcher(DomainDispatcherApplication):
        def __init__(self) -> None:
            super().__init__(create_backend_app)
            self._backend_of: dict[str | None, Any] = {}

        def get_backend_for_host(self, host: str | None) -> Any:
            # Called under moto's lock, so the dictionary needs none of its own.
            if host not in self._backend_of:
                self._backend_of[host] = super().get_backend_for_host(host)
            return self._backend_of[host]

    return CachedDispatcher()


STATS_PATH = "/_local/stats"


def _operation(environ: dict[str, Any]) -> str:
    """``service.Operation`` of a request: the JSON protocols name it in ``X-Amz-Target`` (``DynamoDB_20120810.Query``,
    ``AmazonSQS.ReceiveMessage``); the query protocol in the ``Action`` parameter (unread here: ``other``)."""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    return target if target else f"{environ.get('REQUEST_METHOD', '')} {environ.get('PATH_INFO', '')[:40]}"


class RequestStats:
    """A WSGI middleware: requests and the CPU time of their handling (the serving thread's own), by operation.
    ``GET /_local/stats`` answers them as JSON; the benchmarks read it to say what each booking asks of AWS."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._by_operation: dict[str, list[float]] = {}

    def snapshot(self) -> dict[str, dict[str, float]]:
        with self._lock:
            return {op: {"requests": n, "cpu_seconds": cpu} for op, (n, cpu) in self._by_operation.items()}

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") == STATS_PATH:
            body = json.dumps(self.snapshot()).encode()
            start_response(
                "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
            )
            return [body]
        operation = _operation(environ)
        began = time.thread_time()
        try:
            return list(self.app(environ, start_response))
        finally:
            spent = time.thread_time() - began
            with self._lock:
                counts = self._by_operation.setdefault(operation, [0, 0.0])
                counts[0] += 1
                counts[1] += spent


# waitress's worker threads: every long poll of the pollers holds one for up to its wait, besides the other requests.
_THREADS = 24


class MotoServer:
    """moto on ``host``:``port`` (0: a free port), served by waitress in a thread of this process.

    ``ThreadedMotoServer`` serves with werkzeug's development server, which closes the connection after every answer
    (and starts a thread per connection): every boto3 call would open a new TCP connection, which AWS's endpoints and
    boto3's pool never do. waitress keeps connections alive and serves from a fixed pool of threads."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> MotoServer:
        from waitress.server import create_server

        patch_sqs_wait()
        patch_dynamodb_answers()
        patch_dynamodb_query()
        patch_dynamodb_transactions()
        patch_dynamodb_writes()
        patch_moto_overheads()
        self._server = create_server(
            RequestStats(cached_dispatcher()),
            host=self.host,
            port=self.port,
            threads=_THREADS,
            ident="moto",
            clear_untrusted_proxy_headers=False,
        )
        self._thread = threading.Thread(target=self._server.run, name="moto", daemon=True)
        self._thread.start()
        return self

    def get_host_and_port(self) -> tuple[str, int]:
        assert self._server is not None, "start() first"
        return self.host, int(self._server.effective_port)

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            # The listening socket, then the kept-alive connections (waitress's loop runs while any is open).
            server.close()
            for channel in list(server._map.values()):
                with contextlib.suppress(Exception):
                    channel.close()
            server.task_dispatcher.shutdown(timeout=5)
        if thread is not None:
            thread.join(5)


READY = "moto ready "
# The moto backends of the services the template uses (and the local stack's own rule → queue).
_SERVICES = (
    "moto.dynamodb.responses",
    "moto.sqs.responses",
    "moto.secretsmanager.responses",
    "moto.events.responses",
)


class MotoProcess:
    """``python -m local.moto_server`` as a child process; ``stop()`` ends it."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> MotoProcess:
        root = Path(__file__).resolve().parents[1]
        # moto adds CORS headers to every answer (flask_cors, after each request) unless told not to: no browser
        # talks to it here, and AWS's SDK endpoints do not answer with them either.
        env = {
            **os.environ,
            "MOTO_DISABLE_GLOBAL_CORS": "true",
            "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "local.moto_server", "--host", self.host, "--port", str(self.port)],
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith(READY):
            self.stop()
            raise OSError(f"moto did not start: {line.strip()!r}")
        self.port = int(line.removeprefix(READY))
        return self

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def get_host_and_port(self) -> tuple[str, int]:
        return self.host, self.port

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()


# moto accepts any credentials; these only keep boto3 from looking for real ones.
DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_SECURITY_TOKEN": "testing",
}


def client_environment(moto_url: str, region: str) -> dict[str, str]:
    """The environment variables that point every AWS client at the moto server at ``moto_url``."""
    return {
        **DUMMY_CREDENTIALS,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_ENDPOINT_URL": moto_url,
    }


def start_moto(host: str = "127.0.0.1", port: int = 0) -> MotoProcess:
    """moto in its own process, listening (see the module's docstring for how it differs from
    ``ThreadedMotoServer``)."""
    return MotoProcess(host, port).start()


def main(argv: list[str] | None = None) -> int:
    """Serve moto until SIGTERM or SIGINT; the first line on stdout is ``moto ready <port>``."""
    parser = argparse.ArgumentParser(prog="python -m local.moto_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = MotoServer(args.host, args.port).start()
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    for module in _SERVICES:  # loaded now rather than by the first request, so that they are frozen below
        importlib.import_module(module)
    gc.collect()
    gc.freeze()  # moto's models, loaded once, are not garbage: keep them out of every full collection
    print(f"{READY}{server.get_host_and_port()[1]}", flush=True)
    while not stopping.wait(1.0):
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
