"""The whole local stack: moto, both emulators, the HTTP front, the two SQS pollers, the streaming task, the seed.

The functions run in-process with the environment a deployed function gets (read off ``template.yaml``), plus
``AWS_ENDPOINT_URL`` pointing every AWS client at moto and dummy credentials. ``stop()`` puts the environment back.
The streaming task runs as a child process (``functions/streaming/main.py``) with the environment the template
gives its ECS container, pointed at moto and the EWS emulator, supervised as the ECS service does (a task that exits
is replaced by a new one within seconds), and stops with the stack (SIGTERM, as ECS stops it).

Besides the template's resources, the stack puts a rule on the event bus that copies every calsync event to an SQS
queue of its own (``events_queue_url``), so that the demo and tests can read what the customer's rules would see.
"""

from __future__ import annotations

import gc
import importlib
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import requests

from local.aws import (
    Resources,
    create_resources,
    event_source_queue,
    function_environment,
    load_template,
    task_environment,
)
from local.cpu import CpuMeter
from local.events import LambdaContext
from local.front import build_front
from local.lambdas import FunctionEnvironments, forget_log_routing
from local.moto_server import STATS_PATH as MOTO_STATS_PATH
from local.moto_server import client_environment, start_moto
from local.poller import SqsPoller
from local.seed import DEMO_SEED, Seeded, apply_seed, load_seed, reseed
from local.streaming import StreamingSupervisor

REGION = "eu-west-2"
# Logical ids in template.yaml of the functions the stack runs, and their folders under functions/.
FUNCTIONS = {
    "JrniWebhookFunction": "jrni_webhook",
    "OutboundFunction": "outbound",
    "AdminFunction": "admin",
    "InboundFunction": "inbound",
    "ReconcileFunction": "reconcile",
}
# The streaming task's intervals on the local stack (seconds): mappings re-read, heartbeat, and wakes coalesced
# much more often than in AWS, so that a meeting made in Outlook reaches JRNI in well under a second.
STREAMING_LOCAL = {
    "STREAMING_REFRESH_SECONDS": "1",
    "STREAMING_HEARTBEAT_SECONDS": "2",
    "STREAMING_COALESCE_SECONDS": "0.2",
}
EVENTS_QUEUE = "calsync-local-events"  # the stack's own queue behind a rule matching every calsync event
# How long a thread of the stack's process may hold the interpreter while another waits for it (Python's default is
# 5 ms). The emulators, the front, the pollers and every function share one interpreter here, where each function
# has a process of its own in AWS: with the default, a handler back from moto or an emulator waits up to 5 ms for any
# busy thread at every request, several times per request.
SWITCH_INTERVAL_SECONDS = 0.001
_ADMIN_TIMEOUT = 30  # seconds for one call of the admin API on the front


class StackError(RuntimeError):
    """A call of the stack's own admin API that did not answer 200: what was asked, the status and the API's
    message."""

    def __init__(self, what: str, response: requests.Response) -> None:
        try:
            body = response.json()
        except ValueError:
            body = None
        reason = str(body["message"]) if isinstance(body, dict) and "message" in body else response.text[:500]
        if response.status_code == 404:
            reason += "; check the integration id (GET /admin/integrations lists them)"
        elif response.status_code == 412:
            reason += "; it changed meanwhile: call again to read its new version and redo the change"
        elif response.status_code >= 500:
            reason += "; the admin function's log says why"
        super().__init__(f"{what}: {response.status_code} {reason}")
        self.status = response.status_code


@dataclass
class StackOptions:
    """``calsync local``'s options; ports 0 mean free ports. ``seed`` None means no seed at all."""

    api_port: int = 8087
    ews_port: int = 8089
    jrni_port: int = 8088
    seed: Path | None = DEMO_SEED
    latency_ms: int = 0
    host: str = "127.0.0.1"
    poller_workers: int = 2
    # Where the functions' logs (Powertools, JSON lines) go; stdout is kept for the ready line.
    log_stream: IO[str] = field(default_factory=lambda: sys.stderr)
    log_level: str = "INFO"
    # The streaming task: run it (as a process), and its limits. None: the template's defaults
    # (StreamingConnectionLimit, StreamingTimedSyncSeconds).
    streaming: bool = True
    streaming_connection_limit: int | None = None
    timed_sync_seconds: float | None = None
    # VisibilityTimeout of the outbound and inbound queues (template: 6 x the function's timeout); a short one makes a
    # batch that failed as a whole come back sooner.
    queue_visibility_seconds: int | None = None
    # The reconcile schedule (the template's EventBridge Scheduler): an incremental run of every integration this
    # often, in seconds; None: never (tests ask for runs themselves).
    reconcile_every: float | None = None


@dataclass(frozen=True)
class StackUrls:
    api: str
    ews: str
    jrni: str

    def ready_line(self) -> str:
        return "calsync local ready " + json.dumps({"api": self.api, "ews": self.ews, "jrni": self.jrni})


class ReconcileScheduler:
    """The template's reconcile schedule on the local stack: ``{"kind": "schedule", "deep": false}`` sent to the
    reconcile queue every ``period`` seconds, as EventBridge Scheduler sends it."""

    def __init__(self, sqs: Any, queue_url: str, period: float) -> None:
        self.sqs, self.queue_url, self.period = sqs, queue_url, period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reconcile-schedule", daemon=True)
        self.ticks = 0

    def start(self) -> ReconcileScheduler:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self.sqs.send_message(
                    QueueUrl=self.queue_url,
                    MessageBody=json.dumps({"kind": "schedule", "deep": False}),
                    MessageGroupId="schedule",
                    MessageDeduplicationId=f"schedule-{time.time_ns()}",
                )
                self.ticks += 1
            except Exception as exc:  # the next tick tries again, as Scheduler's retries would
                print(f"calsync local: the reconcile schedule could not send: {exc}", file=sys.stderr)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _load(module: str) -> Any:
    """An emulator module, loaded by name: the emulators are checked by mypy on their own (not strictly), and
    ``mypy --strict local`` should judge this package only."""
    return importlib.import_module(module)


class LocalStack:
    """Start with ``start()`` (or ``with``); ``urls``, ``resources`` and ``seeded`` tell what is running."""

    def __init__(self, options: StackOptions | None = None) -> None:
        self.options = options or StackOptions()
        self.template = load_template()
        self.urls: StackUrls | None = None
        self.resources: Resources | None = None
        self.seeded: Seeded | None = None
        self.moto: Any = None
        self.ews: Any = None
        self.jrni: Any = None
        self.front: Any = None
        self.poller: SqsPoller | None = None
        self.inbound_poller: SqsPoller | None = None
        self.reconcile_poller: SqsPoller | None = None
        self.scheduler: ReconcileScheduler | None = None
        self.streaming: StreamingSupervisor | None = None
        self.cpu = CpuMeter()
        self.events_queue_url: str | None = None
        self.session: Any = None
        self._saved_env: dict[str, str | None] = {}
        self._moto_url = ""
        # Each function's Lambda environments (copies of its module), by logical id.
        self.functions: dict[str, FunctionEnvironments] = {}
        self._saved_switch_interval: float | None = None

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------------------------------------- start

    def start(self) -> StackUrls:
        """Start everything and seed; on any failure what was started is stopped again before raising."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> StackUrls:
        BackgroundServer = _load("emulators.common.server").BackgroundServer
        EmulatorSettings = _load("emulators.ews.settings").EmulatorSettings
        EwsEmulator = _load("emulators.ews.testing").EwsEmulator
        create_app = _load("emulators.jrni.app").create_app
        JrniSettings = _load("emulators.jrni.settings").JrniSettings

        opts = self.options
        # werkzeug (moto's server) logs every request; the stack's output is the ready line and the functions' logs.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.moto = start_moto(opts.host)
        moto_host, moto_port = self.moto.get_host_and_port()
        moto_url = self._moto_url = f"http://{moto_host}:{moto_port}"

        self._set_env(client_environment(moto_url, REGION))
        import boto3

        self.session = boto3.Session(region_name=REGION)
        self.resources = create_resources(_EndpointSession(self.session, moto_url), self.template)
        env = function_environment(self.template, self.resources)
        env["POWERTOOLS_LOG_LEVEL"] = opts.log_level
        env["POWERTOOLS_TRACE_DISABLED"] = "true"  # no X-Ray daemon here
        # Metrics stay on: their EMF lines go to the functions' log (``FunctionEnvironments``), as in AWS.
        # The admin function judges the streaming task's freshness by the heartbeat interval it really runs with.
        env["STREAMING_HEARTBEAT_SECONDS"] = STREAMING_LOCAL["STREAMING_HEARTBEAT_SECONDS"]
        self._set_env(env)

        self.ews = EwsEmulator(EmulatorSettings(latency_ms=opts.latency_ms), port=opts.ews_port).start()
        self.jrni = BackgroundServer(
            lambda: create_app(JrniSettings(latency_ms=opts.latency_ms)), opts.host, opts.jrni_port
        ).start()
        self.cpu.watch("ews_emulator", self.ews.server.thread)
        self.cpu.watch("jrni_emulator", self.jrni.thread)

        from calsync.bootstrap import functions as wiring

        wiring.reset()
        # One environment of each function loaded now (an import error shows at start); the pollers' workers each
        # keep one busy, and the front's concurrent requests load more, as Lambda scales out.
        self.functions = {
            logical: FunctionEnvironments(folder, opts.log_stream).prewarm(1)
            for logical, folder in FUNCTIONS.items()
        }
        cpu = self.cpu
        self.front = BackgroundServer(
            lambda: build_front(
                (
                    cpu.wrap("jrni_webhook", self.functions["JrniWebhookFunction"].invoke),
                    self._context_factory("JrniWebhookFunction"),
                ),
                (
                    cpu.wrap("admin", self.functions["AdminFunction"].invoke),
                    self._context_factory("AdminFunction"),
                ),
                cpu=lambda: {**cpu.snapshot(), "moto": f"{self._moto_url}{MOTO_STATS_PATH}"},
            ),
            opts.host,
            opts.api_port,
        ).start()
        self.cpu.watch("api_front", self.front.thread)
        self.poller = self._poller("OutboundFunction", "outbound")
        self.inbound_poller = self._poller("InboundFunction", "inbound")
        self.reconcile_poller = self._poller("ReconcileFunction", "reconcile")
        self.events_queue_url = self._capture_events()

        self.urls = StackUrls(api=self.front.base_url, ews=self.ews.base_url, jrni=self.jrni.base_url)
        if opts.seed is not None:
            self.seeded = apply_seed(
                load_seed(opts.seed),
                api_url=self.urls.api,
                ews_url=self.urls.ews,
                jrni_url=self.urls.jrni,
                secrets_client=self.client("secretsmanager"),
                secrets_prefix=env.get("SECRETS_PREFIX", ""),
            )
        if self.seeded is not None:
            self._settle("ReconcileQueue")  # the seeded mappings' backfills: done before anyone looks
        if opts.streaming:
            # After the seed: its first plan already holds the seeded mappings (it re-reads them every second).
            # Supervised, as the ECS service does: a task that exits is replaced by a new one.
            self.streaming = StreamingSupervisor(self.streaming_environment(), opts.log_stream).start()
        if opts.reconcile_every is not None:
            self.scheduler = ReconcileScheduler(
                self.client("sqs"), self.resources.queue_urls["ReconcileQueue"], opts.reconcile_every
            ).start()
        _freeze_heap()
        self._saved_switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
        return self.urls

    def _poller(self, logical_id: str, name: str) -> SqsPoller:
        """The SQS event source of one function, as the template declares it."""
        assert self.resources is not None
        queue, batch_size = event_source_queue(self.template, logical_id)
        url = self.resources.queue_urls[queue]
        if self.options.queue_visibility_seconds is not None:
            self.client("sqs").set_queue_attributes(
                QueueUrl=url, Attributes={"VisibilityTimeout": str(self.options.queue_visibility_seconds)}
            )
        environments = self.functions[logical_id].prewarm(self.options.poller_workers)
        return SqsPoller(
            self.client("sqs"),
            url,
            self.resources.queue_arns[queue],
            self.cpu.wrap(name, environments.invoke),
            self._context_factory(logical_id),
            batch_size=batch_size,
            workers=self.options.poller_workers,
            name=name,
        ).start()

    def _settle(self, queue: str, timeout: float = 30.0) -> None:
        """Wait until ``queue`` holds nothing (visible, in flight or delayed)."""
        assert self.resources is not None
        sqs, url = self.client("sqs"), self.resources.queue_urls[queue]
        names = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
            if not any(int(counts.get(name, 0)) for name in names):
                return
            time.sleep(0.05)
        print(f"calsync local: {queue} still busy after {timeout:g} s", file=sys.stderr)

    def _capture_events(self) -> str | None:
        """A rule on the template's bus sending every calsync event to a queue of the stack's own."""
        assert self.resources is not None
        if not self.resources.event_buses:
            return None
        bus = next(iter(self.resources.event_buses.values()))
        sqs, events = self.client("sqs"), self.client("events")
        url = str(sqs.create_queue(QueueName=EVENTS_QUEUE)["QueueUrl"])
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(
            Name=f"{EVENTS_QUEUE}-all", EventBusName=bus, EventPattern=json.dumps({"source": ["calsync"]})
        )
        events.put_targets(
            Rule=f"{EVENTS_QUEUE}-all", EventBusName=bus, Targets=[{"Id": "local", "Arn": arn}]
        )
        return url

    def streaming_environment(self) -> dict[str, str]:
        """The streaming task's environment: the template's container environment, resolved, with AWS pointed at
        moto, the local intervals and the options' limits."""
        assert self.resources is not None
        env = task_environment(self.template, self.resources)
        env.update(client_environment(self._moto_url, REGION))
        env.update(STREAMING_LOCAL)
        if self.options.streaming_connection_limit is not None:
            env["STREAMING_CONNECTION_LIMIT"] = str(self.options.streaming_connection_limit)
        if self.options.timed_sync_seconds is not None:
            env["STREAMING_TIMED_SYNC_SECONDS"] = str(self.options.timed_sync_seconds)
        env["POWERTOOLS_LOG_LEVEL"] = self.options.log_level
        return env

    # ------------------------------------------------------------------------------------------ between tests

    def events(self, wait_seconds: int = 0) -> list[dict[str, Any]]:
        """The calsync events put on the bus since the last call (EventBridge's envelope, ``detail`` parsed)."""
        if self.events_queue_url is None:
            return []
        sqs = self.client("sqs")
        found: list[dict[str, Any]] = []
        while True:
            answer = sqs.receive_message(
                QueueUrl=self.events_queue_url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=0 if found else wait_seconds,
            )
            messages = answer.get("Messages", [])
            if not messages:
                return found
            for message in messages:
                envelope = json.loads(message["Body"])
                if isinstance(envelope.get("detail"), str):
                    envelope["detail"] = json.loads(envelope["detail"])
                found.append(envelope)
                sqs.delete_message(QueueUrl=self.events_queue_url, ReceiptHandle=message["ReceiptHandle"])

    def set_integration(self, integration_id: str, **fields: bool) -> None:
        """Change an integration's switches (``appointment_lock``, ``auto_confirm``) as an operator does: read it
        through the admin API for its ETag, then send the change as a JSON merge patch with that ETag as If-Match.

        The functions read the integration afresh for every message, so the change holds from the next one on.
        Raises ``StackError`` when either call does not answer 200 (no such integration, a change refused, or
        another change in between: 412)."""
        assert self.urls is not None
        if not fields:
            raise ValueError("name at least one field to change, e.g. appointment_lock=False")
        url = f"{self.urls.api}/admin/integrations/{integration_id}"
        http = requests.Session()
        read = http.get(url, timeout=_ADMIN_TIMEOUT)
        if read.status_code != 200:
            raise StackError(f"reading integration {integration_id!r} (GET {url})", read)
        changed = http.patch(
            url,
            json=fields,
            headers={"Content-Type": "application/merge-patch+json", "If-Match": read.headers["ETag"]},
            timeout=_ADMIN_TIMEOUT,
        )
        if changed.status_code != 200:
            raise StackError(f"changing integration {integration_id!r} (PATCH {url} {fields})", changed)

    def reset(self) -> None:
        """Back to the seed, as after ``start()``: emulator faults cleared, impersonation and JRNI's webhooks as the
        seed set them, JRNI's bookings and blocks back to the seed's (none), every mailbox empty, links, block
        links, cursors, sync statuses and dead letters cleared, the integration's switches as seeded, and the queues
        (dead-letter queues too) empty.

        The pollers are paused meanwhile, so no function acts half-way through; wakes the streaming task sends
        during the reset only make the inbound function look at an empty mailbox afterwards."""
        assert self.urls is not None and self.resources is not None
        pollers = [p for p in (self.poller, self.inbound_poller, self.reconcile_poller) if p is not None]
        for poller in pollers:
            poller.pause()
        try:
            seed = load_seed(self.options.seed) if self.options.seed is not None else None
            reseed(seed, self.seeded, ews_url=self.urls.ews, jrni_url=self.urls.jrni)
            dynamodb = self.client("dynamodb")
            for variable in (
                "LINKS_TABLE",
                "BLOCK_LINKS_TABLE",
                "CURSORS_TABLE",
                "RUNS_TABLE",
                "DEAD_LETTERS_TABLE",
            ):
                _empty_table(dynamodb, os.environ[variable])
            _empty_table(
                dynamodb,
                os.environ["MAPPINGS_TABLE"],
                only=lambda key: str(key.get("sk", {}).get("S", "")).startswith("status#"),
            )
            if seed is not None and self.seeded is not None:
                integration = seed["integration"]
                self.set_integration(
                    self.seeded.integration_id,
                    appointment_lock=bool(integration.get("appointment_lock", True)),
                    auto_confirm=bool(integration.get("auto_confirm", False)),
                )
            sqs = self.client("sqs")
            for url in self.resources.queue_urls.values():
                _empty_queue(sqs, url)
            self.events()
        finally:
            for poller in pollers:
                poller.resume()

    def client(self, service: str) -> Any:
        """A boto3 client for moto."""
        return self.session.client(service, endpoint_url=os.environ["AWS_ENDPOINT_URL"])

    def _context_factory(self, logical_id: str) -> Any:
        assert self.resources is not None
        props = self.template["Resources"][logical_id]["Properties"]
        defaults = self.template.get("Globals", {}).get("Function", {})
        name = str(self.resources.resolve(props.get("FunctionName", logical_id)))
        timeout = float(props.get("Timeout", defaults.get("Timeout", 3)))
        memory = int(props.get("MemorySize", defaults.get("MemorySize", 128)))
        return lambda: LambdaContext(name, timeout_seconds=timeout, memory_limit_in_mb=memory, region=REGION)

    def _set_env(self, values: dict[str, str]) -> None:
        for name, value in values.items():
            self._saved_env.setdefault(name, os.environ.get(name))
            os.environ[name] = value

    # -------------------------------------------------------------------------------------------------- stop

    def stop(self) -> None:
        """Stop everything that was started, newest first, and put the environment back."""
        # The streaming task first: it ends its subscriptions on the EWS emulator and sends its last wakes to moto.
        if self.streaming is not None:
            try:
                self.streaming.stop()
            except Exception as exc:
                print(f"calsync local: stopping the streaming task failed: {exc}", file=sys.stderr)
        for part in (
            self.scheduler,
            self.reconcile_poller,
            self.inbound_poller,
            self.poller,
            self.front,
            self.jrni,
            self.ews,
        ):
            if part is not None:
                try:
                    part.stop()
                except Exception as exc:  # stopping the rest matters more than this one
                    print(f"calsync local: stopping {type(part).__name__} failed: {exc}", file=sys.stderr)
        if self.moto is not None:
            # moto keeps its state in the process's global backends, which outlive its server: forget it, so that a
            # next stack in this process starts from nothing.
            try:
                requests.post(f"{self._moto_url}/moto-api/reset", timeout=10)
            except Exception as exc:
                print(f"calsync local: resetting moto failed: {exc}", file=sys.stderr)
            try:
                self.moto.stop()
            except Exception as exc:
                print(f"calsync local: stopping moto failed: {exc}", file=sys.stderr)
        if self._saved_switch_interval is not None:
            sys.setswitchinterval(self._saved_switch_interval)
            self._saved_switch_interval = None
        self.streaming = None
        self.poller = self.inbound_poller = self.reconcile_poller = self.front = self.jrni = self.ews = None
        self.scheduler = self.moto = None
        self.functions = {}
        forget_log_routing()
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env.clear()
        if "calsync.bootstrap.functions" in sys.modules:
            sys.modules["calsync.bootstrap.functions"].reset()


def _freeze_heap() -> None:
    """Keep the start-up heap out of the garbage collector's full collections.

    Everything runs in this one process: moto with the models of every AWS service it loaded, both emulators, all
    the functions with boto3, exchangelib and Powertools. A full collection walks all of it, and stops every thread
    for hundreds of milliseconds each time it runs; a Lambda function's own process holds a small part of that. What
    exists once the stack is up lives as long as the stack, so it is moved where collections do not look
    (``gc.freeze``); what is made afterwards is collected as usual."""
    gc.collect()
    gc.freeze()


def _empty_queue(sqs: Any, url: str) -> None:
    """Purge a queue; SQS (and moto) allow one purge a minute, so within that minute, delete what is visible."""
    from botocore.exceptions import ClientError

    try:
        sqs.purge_queue(QueueUrl=url)
        return
    except ClientError as exc:
        if "PurgeQueueInProgress" not in str(exc.response.get("Error", {}).get("Code", "")):
            raise
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
            "Messages", []
        )
        if not messages:
            return
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
        )


def _empty_table(dynamodb: Any, table: str, only: Callable[[dict[str, Any]], bool] | None = None) -> None:
    """Delete every item of ``table`` (only those whose key ``only`` accepts, when given)."""
    keys = [a["AttributeName"] for a in dynamodb.describe_table(TableName=table)["Table"]["KeySchema"]]
    pages = dynamodb.get_paginator("scan").paginate(
        TableName=table,
        ProjectionExpression=", ".join(f"#{k}" for k in keys),
        ExpressionAttributeNames={f"#{k}": k for k in keys},
    )
    for page in pages:
        for item in page.get("Items", []):
            if only is None or only(item):
                dynamodb.delete_item(TableName=table, Key={k: item[k] for k in keys})


class _EndpointSession:
    """A boto3 session whose clients all talk to ``endpoint_url`` (moto)."""

    def __init__(self, session: Any, endpoint_url: str) -> None:
        self.session = session
        self.endpoint_url = endpoint_url
        self.region_name = session.region_name

    def client(self, service: str) -> Any:
        return self.session.client(service, endpoint_url=self.endpoint_url)
