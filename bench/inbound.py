"""Benchmark of the inbound path: a meeting put in Outlook → streaming notification → inbound SQS queue → inbound
function → block in JRNI.

Run: ``PYTHONPATH=.:shared .venv/bin/python bench/inbound.py`` (a few minutes; loopback only). For each emulator
latency (``--latency-ms 0 50``) it starts moto (server mode, in its own process, as the local stack runs it) and,
in this process, the EWS and JRNI emulators and a webhook receiver for JRNI; creates the template's tables and queues, one integration and ``--mailboxes`` mapped
advisers; runs the real streaming runner (``calsync.bootstrap.streaming.build_task``, sending to the inbound queue)
and the real inbound handler behind the local stack's SQS poller (``local.poller.SqsPoller``). Then ``--changes``
meetings are put in Outlook one after the other (EWS control plane, as the mailbox owner) and each one's latency runs
from just before that call to the arrival of JRNI's webhook for the block it became (legacy format: the block's
private note names the meeting). Finally the streaming task's memory with ``--memory-mailboxes`` subscribed is
measured in a process of its own.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil
import requests

REPO = Path(__file__).resolve().parents[1]
INTEGRATION = "bench-bank"
PARENT, BRANCH = 10, 11
SERVICE_ACCOUNT, PASSWORD = "svc@bench.example.test", "pass-for-tests"
APP = {"app_id": "bench-app", "app_key": "bench-key"}
ADMIN = {"email": "admin@bench.example.test", "password": "pass-for-tests", "company_id": PARENT}


def mailbox(n: int) -> str:
    return f"adviser{n:04d}@bench.example.test"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


# ---- JRNI's webhooks: the moment a block exists ------------------------------------------------------------------


class Receiver:
    """Receives JRNI's legacy webhooks; notes when each block (by the first line of its private note) arrived."""

    def __init__(self) -> None:
        self.arrivals: dict[
            str, float
        ] = {}  # note's first line, or "booking:<id>", → perf_counter at arrival
        self.changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                now = time.perf_counter()
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                self.send_response(200)
                self.end_headers()
                with receiver.changed:
                    for booking in body.get("_embedded", {}).get("bookings", []):
                        if booking.get("status") != 3 or booking.get("is_cancelled"):
                            continue
                        note = (booking.get("private_note") or "").splitlines()
                        receiver.arrivals.setdefault(f"booking:{booking.get('id')}", now)
                        if note:
                            receiver.arrivals.setdefault(note[0], now)
                    receiver.changed.notify_all()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jrni"

    def wait(self, key: str, timeout: float) -> float | None:
        deadline = time.perf_counter() + timeout
        with self.changed:
            while key not in self.arrivals:
                left = deadline - time.perf_counter()
                if left <= 0:
                    return None
                self.changed.wait(left)
            return self.arrivals[key]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ---- one run: everything in this process -------------------------------------------------------------------------


def jrni_seed(mailboxes: int) -> dict[str, Any]:
    return {
        "apps": [APP],
        "companies": [
            {"id": PARENT, "name": "Bench Bank", "timezone": "Europe/London"},
            {"id": BRANCH, "name": "Bench Branch", "timezone": "Europe/London", "parent_id": PARENT},
        ],
        "admins": [ADMIN],
        "people": [
            {"id": n + 1, "company_id": BRANCH, "name": f"Adviser {n}", "email": mailbox(n)}
            for n in range(mailboxes)
        ],
        "services": [{"id": 401, "company_id": BRANCH, "name": "Consultation", "duration": 30}],
    }


def run_latency(latency_ms: int, changes: int, mailboxes: int, timeout: float) -> dict[str, Any]:
    import boto3

    from bench.harness import functions_environment
    from calsync.adapters.dynamo import DynamoCursorStore, DynamoIntegrationStore, DynamoMappingStore
    from calsync.bootstrap import functions as wiring
    from calsync.bootstrap.streaming import StreamingSettings, build_task
    from calsync.domain import (
        AccessType,
        ExchangeConnection,
        Integration,
        JrniConnection,
        Mapping,
        ResourceKind,
    )
    from emulators.common.server import BackgroundServer
    from emulators.ews.settings import EmulatorSettings
    from emulators.ews.testing import EwsEmulator
    from emulators.jrni.app import create_app
    from emulators.jrni.settings import JrniSettings
    from local.aws import create_resources, function_environment, load_template
    from local.events import LambdaContext
    from local.lambdas import FunctionEnvironments
    from local.moto_server import start_moto
    from local.poller import SqsPoller
    from local.stack import SWITCH_INTERVAL_SECONDS

    region = "eu-west-2"
    moto = start_moto()  # in its own process, as in the local stack
    host, port = moto.get_host_and_port()
    moto_url = f"http://{host}:{port}"
    saved = dict(os.environ)
    os.environ.update(functions_environment(moto_url, region))
    ews = EwsEmulator(EmulatorSettings(latency_ms=latency_ms)).start()
    jrni = BackgroundServer(lambda: create_app(JrniSettings(latency_ms=latency_ms))).start()
    receiver = Receiver()
    runner: Any = None
    poller: SqsPoller | None = None
    runner_thread: threading.Thread | None = None
    saved_interval = sys.getswitchinterval()
    try:
        session = boto3.Session(region_name=region)
        resources = create_resources(session, load_template(), {"NamePrefix": f"bench{latency_ms}"})
        env = function_environment(load_template(), resources)
        env.update(
            {
                "STREAMING_STATE_TABLE": resources.tables["StreamingStateTable"],
                "INBOUND_QUEUE_URL": resources.queue_urls["InboundQueue"],
                "STREAMING_TASK_ID": "bench",
                "STREAMING_HEARTBEAT_SECONDS": "30",
            }
        )
        os.environ.update({**env, "POWERTOOLS_LOG_LEVEL": "WARNING", "LOG_LEVEL": "WARNING"})
        wiring.reset()
        prefix = env.get("SECRETS_PREFIX", "")

        http = requests.Session()
        http.post(f"{jrni.base_url}/_emulator/seed", json=jrni_seed(mailboxes), timeout=30).raise_for_status()
        http.post(
            f"{jrni.base_url}/_emulator/webhooks", json={"url": receiver.url, "format": "legacy"}, timeout=30
        ).raise_for_status()
        ews.add_account(SERVICE_ACCOUNT, PASSWORD)
        for n in range(mailboxes):
            ews.add_account(mailbox(n), PASSWORD)
        ews.control("POST", "impersonation", {"service_account": SERVICE_ACCOUNT, "mailboxes": ["*"]})
        secrets = session.client("secretsmanager")
        secrets.create_secret(
            Name=f"{prefix}jrni",
            SecretString=json.dumps({**APP, "email": ADMIN["email"], "password": ADMIN["password"]}),
        )
        secrets.create_secret(
            Name=f"{prefix}exchange",
            SecretString=json.dumps({"username": SERVICE_ACCOUNT, "password": PASSWORD}),
        )
        options = {"region": region, "endpoint_url": moto_url}
        DynamoIntegrationStore(env["INTEGRATIONS_TABLE"], **options).create(
            Integration(
                id=INTEGRATION,
                name="Bench Bank",
                jrni=JrniConnection(jrni.base_url, str(PARENT), "jrni"),
                exchange=ExchangeConnection(ews.ews_url, "exchange", access_type=AccessType.IMPERSONATION),
                webhook_secret_name="webhook",
            )
        )
        mappings = DynamoMappingStore(env["MAPPINGS_TABLE"], **options)
        for n in range(mailboxes):
            mappings.put(Mapping(INTEGRATION, ResourceKind.PERSON, str(n + 1), mailbox(n)))

        runner = build_task(StreamingSettings.from_env(), session)
        runner_thread = threading.Thread(target=runner.run, name="streaming-runner", daemon=True)
        runner_thread.start()
        queue_url = resources.queue_urls["InboundQueue"]
        poller = SqsPoller(
            session.client("sqs"),
            queue_url,
            resources.queue_arns["InboundQueue"],
            FunctionEnvironments("inbound").prewarm(2).invoke,
            lambda: LambdaContext("bench-inbound"),
            batch_size=5,
            workers=2,
            name="inbound",
        ).start()

        # Ready: every mailbox subscribed and synced once (the task's start wakes), so each has its cursor.
        cursors = DynamoCursorStore(env["CURSORS_TABLE"], **options)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if all(cursors.get(INTEGRATION, mailbox(n)) for n in range(mailboxes)):
                break
            time.sleep(0.2)
        else:
            raise RuntimeError("the mailboxes were never synced once; is the streaming runner running?")
        time.sleep(2.0)  # let the start wakes' coalescing interval pass
        # As the local stack does for its one interpreter (local/stack.py): the start-up heap kept out of full
        # collections, and a short switch interval, so that no thread waits 5 ms for a busy one at each request.
        gc.collect()
        gc.freeze()
        saved_interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)

        # The receiver's own delay: blocks made as a JRNI user would, straight to their webhook.
        calibration = []
        first = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=60)
        for n in range(11):
            start = first + timedelta(hours=n)
            sent = time.perf_counter()
            answer = http.post(
                f"{jrni.base_url}/_emulator/blocks",
                timeout=30,
                json={
                    "company_id": BRANCH,
                    "person_id": 1,
                    "start_time": start.isoformat(),
                    "end_time": (start + timedelta(minutes=30)).isoformat(),
                    "booking": True,
                },
            )
            answer.raise_for_status()
            arrived = receiver.wait(f"booking:{answer.json()['id']}", 10)
            if arrived is not None:
                calibration.append(arrived - sent)
        calibration = calibration[1:]

        jrni_before = http.get(f"{jrni.base_url}/_emulator/stats", timeout=30).json()["requests"]
        ews_before = ews.control("GET", "stats")
        cpu_before = psutil.Process().cpu_times()
        moto_process = psutil.Process(moto.pid)
        moto_before = sum(moto_process.cpu_times()[:2])
        latencies: list[float] = []
        lost = 0
        day0 = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=7)
        t_first = time.perf_counter()
        for i in range(changes):
            start = day0 + timedelta(days=i // 8, hours=8 + i % 8)
            subject = f"bench change {i}"
            sent = time.perf_counter()
            ews.control(
                "POST",
                f"mailboxes/{mailbox(i % mailboxes)}/items",
                {
                    "subject": subject,
                    "start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "end": (start + timedelta(minutes=45)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "legacy_free_busy_status": "Busy",
                },
            )
            arrived = receiver.wait(subject, timeout)
            if arrived is None:
                lost += 1
                log(f"  change {i}: no block within {timeout:g} s")
                continue
            latencies.append(arrived - sent)
            if (i + 1) % 50 == 0:
                log(f"  {latency_ms} ms: {i + 1}/{changes} changes")
        elapsed = time.perf_counter() - t_first
        time.sleep(1.5)  # anything the changes still cause (a late extra wake) counts
        cpu_after = psutil.Process().cpu_times()
        moto_after = sum(moto_process.cpu_times()[:2])
        ews_after = ews.control("GET", "stats")
        jrni_after = http.get(f"{jrni.base_url}/_emulator/stats", timeout=30).json()["requests"]
        ops = Counter(ews_after["operations"])
        ops.subtract(Counter(ews_before["operations"]))
        calls = Counter(jrni_after)
        calls.subtract(Counter(jrni_before))
        state = http.get(f"{jrni.base_url}/_emulator/state", timeout=30).json()
        bench_blocks = Counter(
            (b.get("private_note") or "").splitlines()[0]
            for b in state["blocks"]
            if not b["is_cancelled"] and (b.get("private_note") or "").startswith("bench change")
        )
        return {
            "latency_ms": latency_ms,
            "changes": changes,
            "mailboxes": mailboxes,
            "latencies": latencies,
            "lost": lost,
            "elapsed": elapsed,
            "calibration": calibration,
            "ews_ops": {k: v for k, v in ops.items() if v},
            "jrni_calls": {k: v for k, v in calls.items() if v and "/_emulator/" not in k},
            "blocks": len(bench_blocks),
            "duplicates": sum(v - 1 for v in bench_blocks.values() if v > 1),
            "cpu": (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system),
            "moto_cpu": moto_after - moto_before,
        }
    finally:
        sys.setswitchinterval(saved_interval)
        gc.unfreeze()
        if poller is not None:
            poller.stop()
        if runner is not None:
            runner.stop()
        if runner_thread is not None:
            runner_thread.join(30)
        receiver.stop()
        ews.stop()
        jrni.stop()
        moto.stop()
        os.environ.clear()
        os.environ.update(saved)
        wiring.reset()


# ---- the streaming task's memory ---------------------------------------------------------------------------------


def memory_child(ews_url: str, mailboxes: int, connection_limit: int) -> None:
    """In its own process: the streaming runner (as ``build_task`` wires it, minus AWS: a static directory, an
    in-memory notifier and state) subscribing ``mailboxes`` mailboxes; prints RSS before and after as JSON."""
    from calsync.bootstrap.streaming import EwsExchanges
    from calsync.domain import AccessType, ExchangeConnection, Integration, JrniConnection
    from calsync.streaming.planner import MailboxRef
    from calsync.streaming.runner import RunnerSettings, StreamingRunner

    integration = Integration(
        INTEGRATION,
        "Bench Bank",
        JrniConnection("http://127.0.0.1:9", "10", "jrni"),
        ExchangeConnection(ews_url, "exchange", access_type=AccessType.IMPERSONATION),
        "webhook",
    )

    class Integrations:
        def get(self, integration_id: str) -> Integration | None:
            return integration if integration_id == INTEGRATION else None

    class Secrets:
        def get(self, name: str) -> dict[str, str]:
            return {"username": SERVICE_ACCOUNT, "password": PASSWORD}

    class Directory:
        def mailboxes(self) -> list[MailboxRef]:
            return [MailboxRef(INTEGRATION, mailbox(n)) for n in range(mailboxes)]

    class Sink:
        def __init__(self) -> None:
            self.wakes = 0

        def send(self, wakes: list[Any]) -> None:
            self.wakes += len(wakes)

        def heartbeat(self, *args: Any) -> None:
            pass

        def record_mailbox(self, *args: Any) -> None:
            pass

    sink = Sink()
    runner = StreamingRunner(
        RunnerSettings(task_id="bench-memory", connection_limit=connection_limit),
        directory=Directory(),
        exchange_for=EwsExchanges(Integrations(), Secrets(), sessions=2 * connection_limit + 2),
        notifier=sink,
        state=sink,
    )
    gc.collect()
    process = psutil.Process()
    before = process.memory_info().rss
    t0 = time.perf_counter()
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    http = requests.Session()
    stats: dict[str, Any] = {}
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        stats = http.get(ews_url.replace("/EWS/Exchange.asmx", "/_emulator/stats"), timeout=30).json()
        if stats.get("subscriptions", 0) >= mailboxes and stats.get("streaming_connections", 0) >= min(
            connection_limit, -(-mailboxes // 200)
        ):
            break
        time.sleep(0.5)
    subscribed = time.perf_counter() - t0
    time.sleep(2.0)
    gc.collect()
    after = process.memory_info().rss
    print(
        json.dumps(
            {
                "before": before,
                "after": after,
                "seconds": subscribed,
                "threads": threading.active_count(),
                "subscriptions": stats.get("subscriptions"),
                "connections": stats.get("streaming_connections"),
                "wakes": sink.wakes,
            }
        ),
        flush=True,
    )
    runner.stop()
    thread.join(60)


def run_memory(mailboxes: int, connection_limit: int) -> dict[str, Any]:
    from emulators.ews.settings import EmulatorSettings
    from emulators.ews.testing import EwsEmulator

    with EwsEmulator(EmulatorSettings(max_streaming_connections=connection_limit)) as ews:
        ews.add_account(SERVICE_ACCOUNT, PASSWORD)
        for n in range(mailboxes):
            ews.add_account(mailbox(n), PASSWORD)
        ews.control("POST", "impersonation", {"service_account": SERVICE_ACCOUNT, "mailboxes": ["*"]})
        env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'shared'}"}
        child = subprocess.run(
            [sys.executable, __file__, "--memory-child", ews.ews_url, str(mailboxes), str(connection_limit)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        lines = [line for line in child.stdout.splitlines() if line.startswith("{")]
        if child.returncode != 0 or not lines:
            raise RuntimeError(f"the memory run failed ({child.returncode}): {child.stderr[-2000:]}")
        return dict(json.loads(lines[-1]))


# ---- report ------------------------------------------------------------------------------------------------------


def report(runs: list[dict[str, Any]], memory: dict[str, Any] | None) -> None:
    print("\n## Outlook change → JRNI block (closed loop, one change at a time)\n")
    print(
        "| emulator latency | changes | p50 ms | p95 ms | max ms | lost | blocks | duplicates | changes/s "
        "| webhook delay p50 ms | CPU ms/change | moto CPU ms/change |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for run in runs:
        lat = [x * 1000 for x in run["latencies"]] or [float("nan")]
        cal = [x * 1000 for x in run["calibration"]] or [float("nan")]
        print(
            f"| {run['latency_ms']} ms | {run['changes']} | {statistics.median(lat):.0f} | {pct(lat, 95):.0f} | "
            f"{max(lat):.0f} | {run['lost']} | {run['blocks']} | {run['duplicates']} | "
            f"{run['changes'] / run['elapsed']:.1f} | {statistics.median(cal):.1f} | "
            f"{run['cpu'] * 1000 / run['changes']:.0f} | {run['moto_cpu'] * 1000 / run['changes']:.0f} |"
        )
    print("\n## Requests per Outlook change (after minus before, divided by the changes)\n")
    print("| emulator latency | EWS requests | by operation | JRNI API requests | by endpoint |")
    print("|---|---|---|---|---|")
    for run in runs:
        n = run["changes"]
        ews_ops = run["ews_ops"]
        jrni = run["jrni_calls"]
        by_op = ", ".join(f"{k} {v / n:.2f}" for k, v in sorted(ews_ops.items()))
        by_ep = ", ".join(f"{k} {v / n:.2f}" for k, v in sorted(jrni.items()))
        print(
            f"| {run['latency_ms']} ms | {sum(ews_ops.values()) / n:.2f} | {by_op} | {sum(jrni.values()) / n:.2f} "
            f"| {by_ep} |"
        )
    if memory is not None:
        mib = 1024 * 1024
        per = (memory["after"] - memory["before"]) / max(1, memory["subscriptions"] or 1)
        print("\n## Streaming task memory\n")
        print(
            "| mailboxes subscribed | connections | RSS before MiB | RSS after MiB | per mailbox KiB | "
            "subscribe time s | threads |"
        )
        print("|---|---|---|---|---|---|---|")
        print(
            f"| {memory['subscriptions']} | {memory['connections']} | {memory['before'] / mib:.1f} | "
            f"{memory['after'] / mib:.1f} | {per / 1024:.1f} | {memory['seconds']:.1f} | {memory['threads']} |"
        )


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--memory-child":
        memory_child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        return 0
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--mailboxes", type=int, default=20, help="mapped advisers the changes rotate over")
    parser.add_argument("--latency-ms", type=int, nargs="+", default=[0, 50])
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for one change's block")
    parser.add_argument("--memory-mailboxes", type=int, default=2000, help="0 skips the memory part")
    parser.add_argument("--connection-limit", type=int, default=10)
    args = parser.parse_args()
    import logging

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    runs = []
    for latency in args.latency_ms:
        log(f"inbound latency run, emulators at {latency} ms ...")
        runs.append(run_latency(latency, args.changes, args.mailboxes, args.timeout))
    memory = None
    if args.memory_mailboxes:
        log(f"streaming memory with {args.memory_mailboxes} mailboxes ...")
        memory = run_memory(args.memory_mailboxes, args.connection_limit)
    report(runs, memory)
    return 0 if all(r["lost"] == 0 and r["duplicates"] == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
