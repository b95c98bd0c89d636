"""Benchmark of reconciliation: the backfill of newly mapped advisers, and an idle scheduled reconcile.

Run: ``PYTHONPATH=.:shared .venv/bin/python bench/reconcile.py`` (a few minutes; loopback only). moto (server mode)
and the EWS and JRNI emulators each run in a process of their own, with ``--latency-ms`` (default 50) added to every
EWS and JRNI API request; this process runs the real admin and reconcile functions (``functions/*/app.py``), the
reconcile function behind the local stack's SQS poller with as many workers as the template's ``ExchangeConcurrency``
(the event source's ``MaximumConcurrency``: Lambda runs at most that many at once).

1. **backfill**: ``--bookings`` (10,000) future bookings in JRNI for ``--mailboxes`` (100) advisers nobody has mapped;
   then each adviser is mapped through the admin API (``PUT …/mappings/person/{id}``, which starts the backfill) and
   the clock runs until every booking is in its adviser's calendar, and until every backfill run says ``done``.
   Then each calendar is read: every booking exactly once.
2. **idle reconcile**: another integration with ``--idle-mappings`` (1,000) mapped advisers, ``--idle-bookings`` (2)
   bookings each, reconciled once (its first run reads everything: deep) so each mailbox has its cursor; then one
   incremental ``POST …/reconcile`` with nothing changed, counted from its request to ``done``.

Requests are the emulators' own counts (``GET /_emulator/stats``) and moto's (``GET /_local/stats``), after minus
before. Progress goes to stderr, the tables to stdout; exit 0 when every booking arrived exactly once and the idle
run wrote nothing to Exchange or JRNI.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import requests

REPO = Path(__file__).resolve().parents[1]
REGION = "eu-west-2"
SERVICE_ACCOUNT, PASSWORD = "svc@bench.example.test", "pass-for-tests"
APP = {"app_id": "bench-app", "app_key": "bench-key"}
KEY_PROPERTY = "CalsyncJrniKey"  # the extended property calsync stamps with "<company>/<booking>"
EWS_WRITES = ("CreateItem", "UpdateItem", "DeleteItem")
DYNAMO_WRITES = ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems")
PUTS_AT_ONCE = 10  # mapping requests the backfill part sends side by side
SERVICE_ID, SERVICE_MINUTES = 401, 30


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---- the emulators, each in a process of its own ---------------------------------------------------------------


@dataclass(frozen=True)
class Emulators:
    ews: str  # base URL (control plane under /_emulator, EWS under /EWS/Exchange.asmx)
    jrni: str
    ews_process: psutil.Process
    jrni_process: psutil.Process


@contextlib.contextmanager
def emulators(latency_ms: int) -> Iterator[Emulators]:
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'shared'}"}
    ews_port, jrni_port = free_port(), free_port()
    common = {"env": env, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "cwd": REPO}
    ews = subprocess.Popen(
        [sys.executable, "-m", "emulators.ews", "--port", str(ews_port), "--latency-ms", str(latency_ms)],
        **common,  # type: ignore[call-overload]
    )
    jrni = subprocess.Popen(
        [sys.executable, "-m", "emulators.jrni", "--port", str(jrni_port), "--latency-ms", str(latency_ms)],
        **common,  # type: ignore[call-overload]
    )
    urls = (f"http://127.0.0.1:{ews_port}", f"http://127.0.0.1:{jrni_port}")
    try:
        deadline = time.monotonic() + 60
        for url in urls:
            while True:
                try:
                    requests.get(f"{url}/_emulator/stats", timeout=2).raise_for_status()
                    break
                except requests.RequestException:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"the emulator at {url} did not start within 60 s") from None
                    time.sleep(0.1)
        http = http_local()
        # Shared by both parts: JRNI's app key, and Exchange's service account impersonating every mailbox.
        call(http, "POST", f"{urls[1]}/_emulator/seed", {"apps": [APP]})
        call(
            http, "POST", f"{urls[0]}/_emulator/accounts", {"address": SERVICE_ACCOUNT, "password": PASSWORD}
        )
        call(
            http,
            "POST",
            f"{urls[0]}/_emulator/impersonation",
            {"service_account": SERVICE_ACCOUNT, "mailboxes": ["*"]},
        )
        yield Emulators(urls[0], urls[1], psutil.Process(ews.pid), psutil.Process(jrni.pid))
    finally:
        for proc in (ews, jrni):
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)


def call(http: requests.Session, method: str, url: str, body: Any = None) -> Any:
    answer = http.request(method, url, json=body, timeout=60)
    if answer.status_code >= 400:
        raise RuntimeError(f"{method} {url}: {answer.status_code} {answer.text[:300]}")
    return answer.json() if answer.content else None


# ---- what the emulators and moto counted -------------------------------------------------------------------------


@dataclass
class Counts:
    ews: Counter[str]
    jrni: Counter[str]
    aws: Counter[str]
    cpu: dict[str, float]
    aws_cpu: Counter[str]

    def __sub__(self, other: Counts) -> Counts:
        return Counts(
            self.ews - other.ews,
            self.jrni - other.jrni,
            self.aws - other.aws,
            {k: v - other.cpu.get(k, 0.0) for k, v in self.cpu.items()},
            self.aws_cpu - other.aws_cpu,
        )


def counts(http: requests.Session, emu: Emulators, moto_url: str, moto_pid: int) -> Counts:
    ews = Counter(call(http, "GET", f"{emu.ews}/_emulator/stats")["operations"])
    jrni = Counter(
        {
            k: v
            for k, v in call(http, "GET", f"{emu.jrni}/_emulator/stats")["requests"].items()
            if " /api/" in k
        }
    )
    moto_stats = call(http, "GET", f"{moto_url}/_local/stats")
    aws = Counter({op.split(".")[-1]: int(v["requests"]) for op, v in moto_stats.items()})
    aws_cpu = Counter({op.split(".")[-1]: float(v["cpu_seconds"]) for op, v in moto_stats.items()})
    cpu = {
        "functions (this process)": sum(psutil.Process().cpu_times()[:2]),
        "EWS emulator": sum(emu.ews_process.cpu_times()[:2]),
        "JRNI emulator": sum(emu.jrni_process.cpu_times()[:2]),
        "moto": sum(psutil.Process(moto_pid).cpu_times()[:2]),
    }
    return Counts(ews, jrni, aws, cpu, aws_cpu)


# ---- an integration on the emulators, and the functions --------------------------------------------------------


@dataclass
class Setup:
    integration: str
    parent: int
    branch: int
    people: int
    env: dict[str, str]
    resources: Any
    session: Any
    moto_url: str
    admin: Any  # FunctionEnvironments

    def mailbox(self, n: int) -> str:
        return f"{self.integration}-adviser{n:04d}@bench.example.test"

    def admin_call(self, method: str, path: str, body: Any = None) -> Any:
        from local.events import LambdaContext, rest_event

        event = rest_event(
            method,
            f"/admin/{path}",
            "/admin/{proxy+}",
            headers={"Content-Type": "application/json"},
            query=[],
            path_parameters={"proxy": path},
            body=json.dumps(body).encode() if body is not None else b"",
        )
        answer = self.admin.invoke(event, LambdaContext("bench-admin", timeout_seconds=29))
        if answer["statusCode"] >= 300:
            raise RuntimeError(f"{method} /admin/{path}: {answer['statusCode']} {answer['body'][:300]}")
        return json.loads(answer["body"]) if answer.get("body") else None

    def run_state(self, run_id: str) -> dict[str, Any]:
        state: dict[str, Any] = self.admin_call("GET", f"integrations/{self.integration}/reconcile/{run_id}")
        return state


def prepare(emu: Emulators, moto_url: str, prefix: str, integration: str, parent: int, people: int) -> Setup:
    """Tables and queues of the template, the credentials, one integration, ``people`` advisers in JRNI with a
    mailbox each (nobody mapped yet)."""
    import boto3

    from calsync.adapters.dynamo import DynamoIntegrationStore
    from calsync.bootstrap import functions as wiring
    from calsync.domain import AccessType, ExchangeConnection, Integration, JrniConnection
    from local.aws import create_resources, function_environment, load_template
    from local.lambdas import FunctionEnvironments

    session = boto3.Session(region_name=REGION)
    resources = create_resources(session, load_template(), {"NamePrefix": prefix})
    env = function_environment(load_template(), resources)
    os.environ.update({**env, "POWERTOOLS_LOG_LEVEL": "WARNING", "LOG_LEVEL": "WARNING"})
    wiring.reset()
    secret_prefix = env.get("SECRETS_PREFIX", "")
    setup = Setup(
        integration,
        parent,
        parent + 1,
        people,
        env,
        resources,
        session,
        moto_url,
        FunctionEnvironments("admin"),
    )
    http = http_local()
    admin = {"email": f"admin@{integration}.example.test", "password": PASSWORD, "company_id": parent}
    call(
        http,
        "POST",
        f"{emu.jrni}/_emulator/seed",
        {
            "companies": [
                {"id": parent, "name": f"{integration} HQ", "timezone": "Europe/London"},
                {
                    "id": setup.branch,
                    "name": f"{integration} branch",
                    "timezone": "Europe/London",
                    "parent_id": parent,
                },
            ],
            "admins": [admin],
            "people": [
                {
                    "id": parent * 10_000 + n,
                    "company_id": setup.branch,
                    "name": f"Adviser {n}",
                    "email": setup.mailbox(n),
                }
                for n in range(people)
            ],
            "services": [
                {
                    "id": parent * 10 + 1,
                    "company_id": setup.branch,
                    "name": "Review",
                    "duration": SERVICE_MINUTES,
                }
            ],
        },
    )

    def account(n: int) -> None:
        call(
            http_local(),
            "POST",
            f"{emu.ews}/_emulator/accounts",
            {"address": setup.mailbox(n), "password": PASSWORD},
        )

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(account, range(people)))
    secrets = session.client("secretsmanager")
    for name, value in (
        (f"{integration}-jrni", {**APP, "email": admin["email"], "password": PASSWORD}),
        (f"{integration}-exchange", {"username": SERVICE_ACCOUNT, "password": PASSWORD}),
    ):
        secrets.create_secret(Name=f"{secret_prefix}{name}", SecretString=json.dumps(value))
    DynamoIntegrationStore(env["INTEGRATIONS_TABLE"], region=REGION, endpoint_url=moto_url).create(
        Integration(
            id=integration,
            name=integration,
            jrni=JrniConnection(emu.jrni, str(parent), f"{integration}-jrni"),
            exchange=ExchangeConnection(
                f"{emu.ews}/EWS/Exchange.asmx",
                f"{integration}-exchange",
                access_type=AccessType.IMPERSONATION,
            ),
            webhook_secret_name=f"{integration}-webhook",
        )
    )
    return setup


_local = threading.local()


def http_local() -> requests.Session:
    if not hasattr(_local, "http"):
        _local.http = requests.Session()
    session: requests.Session = _local.http
    return session


def book_all(emu: Emulators, setup: Setup, per_person: int) -> int:
    """``per_person`` future bookings for each adviser, made as a JRNI user makes them; how many."""
    first = (datetime.now(UTC) + timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)
    slots_a_day = 8  # 09:00 … 16:30, an hour apart: the 90-day window holds 720
    if per_person > slots_a_day * 85:
        raise SystemExit(f"at most {slots_a_day * 85} bookings per adviser fit in the sync window")
    done = [0]
    lock = threading.Lock()

    def person(n: int) -> None:
        for b in range(per_person):
            day, slot = divmod(b, slots_a_day)
            start = first + timedelta(days=day, hours=9 + slot)
            call(
                http_local(),
                "POST",
                f"{emu.jrni}/_emulator/bookings",
                {
                    "company_id": setup.branch,
                    "service_id": setup.parent * 10 + 1,
                    "person_id": setup.parent * 10_000 + n,
                    "datetime": start.isoformat().replace("+00:00", "Z"),
                    "client": {
                        "first_name": "Pat",
                        "last_name": f"Client{n}",
                        "email": f"pat{n}@customer.example.test",
                    },
                },
            )
        with lock:
            done[0] += 1
            if done[0] % 100 == 0 or done[0] == setup.people:
                log(f"  booked for {done[0]}/{setup.people} advisers")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(person, range(setup.people)))
    return setup.people * per_person


def reconcile_poller(setup: Setup, workers: int) -> Any:
    from local.events import LambdaContext
    from local.lambdas import FunctionEnvironments
    from local.poller import SqsPoller

    return SqsPoller(
        setup.session.client("sqs"),
        setup.resources.queue_urls["ReconcileQueue"],
        setup.resources.queue_arns["ReconcileQueue"],
        FunctionEnvironments("reconcile").prewarm(workers).invoke,
        lambda: LambdaContext("bench-reconcile", timeout_seconds=300),
        batch_size=1,  # the template's event source
        workers=workers,
        name="reconcile",
    ).start()


def stamps(emu: Emulators, setup: Setup) -> Counter[str]:
    """Every item of ours in the advisers' calendars, by the booking it is stamped for."""

    def read(n: int) -> list[str]:
        items = call(http_local(), "GET", f"{emu.ews}/_emulator/mailboxes/{setup.mailbox(n)}/items")
        items = items["items"] if isinstance(items, dict) else items
        return [
            str(p["value"])
            for item in items
            for p in item.get("extended_properties", [])
            if p.get("property_name") == KEY_PROPERTY
        ]

    found: Counter[str] = Counter()
    with ThreadPoolExecutor(8) as pool:
        for keys in pool.map(read, range(setup.people)):
            found.update(keys)
    return found


def wait_runs(setup: Setup, run_ids: list[str], timeout: float, label: str) -> float | None:
    """Until every run says done; the moment it did (perf_counter), None on timeout."""
    pending = set(run_ids)
    deadline = time.perf_counter() + timeout
    last_log = 0.0
    while pending and time.perf_counter() < deadline:
        for run_id in list(pending):
            state = setup.run_state(run_id)
            if state["state"] in ("done", "failed"):
                if state["state"] == "failed":
                    log(f"  run {run_id} failed: {state}")
                pending.discard(run_id)
            elif len(run_ids) == 1 and time.perf_counter() - last_log > 2:
                log(f"  {label}: {state.get('mappings_done')}/{state.get('mappings_total')} mappings")
                last_log = time.perf_counter()
        if pending:
            time.sleep(0.05 if len(pending) < 20 else 0.25)
    return None if pending else time.perf_counter()


# ---- the two parts -----------------------------------------------------------------------------------------------


def backfill(emu: Emulators, moto_url: str, moto_pid: int, args: argparse.Namespace) -> dict[str, Any]:
    per_person = math.ceil(args.bookings / args.mailboxes)
    setup = prepare(emu, moto_url, "benchbf", "backfill-bank", 10, args.mailboxes)
    log(f"backfill: {per_person * args.mailboxes} bookings for {args.mailboxes} advisers …")
    total = book_all(emu, setup, per_person)
    poller = reconcile_poller(setup, args.concurrency)
    http = http_local()
    try:
        before = counts(http, emu, moto_url, moto_pid)
        items_before = call(http, "GET", f"{emu.ews}/_emulator/stats")["items"]
        log(f"backfill: mapping {args.mailboxes} advisers …")
        t0 = time.perf_counter()

        def put(n: int) -> str:
            answer = setup.admin_call(
                "PUT",
                f"integrations/{setup.integration}/mappings/person/{setup.parent * 10_000 + n}",
                {"mailbox": setup.mailbox(n)},
            )
            run_id: str = answer["backfill"]["run_id"]
            return run_id

        # As an operator's script maps a team: several requests at once (the admin API takes them side by side).
        with ThreadPoolExecutor(PUTS_AT_ONCE) as pool:
            run_ids = list(pool.map(put, range(args.mailboxes)))
        mapped = time.perf_counter()
        in_outlook = None
        deadline = t0 + args.timeout
        last = 0
        while time.perf_counter() < deadline:
            items = call(http, "GET", f"{emu.ews}/_emulator/stats")["items"] - items_before
            if items >= total:
                in_outlook = time.perf_counter()
                break
            if items - last >= 1000:
                log(f"  {items}/{total} items in Outlook after {time.perf_counter() - t0:.1f} s")
                last = items
            time.sleep(0.02)
        done = wait_runs(setup, run_ids, max(1.0, deadline - time.perf_counter()), "backfill")
        time.sleep(0.5)
        after = counts(http, emu, moto_url, moto_pid)
    finally:
        poller.stop()
    found = stamps(emu, setup)
    delta = after - before
    return {
        "bookings": total,
        "mailboxes": args.mailboxes,
        "per_mailbox": per_person,
        "mapped_s": mapped - t0,
        "in_outlook_s": None if in_outlook is None else in_outlook - t0,
        "done_s": None if done is None else done - t0,
        "items_once": sum(1 for n in found.values() if n == 1),
        "duplicates": sum(n - 1 for n in found.values() if n > 1),
        "missing": total - len(found),
        "delta": delta,
        "minimum_creates": args.mailboxes * math.ceil(per_person / 100),
    }


def idle(emu: Emulators, moto_url: str, moto_pid: int, args: argparse.Namespace) -> dict[str, Any]:
    from calsync.adapters.dynamo import DynamoMappingStore
    from calsync.domain import Mapping, ResourceKind

    setup = prepare(emu, moto_url, "benchidle", "idle-bank", 20, args.idle_mappings)
    log(f"idle: {args.idle_mappings} advisers with {args.idle_bookings} bookings each …")
    total = book_all(emu, setup, args.idle_bookings)
    booked = time.monotonic()
    mappings = DynamoMappingStore(setup.env["MAPPINGS_TABLE"], region=REGION, endpoint_url=moto_url)
    for n in range(args.idle_mappings):
        mappings.put(
            Mapping(setup.integration, ResourceKind.PERSON, str(setup.parent * 10_000 + n), setup.mailbox(n))
        )
    poller = reconcile_poller(setup, args.concurrency)
    http = http_local()
    try:
        log("idle: the first reconcile (deep: no cursor yet) …")
        first = setup.admin_call("POST", f"integrations/{setup.integration}/reconcile", {"deep": False})
        t_first = time.perf_counter()
        if wait_runs(setup, [first["run_id"]], args.timeout * 4, "first reconcile") is None:
            raise SystemExit("the first reconcile did not finish")
        first_s = time.perf_counter() - t_first
        time.sleep(1.0)
        found = stamps(emu, setup)
        # Each run reads JRNI's changes from a minute before the previous run's start (its cursor): one more run,
        # started over a minute after the last booking was made, so the measured one reads nothing from the setup.
        time.sleep(max(0.0, booked + 61 - time.monotonic()))
        log("idle: one more reconcile, past the setup's minute …")
        settle = setup.admin_call("POST", f"integrations/{setup.integration}/reconcile", {"deep": False})
        if wait_runs(setup, [settle["run_id"]], args.timeout, "settling reconcile") is None:
            raise SystemExit("the settling reconcile did not finish")
        log("idle: the measured reconcile (nothing changed) …")
        before = counts(http, emu, moto_url, moto_pid)
        t0 = time.perf_counter()
        run = setup.admin_call("POST", f"integrations/{setup.integration}/reconcile", {"deep": False})
        done = wait_runs(setup, [run["run_id"]], args.timeout, "idle reconcile")
        time.sleep(0.5)
        after = counts(http, emu, moto_url, moto_pid)
        state = setup.run_state(run["run_id"])
    finally:
        poller.stop()
    return {
        "mappings": args.idle_mappings,
        "bookings": total,
        "first_s": first_s,
        "first_ok": len(found) == total and all(n == 1 for n in found.values()),
        "done_s": None if done is None else done - t0,
        "repaired": state.get("repaired", {}),
        "delta": after - before,
    }


# ---- the tables --------------------------------------------------------------------------------------------------


def fmt_s(value: float | None) -> str:
    return "timed out" if value is None else f"{value:.2f}"


def table(rows: list[tuple[str, str, str]]) -> None:
    print("| measure | value | goal |")
    print("|---|---|---|")
    for row in rows:
        print(f"| {row[0]} | {row[1]} | {row[2]} |")
    print()


def ops(counter: Counter[str], names: tuple[str, ...] | None = None) -> str:
    chosen = {k: v for k, v in counter.items() if v and (names is None or k in names)}
    return ", ".join(f"{k} {v}" for k, v in sorted(chosen.items(), key=lambda kv: -kv[1])) or "none"


def report(latency_ms: int, concurrency: int, bf: dict[str, Any] | None, idl: dict[str, Any] | None) -> bool:
    ok = True
    print(
        f"\nEmulated latency {latency_ms} ms per EWS / JRNI request; {concurrency} reconcile functions at once "
        f"(ExchangeConcurrency); nproc {os.cpu_count()}\n"
    )
    if bf is not None:
        d: Counts = bf["delta"]
        creates = d.ews["CreateItem"]
        ok &= bf["missing"] == 0 and bf["duplicates"] == 0
        print(f"### (1) backfill: {bf['bookings']} bookings over {bf['mailboxes']} newly mapped mailboxes\n")
        table(
            [
                (
                    "wall time, first PUT → every booking in Outlook (s)",
                    fmt_s(bf["in_outlook_s"]),
                    "≤ 5 (floor ≈ 0.5)",
                ),
                ("wall time, first PUT → every backfill run done (s)", fmt_s(bf["done_s"]), ""),
                (
                    f"of which the {bf['mailboxes']} PUTs, {PUTS_AT_ONCE} at a time (s)",
                    f"{bf['mapped_s']:.2f}",
                    "",
                ),
                (
                    "bookings in Outlook exactly once / missing / duplicated",
                    f"{bf['items_once']} / {bf['missing']} / {bf['duplicates']}",
                    f"{bf['bookings']} / 0 / 0",
                ),
                (
                    "CreateItem requests (minimum ⌈n/100⌉ per mailbox)",
                    f"{creates} ({creates / max(1, bf['minimum_creates']):.2f}x of {bf['minimum_creates']})",
                    "≤ 1.05x",
                ),
                ("EWS requests, all", f"{sum(d.ews.values())}: {ops(d.ews)}", ""),
                ("JRNI API requests", f"{sum(d.jrni.values())}: {ops(d.jrni)}", ""),
                ("AWS requests (moto)", f"{sum(d.aws.values())}: {ops(d.aws)}", ""),
                ("CPU seconds by process", ", ".join(f"{k} {v:.1f}" for k, v in d.cpu.items()), ""),
                (
                    "moto CPU seconds by operation",
                    ", ".join(f"{k} {v:.1f}" for k, v in d.aws_cpu.most_common(5)),
                    "",
                ),
            ]
        )
    if idl is not None:
        d = idl["delta"]
        ews_writes = sum(d.ews[k] for k in EWS_WRITES)
        jrni_writes = sum(v for k, v in d.jrni.items() if not k.startswith("GET "))
        ok &= idl["first_ok"] and ews_writes == 0 and jrni_writes == 0 and idl["done_s"] is not None
        print(
            f"### (2) idle reconcile of {idl['mappings']} mappings ({idl['bookings']} bookings, all in place)\n"
        )
        table(
            [
                ("wall time, POST …/reconcile → done (s)", fmt_s(idl["done_s"]), ""),
                ("EWS requests", f"{sum(d.ews.values())}: {ops(d.ews)}", f"≤ {idl['mappings']}"),
                (
                    "JRNI API requests",
                    f"{sum(d.jrni.values())}: {ops(d.jrni)}",
                    "≤ 1 per integration + paging",
                ),
                ("writes to Exchange / JRNI", f"{ews_writes} / {jrni_writes}", "0 / 0"),
                (
                    "DynamoDB writes (run progress, last_reconciled_at)",
                    f"{sum(d.aws[k] for k in DYNAMO_WRITES)}: {ops(d.aws, DYNAMO_WRITES)}",
                    "",
                ),
                ("AWS requests (moto), all", f"{sum(d.aws.values())}: {ops(d.aws)}", ""),
                ("repaired", json.dumps({k: v for k, v in idl["repaired"].items() if v}) or "{}", "{}"),
                ("CPU seconds by process", ", ".join(f"{k} {v:.1f}" for k, v in d.cpu.items()), ""),
                (
                    "moto CPU seconds by operation",
                    ", ".join(f"{k} {v:.1f}" for k, v in d.aws_cpu.most_common(5)),
                    "",
                ),
                ("(setup) the first, deep reconcile (s)", f"{idl['first_s']:.1f}", ""),
            ]
        )
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--bookings", type=int, default=10_000)
    parser.add_argument("--mailboxes", type=int, default=100)
    parser.add_argument("--idle-mappings", type=int, default=1_000)
    parser.add_argument("--idle-bookings", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=10, help="the template's ExchangeConcurrency")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds each measured part may take")
    parser.add_argument("--part", choices=("all", "backfill", "idle"), default="all")
    args = parser.parse_args(argv)

    from bench.harness import functions_environment
    from calsync.bootstrap import functions as wiring
    from local.moto_server import start_moto

    moto = start_moto()
    host, port = moto.get_host_and_port()
    moto_url = f"http://{host}:{port}"
    saved = dict(os.environ)
    os.environ.update(functions_environment(moto_url, REGION))
    try:
        assert moto.pid is not None
        with emulators(args.latency_ms) as emu:
            bf = backfill(emu, moto_url, moto.pid, args) if args.part in ("all", "backfill") else None
            idl = idle(emu, moto_url, moto.pid, args) if args.part in ("all", "idle") else None
        ok = report(args.latency_ms, args.concurrency, bf, idl)
    finally:
        wiring.reset()
        os.environ.clear()
        os.environ.update(saved)
        moto.stop()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
