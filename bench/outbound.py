"""Benchmark of the outbound path: JRNI booking → webhook → SQS → outbound function → item in the Exchange calendar.

Run: ``PYTHONPATH=.:shared .venv/bin/python bench/outbound.py`` (a minute or two; loopback only). For each emulator
latency (``--latency-ms 0 50``) it starts the local stack (``python -m local local``: moto, both emulators, the API
front and the SQS poller running the real handlers, seeded with the demo organisation) in its own process, makes
bookings through the JRNI emulator's control plane as a JRNI user would, and watches the mailboxes with one EWS
streaming subscription, so a booking's latency ends when its item is written to the last of its calendars. Then it
times the cold import of the ``jrni_webhook`` and ``outbound`` modules in fresh interpreters.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

import psutil
import requests
from lxml import etree

REPO = Path(__file__).resolve().parents[1]
SEED = json.loads((REPO / "local" / "demo-seed.json").read_text(encoding="utf-8"))
T_NS = "http://schemas.microsoft.com/exchange/services/2006/types"
M_NS = "http://schemas.microsoft.com/exchange/services/2006/messages"
SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
KEY_PROPERTY = "CalsyncJrniKey"  # the extended property calsync stamps with "<company>/<booking>"
ZONE = ZoneInfo("Europe/London")  # the demo branch's time zone
BRANCH = 37001
ALICE, BEN, ROOM = 1, 2, 11
MORTGAGE, SAVINGS = 21, 22  # Mortgage: 45 min + 15 min before + 10 min after; Savings review: 30 min
MAILBOX = {m["jrni_id"]: m["mailbox"] for m in SEED["mappings"]}
UNMAPPED = (
    "chloe@bank.example.test"  # Chloe has a mailbox but no mapping: the observer's calibration calendar
)
OBSERVER = "bench-observer@bank.example.test"
OBSERVER_PASSWORD = "pass-for-tests"


# ---- the local stack in its own process ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Stack:
    api: str
    ews: str
    jrni: str
    process: psutil.Process
    started_seconds: float
    log: Path


@contextlib.contextmanager
def stack_process(latency_ms: int, log_level: str) -> Iterator[Stack]:
    """``python -m local local`` on free loopback ports, its functions' logs in a temp file; stopped at the end."""
    log = Path(tempfile.gettempdir()) / f"calsync-bench-outbound-{latency_ms}ms.log"
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'shared'}"}
    t0 = time.perf_counter()
    with log.open("w", encoding="utf-8") as log_file:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "local",
                "local",
                "--api-port",
                "0",
                "--ews-port",
                "0",
                "--jrni-port",
                "0",
                "--latency-ms",
                str(latency_ms),
                "--log-level",
                log_level,
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=log_file,
            text=True,
        )
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if not line.startswith("calsync local ready "):
                raise RuntimeError(f"the local stack did not start ({line.strip()!r}); see {log}")
            urls = json.loads(line.removeprefix("calsync local ready "))
            yield Stack(
                urls["api"],
                urls["ews"],
                urls["jrni"],
                psutil.Process(proc.pid),
                time.perf_counter() - t0,
                log,
            )
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def call(http: requests.Session, method: str, url: str, body: Any = None) -> Any:
    response = http.request(method, url, json=body, timeout=60)
    if response.status_code >= 400:
        raise RuntimeError(f"{method} {url}: {response.status_code} {response.text[:300]}")
    return response.json() if response.content else None


# ---- watching the calendars: one EWS streaming subscription per mailbox, one connection ----------------------------


def envelope(body: str, impersonate: str) -> bytes:
    header = (
        '<t:RequestServerVersion Version="Exchange2016"/><t:ExchangeImpersonation><t:ConnectingSID>'
        f"<t:PrimarySmtpAddress>{impersonate}</t:PrimarySmtpAddress></t:ConnectingSID></t:ExchangeImpersonation>"
    )
    return (
        f'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{SOAP_NS}" xmlns:m="{M_NS}" xmlns:t="{T_NS}">'
        f"<s:Header>{header}</s:Header><s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


class Observer:
    """Notes the moment each item's CreatedEvent arrives, per mailbox, on one ``GetStreamingEvents`` connection.

    The emulator raises the event when the item is stored, i.e. when a client could first see it; the reader
    timestamps the envelope as it comes off the socket, before parsing it.
    """

    def __init__(self, ews: str, mailboxes: list[str]) -> None:
        self.ews_url = f"{ews}/EWS/Exchange.asmx"
        self.http = requests.Session()
        self.http.auth = (OBSERVER, OBSERVER_PASSWORD)
        call(
            self.http,
            "POST",
            f"{ews}/_emulator/accounts",
            {"address": OBSERVER, "password": OBSERVER_PASSWORD},
        )
        call(
            self.http,
            "POST",
            f"{ews}/_emulator/impersonation",
            {"service_account": OBSERVER, "mailboxes": mailboxes},
        )
        self.mailbox_of: dict[str, str] = {}  # subscription id → mailbox
        for mailbox in mailboxes:
            body = envelope(
                "<m:Subscribe><m:StreamingSubscriptionRequest><t:FolderIds>"
                f'<t:DistinguishedFolderId Id="calendar"><t:Mailbox><t:EmailAddress>{mailbox}</t:EmailAddress>'
                "</t:Mailbox></t:DistinguishedFolderId></t:FolderIds><t:EventTypes>"
                "<t:EventType>CreatedEvent</t:EventType></t:EventTypes></m:StreamingSubscriptionRequest></m:Subscribe>",
                mailbox,
            )
            answer = self.http.post(self.ews_url, data=body, headers=self._headers(mailbox), timeout=30)
            found = etree.fromstring(answer.content).find(f".//{{{M_NS}}}SubscriptionId")
            if answer.status_code != 200 or found is None or not found.text:
                raise RuntimeError(f"Subscribe {mailbox}: {answer.status_code} {answer.text[:300]}")
            self.mailbox_of[found.text] = mailbox
        self.arrivals: dict[tuple[str, str], float] = {}  # (mailbox, item id) → when its CreatedEvent arrived
        self.created: Counter[str] = Counter()
        self.errors: list[str] = []
        self.changed = threading.Condition()
        self.stopping = False
        self.anchor = mailboxes[0]
        threading.Thread(target=self._run, daemon=True).start()

    def _headers(self, anchor: str) -> dict[str, str]:
        return {"Content-Type": "text/xml; charset=utf-8", "X-AnchorMailbox": anchor}

    def _run(self) -> None:
        ids = "".join(f"<t:SubscriptionId>{s}</t:SubscriptionId>" for s in self.mailbox_of)
        body = envelope(
            f"<m:GetStreamingEvents><m:SubscriptionIds>{ids}</m:SubscriptionIds>"
            "<m:ConnectionTimeout>30</m:ConnectionTimeout></m:GetStreamingEvents>",
            self.anchor,
        )
        buffer, end_tag = b"", b"</Envelope>"
        try:
            # The headers come with the first envelope, so the request is made here, not by the caller.
            response = self.http.post(
                self.ews_url, data=body, headers=self._headers(self.anchor), stream=True, timeout=(10, 600)
            )
            for chunk in response.iter_content(chunk_size=None):
                now = time.perf_counter()
                buffer += chunk
                while (cut := buffer.find(end_tag)) >= 0:
                    document, buffer = buffer[: cut + len(end_tag)], buffer[cut + len(end_tag) :]
                    self._envelope(document[document.find(b"<") :], now)
        except Exception as exc:  # the stack going away ends the stream with anything
            if not self.stopping:
                self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            with self.changed:
                self.stopping = True
                self.changed.notify_all()

    def _envelope(self, document: bytes, now: float) -> None:
        root = etree.fromstring(document)
        for code in root.iter(f"{{{M_NS}}}ResponseCode"):
            if code.text != "NoError":
                self.errors.append(code.text or "")
        with self.changed:
            for notification in root.iter(f"{{{T_NS}}}Notification"):
                mailbox = self.mailbox_of.get(notification.findtext(f"{{{T_NS}}}SubscriptionId") or "", "?")
                for event in notification.iter(f"{{{T_NS}}}CreatedEvent"):
                    item = event.find(f"{{{T_NS}}}ItemId")
                    if item is not None and (mailbox, item.get("Id", "")) not in self.arrivals:
                        self.arrivals[(mailbox, item.get("Id", ""))] = now
                        self.created[mailbox] += 1
            self.changed.notify_all()

    def wait_for(self, counts: dict[str, int], timeout: float) -> bool:
        """Until each mailbox has had at least ``counts[mailbox]`` CreatedEvents; False after ``timeout``."""
        deadline = time.perf_counter() + timeout
        with self.changed:
            while not all(self.created[m] >= n for m, n in counts.items()):
                left = deadline - time.perf_counter()
                if left <= 0 or self.stopping:
                    return False
                self.changed.wait(left)
        return True


def calibrate(stack: Stack, observer: Observer, changes: int) -> list[float]:
    """The observer's own delay: items written through the control plane into the unmapped (unsynced) mailbox."""
    http = requests.Session()
    latencies = []
    first = datetime(2031, 1, 6, 9, tzinfo=ZONE)
    for n in range(changes):
        start = first + timedelta(days=n)
        sent = time.perf_counter()
        item = call(
            http,
            "POST",
            f"{stack.ews}/_emulator/mailboxes/{UNMAPPED}/items",
            {
                "subject": f"calibration {n}",
                "start": start.isoformat(),
                "end": (start + timedelta(minutes=30)).isoformat(),
            },
        )
        if not observer.wait_for({UNMAPPED: n + 1}, timeout=30):
            raise RuntimeError(
                f"the stream never showed a control-plane change; stream errors: {observer.errors[:3]}"
            )
        latencies.append(observer.arrivals[(UNMAPPED, item["id"])] - sent)
    return sorted(latencies[1:])  # the first one also waits for the stream's headers


# ---- the bookings --------------------------------------------------------------------------------------------------


@dataclass
class Planned:
    """One booking a JRNI user makes, and the calendars it must reach."""

    body: dict[str, Any]
    mailboxes: tuple[str, ...]
    sent: float = 0.0  # perf_counter
    sent_wall: float = 0.0  # time.time(), to compare with the functions' log timestamps
    booking_id: int = 0


def weekdays(first: date) -> Iterator[date]:
    day = first
    while True:
        if day.weekday() < 5:
            yield day
        day += timedelta(days=1)


def plan(count: int, first_day: date) -> tuple[list[Planned], list[Planned]]:
    """Two JRNI users' bookings, alternating: A books Mortgage appointments for Alice in Meeting Room 1 (two
    calendars), B books Savings reviews for Ben (one calendar). Four 2-hour slots a weekday, so nothing clashes even
    with the Mortgage buffers; each user's calendars are its own, so a CreatedEvent there is that user's booking."""
    a: list[Planned] = []
    b: list[Planned] = []
    days = weekdays(first_day)
    day = next(days)
    for n in range(count):
        slot = (n // 2) % 4
        if n and n % 8 == 0:
            day = next(days)
        start = datetime(day.year, day.month, day.day, 9 + 2 * slot, tzinfo=ZONE).isoformat()
        client = {
            "first_name": "Bench",
            "last_name": f"Client {n}",
            "email": f"client{n}@customer.example.test",
        }
        if n % 2 == 0:
            a.append(
                Planned(
                    {
                        "company_id": BRANCH,
                        "service_id": MORTGAGE,
                        "person_id": ALICE,
                        "resource_id": ROOM,
                        "datetime": start,
                        "client": client,
                    },
                    (MAILBOX["1"], MAILBOX["11"]),
                )
            )
        else:
            b.append(
                Planned(
                    {
                        "company_id": BRANCH,
                        "service_id": SAVINGS,
                        "person_id": BEN,
                        "datetime": start,
                        "client": client,
                    },
                    (MAILBOX["2"],),
                )
            )
    return a, b


def book(http: requests.Session, jrni: str, booking: Planned) -> None:
    booking.sent_wall, booking.sent = time.time(), time.perf_counter()
    booking.booking_id = int(call(http, "POST", f"{jrni}/_emulator/bookings", booking.body)["id"])


def steady(
    stack: Stack, observer: Observer, users: tuple[list[Planned], list[Planned]], timeout: float
) -> None:
    """Each user makes a booking, waits until all its calendars show it, then makes the next (closed loop)."""
    failures: list[str] = []

    def user(bookings: list[Planned]) -> None:
        http = requests.Session()
        wanted: Counter[str] = Counter({m: observer.created[m] for m in bookings[0].mailboxes})
        for booking in bookings:
            book(http, stack.jrni, booking)
            wanted.update(booking.mailboxes)
            if not observer.wait_for(dict(wanted), timeout):
                failures.append(
                    f"booking {booking.booking_id} not in {booking.mailboxes} after {timeout:g} s"
                )
                return

    threads = [threading.Thread(target=user, args=(u,)) for u in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError("; ".join(failures))


def burst(stack: Stack, observer: Observer, bookings: list[Planned], timeout: float, threads: int) -> None:
    """All bookings as fast as JRNI takes them from ``threads`` users; then wait until every calendar shows them."""
    pending = iter(bookings)
    lock = threading.Lock()
    expected = Counter(observer.created)
    for booking in bookings:
        expected.update(booking.mailboxes)

    def user() -> None:
        http = requests.Session()
        while True:
            with lock:
                booking = next(pending, None)
            if booking is None:
                return
            book(http, stack.jrni, booking)

    workers = [threading.Thread(target=user) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    observer.wait_for(dict(expected), timeout)  # what did not arrive shows as missing in the results


# ---- results -------------------------------------------------------------------------------------------------------


@dataclass
class Result:
    latency_ms: int
    mode: str
    bookings: int
    arrived: int = 0
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    items_expected: int = 0
    items_found: int = 0
    duplicates: int = 0
    operations: Counter[str] = field(default_factory=Counter)
    # AWS (moto) requests and their CPU seconds in moto, by operation.
    aws_requests: Counter[str] = field(default_factory=Counter)
    aws_cpu: Counter[str] = field(default_factory=Counter)
    jrni_api: int = 0
    webhooks: int = 0
    cpu_seconds: float = 0.0
    # CPU seconds by part (the stack's GET /_local/cpu and the streaming task's process), see cpu_parts().
    cpu_parts: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    # (JRNI key, change sent, last calendar item arrived), wall clock: split by the webhook function's log later.
    timeline: list[tuple[str, float, float]] = field(default_factory=list)
    to_queue: list[float] = field(default_factory=list)  # change → the webhook function queued it
    from_queue: list[float] = field(default_factory=list)  # queued → in the last calendar


def ews_stats(http: requests.Session, stack: Stack) -> Counter[str]:
    return Counter(call(http, "GET", f"{stack.ews}/_emulator/stats")["operations"])


def jrni_stats(http: requests.Session, stack: Stack) -> tuple[int, int]:
    """(admin API requests so far, webhooks delivered so far)."""
    stats = call(http, "GET", f"{stack.jrni}/_emulator/stats")
    api = sum(n for endpoint, n in stats["requests"].items() if " /api/" in endpoint)
    return api, int(stats["webhooks"]["delivered"])


def cpu_snapshot(http: requests.Session, stack: Stack) -> dict[str, float]:
    """CPU seconds so far by part: the stack process and, within it, each function's handlers and each emulator's
    loop (its ``GET /_local/cpu``); moto's and the streaming task's own processes."""
    answer = call(http, "GET", f"{stack.api}/_local/cpu")
    parts = {"process": float(answer["process"])}
    parts.update({f"function:{name}": float(v) for name, v in answer["functions"].items()})
    parts.update({f"thread:{name}": float(v) for name, v in answer["threads"].items() if v is not None})
    parts["streaming"] = parts["moto"] = 0.0
    for child in stack.process.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            part = "moto" if "local.moto_server" in " ".join(child.cmdline()) else "streaming"
            parts[part] += sum(child.cpu_times()[:2])
    return parts


def aws_stats(http: requests.Session, stack: Stack) -> tuple[Counter[str], Counter[str]]:
    """moto's requests so far and its CPU seconds handling them, by operation (its ``GET /_local/stats``)."""
    answer = call(http, "GET", call(http, "GET", f"{stack.api}/_local/cpu")["moto"])
    short = {op: op.split(".")[-1] for op in answer}
    return (
        Counter({short[op]: int(v["requests"]) for op, v in answer.items()}),
        Counter({short[op]: float(v["cpu_seconds"]) for op, v in answer.items()}),
    )


def settle(http: requests.Session, stack: Stack, quiet: float = 1.0, limit: float = 30.0) -> None:
    """Until the EWS emulator has had no request for ``quiet`` seconds (a sync may write after its create)."""
    last, since, deadline = ews_stats(http, stack), time.perf_counter(), time.perf_counter() + limit
    while time.perf_counter() - since < quiet and time.perf_counter() < deadline:
        time.sleep(0.2)
        now = ews_stats(http, stack)
        if now != last:
            last, since = now, time.perf_counter()


def run(
    stack: Stack,
    observer: Observer,
    latency_ms: int,
    mode: str,
    bookings: list[Planned],
    go: Callable[[], None],
) -> Result:
    """Make ``bookings`` with ``go``, then match every item in the calendars to its booking by calsync's stamp."""
    http = requests.Session()
    result = Result(latency_ms, mode, len(bookings), items_expected=sum(len(b.mailboxes) for b in bookings))
    ops_before, (api_before, hooks_before) = ews_stats(http, stack), jrni_stats(http, stack)
    parts_before = cpu_snapshot(http, stack)
    aws_before = aws_stats(http, stack)
    started = time.perf_counter()
    try:
        go()
    except RuntimeError as exc:
        result.problems.append(str(exc))
    settle(http, stack)
    result.operations = ews_stats(http, stack) - ops_before
    api_after, hooks_after = jrni_stats(http, stack)
    result.jrni_api, result.webhooks = api_after - api_before, hooks_after - hooks_before
    parts_after = cpu_snapshot(http, stack)
    aws_after = aws_stats(http, stack)
    result.aws_requests, result.aws_cpu = aws_after[0] - aws_before[0], aws_after[1] - aws_before[1]
    result.cpu_parts = {k: v - parts_before.get(k, 0.0) for k, v in parts_after.items()}
    result.cpu_seconds = sum(result.cpu_parts.get(k, 0.0) for k in ("process", "moto", "streaming"))
    # Which item is which booking: calsync's extended property on the item, read after the run.
    items: dict[tuple[str, str], list[str]] = {}
    for mailbox in sorted({m for b in bookings for m in b.mailboxes}):
        for item in call(http, "GET", f"{stack.ews}/_emulator/mailboxes/{mailbox}/items"):
            key = next(
                (
                    p["value"]
                    for p in item.get("extended_properties", [])
                    if p.get("property_name") == KEY_PROPERTY
                ),
                None,
            )
            if key is not None:
                items.setdefault((mailbox, str(key)), []).append(item["id"])
    last_arrival = started
    for booking in bookings:
        times = []
        for mailbox in booking.mailboxes:
            found = items.get((mailbox, f"{BRANCH}/{booking.booking_id}"), [])
            result.items_found += min(1, len(found))
            result.duplicates += max(0, len(found) - 1)
            times += [observer.arrivals[(mailbox, i)] for i in found if (mailbox, i) in observer.arrivals]
        if booking.booking_id and len(times) >= len(booking.mailboxes):
            result.arrived += 1
            result.latencies.append(max(times) - booking.sent)
            wall = booking.sent_wall + (max(times) - booking.sent)
            result.timeline.append((f"{BRANCH}/{booking.booking_id}", booking.sent_wall, wall))
            last_arrival = max(last_arrival, *times)
    result.seconds = last_arrival - started
    result.latencies.sort()
    return result


def measure_latency(
    latency_ms: int,
    count: int,
    first_day: date,
    timeout: float,
    burst_threads: int,
    log_level: str,
    calibration: int,
    err: TextIO,
) -> tuple[list[Result], Stack, list[float]]:
    with stack_process(latency_ms, log_level) as stack:
        err.write(f"... stack with --latency-ms {latency_ms} up in {stack.started_seconds:.1f} s\n")
        observer = Observer(stack.ews, [MAILBOX["1"], MAILBOX["2"], MAILBOX["11"], UNMAPPED])
        calibration_latencies = calibrate(stack, observer, calibration + 1)
        results = []
        a, b = plan(count, first_day)
        t0 = time.perf_counter()
        results.append(
            run(
                stack,
                observer,
                latency_ms,
                "steady: 2 users, each waits for its calendar",
                a + b,
                lambda: steady(stack, observer, (a, b), timeout),
            )
        )
        err.write(f"... {latency_ms} ms steady: {time.perf_counter() - t0:.1f} s\n")
        a, b = plan(count, first_day + timedelta(days=60))
        everything = [x for pair in zip(a, b, strict=True) for x in pair]
        t0 = time.perf_counter()
        results.append(
            run(
                stack,
                observer,
                latency_ms,
                f"burst: all at once from {burst_threads} users",
                everything,
                lambda: burst(stack, observer, everything, timeout * 4, burst_threads),
            )
        )
        err.write(f"... {latency_ms} ms burst: {time.perf_counter() - t0:.1f} s\n")
        observer.stopping = True
        for problem in observer.errors:
            results[-1].problems.append(f"stream: {problem}")
    split_by_log(results, stack.log)  # after the stack stopped, so its log is complete
    return results, stack, calibration_latencies


def split_by_log(results: list[Result], log: Path) -> None:
    """Where the time goes: the webhook function logs "webhook queued" (with the JRNI keys) once the message is on
    the outbound queue; its timestamp (ms) splits each latency into JRNI's delivery + the webhook function, and the
    queue + the outbound function."""
    queued: dict[str, float] = {}
    for line in log.read_text(encoding="utf-8").splitlines():
        if '"webhook queued"' not in line:
            continue
        entry = json.loads(line)
        at = datetime.strptime(entry["timestamp"], "%Y-%m-%d %H:%M:%S,%f%z").timestamp()
        for key in entry.get("bookings", []):
            queued.setdefault(key, at)  # the first delivery; a retried one is queued again, harmlessly
    for result in results:
        for key, sent, done in result.timeline:
            if key in queued:
                result.to_queue.append(queued[key] - sent)
                result.from_queue.append(done - queued[key])
        result.to_queue.sort()
        result.from_queue.sort()


# ---- import time ---------------------------------------------------------------------------------------------------

IMPORT_PROBE = """
import json, sys, time
sys.path[:0] = [sys.argv[1], sys.argv[2]]
t0 = time.perf_counter()
import app
seconds = time.perf_counter() - t0
watched = ("exchangelib", "boto3", "botocore", "pynamodb", "requests", "liquid", "aws_lambda_powertools")
print(json.dumps({"seconds": seconds, "loaded": [m for m in watched if m in sys.modules]}))
"""
EXCHANGELIB_PROBE = """
import json, time
t0 = time.perf_counter()
import exchangelib
print(json.dumps({"seconds": time.perf_counter() - t0, "loaded": ["exchangelib"]}))
"""


@dataclass
class ImportTime:
    what: str
    seconds: list[float]
    loaded: list[str]
    top: list[tuple[str, float]]


def import_time(what: str, probe: str, args: list[str], runs: int) -> ImportTime:
    """Median of ``runs`` fresh interpreters (after one unmeasured run that writes the .pyc files), and the largest
    direct imports from one ``-X importtime`` run."""
    # As in Lambda: the function's folder and the layer on the path, nothing of the benchmark's own imports.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(
        {
            "AWS_REGION": "eu-west-2",
            "AWS_DEFAULT_REGION": "eu-west-2",
            "POWERTOOLS_SERVICE_NAME": "calsync",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_DISABLED": "true",
        }
    )
    command = [sys.executable, "-c", probe, *args]
    seconds, loaded = [], []
    for n in range(runs + 1):
        out = subprocess.run(
            command, cwd=tempfile.gettempdir(), env=env, capture_output=True, text=True, check=True
        )
        answer = json.loads(out.stdout.strip().splitlines()[-1])
        if n:
            seconds.append(answer["seconds"])
        loaded = answer["loaded"]
    traced = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", probe, *args],
        cwd=tempfile.gettempdir(),
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    top: list[tuple[str, float]] = []
    children: list[tuple[str, float]] = []
    measured = "app" if "import app" in probe else "exchangelib"
    for line in traced.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.removeprefix("import time:").split("|")
        if not cumulative.strip().isdigit():
            continue
        # A module's imports are listed before it, indented two more: collect depth 1 until the depth-0 module.
        depth = (len(name) - len(name.lstrip()) - 1) // 2
        if depth == 1:
            children.append((name.strip(), int(cumulative) / 1e6))
        elif depth == 0:
            if name.strip() == measured:
                top = children
            children = []
    top.sort(key=lambda t: -t[1])
    return ImportTime(what, seconds, loaded, top[:6])


def import_times(runs: int) -> list[ImportTime]:
    shared = str(REPO / "shared")
    return [
        import_time(
            "functions/jrni_webhook/app.py",
            IMPORT_PROBE,
            [str(REPO / "functions" / "jrni_webhook"), shared],
            runs,
        ),
        import_time(
            "functions/outbound/app.py", IMPORT_PROBE, [str(REPO / "functions" / "outbound"), shared], runs
        ),
        import_time("exchangelib alone (for scale)", EXCHANGELIB_PROBE, [], runs),
    ]


# ---- the report ----------------------------------------------------------------------------------------------------


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=True)]
    out = [
        "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)),
        "  ".join("-" * w for w in widths),
    ]
    out += [
        "  ".join(
            str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]
    return "\n".join(out)


def pct(values: list[float], p: float) -> str:
    """The nearest-rank percentile, in ms."""
    if not values:
        return "-"
    return f"{values[min(len(values) - 1, max(0, math.ceil(p * len(values)) - 1))] * 1000:.0f}"


def report(
    results: list[Result],
    calibrations: dict[int, list[float]],
    imports: list[ImportTime],
    stacks: dict[int, Stack],
    total: float,
) -> str:
    lines = [
        f"Outbound benchmark — {datetime.now():%Y-%m-%d %H:%M}, Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs; the local stack in its own process (moto, both emulators, real handlers)",
        "",
    ]
    lines.append(
        "(1) Webhook-to-calendar latency: from just before the JRNI change (control-plane POST bookings) "
        "to the item's CreatedEvent\n    on an EWS streaming subscription, in the LAST of the booking's "
        "calendars. Throughput = bookings / (first change → last item)."
    )
    lines.append(
        table(
            [
                "emulators",
                "mode",
                "bookings",
                "arrived",
                "p50 ms",
                "p95 ms",
                "max ms",
                "mean ms",
                "bookings/s",
                "change→queued p50/p95",
                "queued→calendar p50/p95",
            ],
            [
                [
                    f"{r.latency_ms} ms",
                    r.mode,
                    str(r.bookings),
                    str(r.arrived),
                    pct(r.latencies, 0.5),
                    pct(r.latencies, 0.95),
                    pct(r.latencies, 1.0),
                    f"{statistics.mean(r.latencies) * 1000:.0f}" if r.latencies else "-",
                    f"{r.arrived / r.seconds:.1f}" if r.seconds else "-",
                    f"{pct(r.to_queue, 0.5)} / {pct(r.to_queue, 0.95)}",
                    f"{pct(r.from_queue, 0.5)} / {pct(r.from_queue, 0.95)}",
                ]
                for r in results
            ],
        )
    )
    lines.append(
        '    change→queued = JRNI\'s webhook delivery + the jrni_webhook function up to its "webhook queued" '
        "log line (ms timestamps);\n    queued→calendar = SQS, the poller and the outbound function"
    )
    cal = ", ".join(
        f"{ms} ms: p50 {pct(c, 0.5)} ms / max {pct(c, 1.0)} ms over {len(c)}"
        for ms, c in calibrations.items()
    )
    lines.append(f"    observer's own delay (control-plane item → its CreatedEvent on the stream): {cal}")
    lines.append("")
    lines.append(
        "(2) EWS requests per created booking (EWS emulator's /_emulator/stats, after minus before; the "
        "observer's stream was opened before).\n    Each booking belongs in 1 calendar (Savings review, "
        "Ben) or 2 (Mortgage, Alice + Meeting Room 1): half and half, 1.5 on average,\n    so the minimum "
        "is 1 CreateItem per calendar item = 1.5 per booking."
    )
    rows = []
    for r in results:
        total_ews = sum(r.operations.values())
        ops = ", ".join(f"{k} {v}" for k, v in r.operations.most_common())
        rows.append(
            [
                f"{r.latency_ms} ms",
                r.mode.split(":")[0],
                str(r.items_expected),
                str(r.items_found),
                str(r.duplicates),
                f"{r.operations['CreateItem'] / r.bookings:.2f}",
                f"{total_ews / r.bookings:.2f}",
                f"{total_ews / max(1, r.items_found):.2f}",
                f"{r.jrni_api / r.bookings:.2f}",
                str(r.webhooks),
                f"{r.cpu_seconds * 1000 / r.bookings:.0f}",
                ops,
            ]
        )
    lines.append(
        table(
            [
                "emulators",
                "mode",
                "items due",
                "items found",
                "dupl.",
                "CreateItem/bk",
                "EWS req/bk",
                "EWS req/item",
                "JRNI API/bk",
                "webhooks",
                "stack CPU ms/bk",
                "EWS operations",
            ],
            rows,
        )
    )
    lines.append(
        "    stack CPU = user+system time of the stack's processes (the stack: both emulators, front, "
        "pollers, handlers; moto; the streaming task) per booking"
    )
    lines.append("")
    lines.append(
        "(2b) CPU per booking by part, ms (user+system; the same window as (2)). functions = CPU time of "
        "the handler invocations on their own\n    threads (time.thread_time, what a Lambda would spend: "
        "the handlers, boto3 and exchangelib on the client side);\n    emulators / front = their event-loop "
        "threads; pollers + rest = the stack process less those; moto, streaming task = their own processes."
    )
    part_rows = []
    for r in results:
        p = r.cpu_parts
        functions = {k.split(":", 1)[1]: v for k, v in p.items() if k.startswith("function:")}
        threads = {k.split(":", 1)[1]: v for k, v in p.items() if k.startswith("thread:")}
        rest = p.get("process", 0.0) - sum(functions.values()) - sum(threads.values())

        def ms(value: float, r: Result = r) -> str:
            return f"{value * 1000 / r.bookings:.1f}"

        part_rows.append(
            [
                f"{r.latency_ms} ms",
                r.mode.split(":")[0],
                ms(p.get("process", 0.0)),
                ms(sum(functions.values())),
                " / ".join(ms(functions.get(f, 0.0)) for f in ("jrni_webhook", "outbound", "inbound")),
                ms(threads.get("ews_emulator", 0.0)),
                ms(threads.get("jrni_emulator", 0.0)),
                ms(threads.get("api_front", 0.0)),
                ms(rest),
                ms(p.get("moto", 0.0)),
                ms(p.get("streaming", 0.0)),
                ms(p.get("process", 0.0) + p.get("moto", 0.0) + p.get("streaming", 0.0)),
            ]
        )
    lines.append(
        table(
            [
                "emulators",
                "mode",
                "stack process",
                "functions",
                "webhook / outbound / inbound",
                "EWS emulator",
                "JRNI emulator",
                "API front",
                "pollers + rest",
                "moto",
                "streaming task",
                "all processes",
            ],
            part_rows,
        )
    )
    lines.append("")
    lines.append(
        "(2c) AWS requests per booking (moto's own count, by operation, the same window as (2)), and moto's "
        "CPU per booking handling them (ms)."
    )
    aws_rows = []
    for r in results:
        top = ", ".join(
            f"{op} {n / r.bookings:.2f} ({r.aws_cpu[op] * 1000 / r.bookings:.1f})"
            for op, n in r.aws_requests.most_common(8)
        )
        aws_rows.append(
            [
                f"{r.latency_ms} ms",
                r.mode.split(":")[0],
                f"{sum(r.aws_requests.values()) / r.bookings:.2f}",
                f"{sum(r.aws_cpu.values()) * 1000 / r.bookings:.1f}",
                top,
            ]
        )
    lines.append(
        table(
            [
                "emulators",
                "mode",
                "AWS req/bk",
                "moto CPU ms/bk",
                "requests per booking by operation (moto CPU ms per booking)",
            ],
            aws_rows,
        )
    )
    lines.append("")
    lines.append(
        "(3) Cold import time of the Lambda modules (fresh interpreter each run; function folder + shared/ "
        f"on the path; median of {len(imports[0].seconds)} runs, .pyc files present)"
    )
    lines.append(
        table(
            [
                "module",
                "median ms",
                "min ms",
                "max ms",
                "exchangelib imported?",
                "also loaded",
                "largest direct imports (one -X importtime run)",
            ],
            [
                [
                    i.what,
                    f"{statistics.median(i.seconds) * 1000:.0f}",
                    f"{min(i.seconds) * 1000:.0f}",
                    f"{max(i.seconds) * 1000:.0f}",
                    "yes" if "exchangelib" in i.loaded else "no",
                    ", ".join(m for m in i.loaded if m != "exchangelib") or "-",
                    ", ".join(f"{n} {s * 1000:.0f}" for n, s in i.top[:4]),
                ]
                for i in imports
            ],
        )
    )
    problems = [f"{r.latency_ms} ms {r.mode.split(':')[0]}: {p}" for r in results for p in r.problems]
    if problems:
        lines.append("\nProblems:\n" + "\n".join(f"  - {p}" for p in problems))
    logs = ", ".join(str(s.log) for s in stacks.values())
    lines.append(
        "\nStack start-up: "
        + ", ".join(f"{ms} ms {s.started_seconds:.1f} s" for ms, s in stacks.items())
        + f"; function logs: {logs}; total time {total:.0f} s"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Measure; print the tables; 0 when every booking arrived exactly once in each of its calendars."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bookings", type=int, default=200, help="bookings per run (default 200)")
    parser.add_argument(
        "--latency-ms", type=int, nargs="+", default=[0, 50], help="emulator latencies (default 0 50)"
    )
    parser.add_argument(
        "--burst-users", type=int, default=4, help="threads making the burst's bookings (default 4)"
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds a booking may take to arrive")
    parser.add_argument("--import-runs", type=int, default=7, help="fresh interpreters per import-time row")
    parser.add_argument(
        "--calibration", type=int, default=20, help="control-plane changes timing the observer"
    )
    parser.add_argument(
        "--log-level", default="INFO", help="the functions' log level (the template's default)"
    )
    args = parser.parse_args(argv)
    if args.bookings % 2:
        parser.error("--bookings must be even (two users, alternating)")
    began = time.perf_counter()
    # A weekday a week or so ahead, so every booking is in the future whenever the benchmark runs.
    first_day = datetime.now(ZONE).date() + timedelta(days=7)
    results: list[Result] = []
    calibrations: dict[int, list[float]] = {}
    stacks: dict[int, Stack] = {}
    for latency in args.latency_ms:
        rows, stacks[latency], calibrations[latency] = measure_latency(
            latency,
            args.bookings,
            first_day,
            args.timeout,
            args.burst_users,
            args.log_level,
            args.calibration,
            sys.stderr,
        )
        results += rows
    sys.stderr.write("... import times\n")
    imports = import_times(args.import_runs)
    print(report(results, calibrations, imports, stacks, time.perf_counter() - began))
    ok = all(r.arrived == r.bookings and r.duplicates == 0 and not r.problems for r in results)
    ok = ok and not any("exchangelib" in i.loaded for i in imports[:1])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
