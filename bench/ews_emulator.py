"""Benchmark of the EWS emulator on this machine: request rate, memory with 1,000 mailboxes, streaming fan-out.

Run: ``PYTHONPATH=. .venv/bin/python bench/ews_emulator.py`` (about a minute; loopback only). The emulator runs in
its own process (``python -m emulators.ews --latency-ms 0``) so the load generator never shares its interpreter;
the request-rate clients are separate processes too, sending prebuilt SOAP bodies with raw ``requests``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import requests
from lxml import etree

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "bench-pass"
SERVICE = "svc@bench.example"
SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
M_NS = "http://schemas.microsoft.com/exchange/services/2006/messages"
T_NS = "http://schemas.microsoft.com/exchange/services/2006/types"
DAY = datetime(2030, 3, 4, tzinfo=UTC)  # a fixed Monday, so every run books the same calendar


# ---- SOAP bodies (built once; the clients only send bytes) ---------------------------------------------------------


def envelope(body: str, impersonate: str | None = None) -> bytes:
    """A SOAP envelope as exchangelib shapes it, optionally impersonating ``impersonate``."""
    header = '<t:RequestServerVersion Version="Exchange2016"/>'
    if impersonate:
        header += (
            "<t:ExchangeImpersonation><t:ConnectingSID>"
            f"<t:PrimarySmtpAddress>{impersonate}</t:PrimarySmtpAddress>"
            "</t:ConnectingSID></t:ExchangeImpersonation>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<s:Envelope xmlns:s="{SOAP_NS}" xmlns:m="{M_NS}" xmlns:t="{T_NS}">'
        f"<s:Header>{header}</s:Header><s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


def zulu(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def get_item_body(item_id: str) -> bytes:
    return envelope(
        "<m:GetItem><m:ItemShape><t:BaseShape>AllProperties</t:BaseShape></m:ItemShape>"
        f'<m:ItemIds><t:ItemId Id="{item_id}"/></m:ItemIds></m:GetItem>'
    )


def find_day_body(day: datetime) -> bytes:
    return envelope(
        '<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties>'
        '<t:FieldURI FieldURI="item:Subject"/><t:FieldURI FieldURI="calendar:Start"/>'
        '<t:FieldURI FieldURI="calendar:End"/></t:AdditionalProperties></m:ItemShape>'
        f'<m:CalendarView StartDate="{zulu(day)}" EndDate="{zulu(day + timedelta(days=1))}"/>'
        '<m:ParentFolderIds><t:DistinguishedFolderId Id="calendar"/></m:ParentFolderIds></m:FindItem>'
    )


def create_items_body(count: int, first: datetime, label: str) -> bytes:
    """One CreateItem with ``count`` calendar items, five a day from ``first`` (09:00, 10:00, ... UTC)."""
    items = []
    for n in range(count):
        start = first + timedelta(days=n // 5, hours=9 + n % 5)
        items.append(
            f"<t:CalendarItem><t:Subject>{label} #{n}</t:Subject>"
            f"<t:Start>{zulu(start)}</t:Start><t:End>{zulu(start + timedelta(minutes=45))}</t:End></t:CalendarItem>"
        )
    return envelope(
        '<m:CreateItem SendMeetingInvitations="SendToNone"><m:SavedItemFolderId>'
        '<t:DistinguishedFolderId Id="calendar"/></m:SavedItemFolderId>'
        f"<m:Items>{''.join(items)}</m:Items></m:CreateItem>"
    )


def subscribe_body(address: str) -> bytes:
    return envelope(
        "<m:Subscribe><m:StreamingSubscriptionRequest><t:FolderIds>"
        f'<t:DistinguishedFolderId Id="calendar"><t:Mailbox><t:EmailAddress>{address}</t:EmailAddress></t:Mailbox>'
        "</t:DistinguishedFolderId></t:FolderIds><t:EventTypes>"
        "<t:EventType>CreatedEvent</t:EventType><t:EventType>ModifiedEvent</t:EventType>"
        "<t:EventType>DeletedEvent</t:EventType></t:EventTypes>"
        "</m:StreamingSubscriptionRequest></m:Subscribe>",
        impersonate=address,
    )


def streaming_body(subscription_ids: list[str], anchor: str) -> bytes:
    ids = "".join(f"<t:SubscriptionId>{s}</t:SubscriptionId>" for s in subscription_ids)
    return envelope(
        f"<m:GetStreamingEvents><m:SubscriptionIds>{ids}</m:SubscriptionIds>"
        "<m:ConnectionTimeout>1</m:ConnectionTimeout></m:GetStreamingEvents>",
        impersonate=anchor,
    )


def basic(user: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{PASSWORD}".encode()).decode()


def headers_for(user: str, anchor: str | None = None) -> dict[str, str]:
    headers = {"Content-Type": "text/xml; charset=utf-8", "Authorization": basic(user)}
    if anchor:
        headers["X-AnchorMailbox"] = anchor
    return headers


# ---- the emulator in its own process -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def emulator_process() -> Iterator[tuple[str, psutil.Process]]:
    """``python -m emulators.ews`` on a free loopback port; yields (base URL, its process)."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "emulators.ews",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--latency-ms",
            "0",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        if "listening" not in banner:
            raise RuntimeError(f"the emulator did not start: {banner}{proc.stdout.read()}")
        # Keep draining its output so a chatty emulator never blocks on a full pipe.
        threading.Thread(target=lambda: [None for _ in proc.stdout or []], daemon=True).start()
        yield f"http://127.0.0.1:{port}", psutil.Process(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


class Control:
    """A small client for the control plane."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = requests.Session()

    def call(self, method: str, path: str, json: Any = None) -> Any:
        response = self.http.request(method, f"{self.base}/_emulator/{path}", json=json, timeout=60)
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text}")
        return response.json() if response.content else None


# ---- (a) request rate ----------------------------------------------------------------------------------------------


@dataclass
class Row:
    scenario: str
    clients: int
    requests: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    note: str = ""

    def cells(self) -> list[str]:
        if self.note:
            return [self.scenario, str(self.clients), "", "", "", "", self.note]
        rate = self.requests / self.seconds if self.seconds else 0.0
        lat = sorted(self.latencies)
        p50 = lat[len(lat) // 2] * 1000 if lat else 0.0
        p95 = lat[int(len(lat) * 0.95)] * 1000 if lat else 0.0
        return [
            self.scenario,
            str(self.clients),
            str(self.requests),
            f"{rate:,.0f}",
            f"{p50:.2f}",
            f"{p95:.2f}",
            str(self.errors),
        ]


def hammer(job: tuple[str, dict[str, str], bytes, float, float]) -> tuple[int, list[float], int]:
    """One client process: send ``body`` back to back from ``begin`` until ``until`` (wall clock)."""
    url, headers, body, begin, until = job
    session = requests.Session()
    latencies: list[float] = []
    errors = 0
    while time.time() < begin:
        time.sleep(0.001)
    while time.time() < until:
        t0 = time.perf_counter()
        response = session.post(url, data=body, headers=headers, timeout=30)
        latencies.append(time.perf_counter() - t0)
        if response.status_code != 200 or b'ResponseClass="Success"' not in response.content:
            errors += 1
    return len(latencies), latencies, errors


def measure(
    pool: Any, scenario: str, clients: int, url: str, headers: dict[str, str], body: bytes, seconds: float
) -> Row:
    """Run ``clients`` client processes for ``seconds`` and merge their counts."""
    begin = time.time() + 0.3  # every process starts together
    jobs = [(url, headers, body, begin, begin + seconds)] * clients
    row = Row(scenario, clients, seconds=seconds)
    for count, latencies, errors in pool.map(hammer, jobs):
        row.requests += count
        row.latencies.extend(latencies)
        row.errors += errors
    return row


def exchangelib_row(ews_url: str, owner: str, seconds: float) -> Row:
    """The same day view through exchangelib (calendar.view → FindItem), one client."""
    from exchangelib import BASIC, DELEGATE, Account, Build, Configuration, Credentials, EWSTimeZone, Version

    config = Configuration(
        service_endpoint=ews_url,
        credentials=Credentials(owner, PASSWORD),
        auth_type=BASIC,
        version=Version(build=Build(15, 1, 2507, 6)),
    )
    account = Account(
        owner, config=config, autodiscover=False, access_type=DELEGATE, default_timezone=EWSTimeZone("UTC")
    )
    calendar = account.calendar
    start, end = (
        DAY.astimezone(account.default_timezone),
        (DAY + timedelta(days=1)).astimezone(account.default_timezone),
    )
    row = Row("exchangelib calendar.view of a day", 1, seconds=seconds)
    until = time.time() + seconds
    while time.time() < until:
        t0 = time.perf_counter()
        found = list(calendar.view(start=start, end=end))
        row.latencies.append(time.perf_counter() - t0)
        row.requests += 1
        if len(found) != 5:
            row.errors += 1
    account.protocol.close()
    return row


def request_rate(base: str, control: Control, seconds: float) -> list[Row]:
    owner = "rate@bench.example"
    control.call("POST", "accounts", {"address": owner, "password": PASSWORD})
    ews_url = f"{base}/EWS/Exchange.asmx"
    setup = requests.post(
        ews_url,
        data=create_items_body(100, DAY - timedelta(days=7), "Rate"),
        headers=headers_for(owner),
        timeout=60,
    )
    ids = etree.fromstring(setup.content).findall(f".//{{{T_NS}}}ItemId")
    if setup.status_code != 200 or len(ids) != 100:
        raise RuntimeError(f"bulk CreateItem failed: {setup.status_code} {setup.text[:500]}")
    headers = headers_for(owner)
    get_body, find_body = get_item_body(ids[0].get("Id", "")), find_day_body(DAY)
    rows = []
    with multiprocessing.get_context("spawn").Pool(8) as pool:
        pool.map(time.sleep, [0.0] * 8)  # start the workers before timing anything
        for clients in (1, 8):
            rows.append(
                measure(pool, "GetItem, one item (raw SOAP)", clients, ews_url, headers, get_body, seconds)
            )
        for clients in (1, 8):
            rows.append(
                measure(
                    pool,
                    "FindItem CalendarView of a day, 5 items (raw SOAP)",
                    clients,
                    ews_url,
                    headers,
                    find_body,
                    seconds,
                )
            )
    rows.append(exchangelib_row(ews_url, owner, seconds))
    return rows


# ---- (b) memory with many mailboxes --------------------------------------------------------------------------------


def populate(job: tuple[str, list[str], int]) -> int:
    """Fill each mailbox with ``items`` calendar items in one bulk CreateItem; the number of items created."""
    ews_url, addresses, items = job
    session = requests.Session()
    created = 0
    for address in addresses:
        body = create_items_body(items, DAY, "Load")
        response = session.post(ews_url, data=body, headers=headers_for(address), timeout=120)
        if response.status_code != 200:
            raise RuntimeError(f"CreateItem for {address}: {response.status_code} {response.text[:300]}")
        created += response.content.count(b'ResponseClass="Success"')
    return created


def memory(
    base: str, control: Control, process: psutil.Process, mailboxes: int, items: int
) -> dict[str, Any]:
    control.call("POST", "reset")
    rss_before = process.memory_info().rss
    t0 = time.perf_counter()
    addresses = [f"user{n:04d}@bench.example" for n in range(mailboxes)]
    for address in addresses:
        control.call("POST", "accounts", {"address": address, "password": PASSWORD})
    accounts_seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    ews_url = f"{base}/EWS/Exchange.asmx"
    with multiprocessing.get_context("spawn").Pool(8) as pool:
        created = sum(pool.map(populate, [(ews_url, addresses[k::8], items) for k in range(8)]))
    items_seconds = time.perf_counter() - t1
    rss_after = process.memory_info().rss
    stats = control.call("GET", "stats")
    return {
        "mailboxes": mailboxes,
        "items": created,
        "stored": stats.get("items"),
        "accounts_seconds": accounts_seconds,
        "items_seconds": items_seconds,
        "rss_before": rss_before,
        "rss_after": rss_after,
        "addresses": addresses,
    }


# ---- (c) one streaming connection carrying 200 subscriptions -------------------------------------------------------


class NotAvailable(Exception):
    """The emulator being measured has no streaming notifications yet."""


class StreamReader:
    """Reads a GetStreamingEvents response, noting when each item's CreatedEvent arrives."""

    def __init__(self, response: requests.Response) -> None:
        self.response = response
        self.arrivals: dict[str, float] = {}
        self.envelopes = 0
        self.errors: list[str] = []
        self.closed = threading.Event()
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        buffer = b""
        end_tag = b"</Envelope>"
        try:
            for chunk in self.response.iter_content(chunk_size=None):
                buffer += chunk
                while (cut := buffer.find(end_tag)) >= 0:
                    document, buffer = buffer[: cut + len(end_tag)], buffer[cut + len(end_tag) :]
                    self._envelope(document[document.find(b"<Envelope") :], time.perf_counter())
        except Exception as exc:  # closing the response under the reader can end it with anything
            if not self.stopping:
                self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            self.closed.set()

    def _envelope(self, document: bytes, now: float) -> None:
        self.envelopes += 1
        root = etree.fromstring(document)
        for code in root.iter(f"{{{M_NS}}}ResponseCode"):
            if code.text != "NoError":
                self.errors.append(code.text or "")
        for event in root.iter(f"{{{T_NS}}}CreatedEvent"):
            item_id = event.find(f"{{{T_NS}}}ItemId")
            if item_id is not None:
                self.arrivals.setdefault(item_id.get("Id", ""), now)


def streaming(
    base: str, control: Control, addresses: list[str], subscriptions: int, changes: int
) -> dict[str, Any]:
    ews_url = f"{base}/EWS/Exchange.asmx"
    control.call("POST", "accounts", {"address": SERVICE, "password": PASSWORD})
    control.call("POST", "impersonation", {"service_account": SERVICE, "mailboxes": ["*"]})
    watched = addresses[:subscriptions]
    session = requests.Session()
    ids: list[str] = []
    t0 = time.perf_counter()
    for address in watched:
        response = session.post(
            ews_url, data=subscribe_body(address), headers=headers_for(SERVICE, address), timeout=30
        )
        found = etree.fromstring(response.content).find(f".//{{{M_NS}}}SubscriptionId")
        if b"is not supported by this server" in response.content:
            raise NotAvailable(
                "not available yet: this emulator does not implement Subscribe / GetStreamingEvents"
            )
        if response.status_code != 200 or found is None or not found.text:
            raise RuntimeError(f"Subscribe for {address}: {response.status_code} {response.text[:300]}")
        ids.append(found.text)
    subscribe_seconds = time.perf_counter() - t0
    stream = requests.post(
        ews_url,
        data=streaming_body(ids, watched[0]),
        headers=headers_for(SERVICE, watched[0]),
        stream=True,
        timeout=(10, 120),
    )
    if stream.status_code != 200 and b"is not supported by this server" in stream.content:
        raise NotAvailable("not available yet: this emulator does not implement GetStreamingEvents")
    if stream.status_code != 200:
        raise RuntimeError(f"GetStreamingEvents: {stream.status_code} {stream.text[:300]}")
    reader = StreamReader(stream)
    time.sleep(0.2)
    # Changes across the watched mailboxes, as their owners would make them in Outlook, from 4 threads.
    sent: dict[str, float] = {}
    lock = threading.Lock()

    def change(worker: int) -> None:
        http = requests.Session()
        for n in range(worker, changes, 4):
            address = watched[n % len(watched)]
            start = DAY + timedelta(days=60 + n // len(watched), hours=9)
            t_sent = time.perf_counter()
            response = http.post(
                f"{base}/_emulator/mailboxes/{address}/items",
                timeout=30,
                json={
                    "subject": f"Change {n}",
                    "start": zulu(start),
                    "end": zulu(start + timedelta(minutes=30)),
                },
            )
            response.raise_for_status()
            with lock:
                sent[response.json()["id"]] = t_sent

    t_first = time.perf_counter()
    threads = [threading.Thread(target=change, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    deadline = time.perf_counter() + 10
    while time.perf_counter() < deadline and not all(i in reader.arrivals for i in sent):
        time.sleep(0.01)
    # Not stream.close(): urllib3 would block until the next chunk (a heartbeat, up to 30 s away). The daemon reader
    # stops when the emulator process is terminated.
    reader.stopping = True
    if not reader.arrivals:
        raise RuntimeError(f"no notification arrived on the stream; stream errors: {reader.errors[:3]}")
    latencies = sorted(reader.arrivals[i] - t for i, t in sent.items() if i in reader.arrivals)
    last = max((reader.arrivals[i] for i in sent if i in reader.arrivals), default=t_first)
    return {
        "subscriptions": len(ids),
        "subscribe_seconds": subscribe_seconds,
        "changes": len(sent),
        "received": len(latencies),
        "latencies": latencies,
        "events_per_second": len(latencies) / (last - t_first),
        "errors": reader.errors,
    }


# ---- the report ----------------------------------------------------------------------------------------------------


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=True)]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)), line]
    out += [
        "  ".join(
            str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]
    return "\n".join(out)


def mib(value: float) -> str:
    return f"{value / 2**20:,.1f} MiB"


def timed(label: str, fn: Callable[[], Any]) -> Any:
    """Run one part of the benchmark, telling stderr what runs and how long it took."""
    print(f"... {label}", file=sys.stderr, end="", flush=True)
    t0 = time.perf_counter()
    try:
        return fn()
    finally:
        print(f" ({time.perf_counter() - t0:.1f} s)", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> None:
    """Start the emulator, measure, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each request-rate row")
    parser.add_argument("--mailboxes", type=int, default=1000)
    parser.add_argument("--items", type=int, default=100, help="calendar items per mailbox")
    parser.add_argument(
        "--subscriptions", type=int, default=200, help="subscriptions on the streaming connection"
    )
    parser.add_argument("--changes", type=int, default=1000, help="changes made while streaming")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    with emulator_process() as (base, process):
        control = Control(base)
        rss_empty = process.memory_info().rss
        rows = timed("request rate", lambda: request_rate(base, control, args.seconds))
        mem = timed(
            f"memory: {args.mailboxes} mailboxes x {args.items} items",
            lambda: memory(base, control, process, args.mailboxes, args.items),
        )
        try:
            stream: dict[str, Any] | str = timed(
                "streaming",
                lambda: streaming(base, control, mem["addresses"], args.subscriptions, args.changes),
            )
        except NotAvailable as exc:
            stream = str(exc)
        except RuntimeError as exc:
            stream = f"failed: {exc}"[:300]

    cpu = f"{os.cpu_count()} CPUs"
    print(
        f"\nEWS emulator benchmark — {datetime.now():%Y-%m-%d %H:%M}, Python {sys.version.split()[0]}, {cpu}, "
        f"emulator --latency-ms 0 in its own process\n"
    )
    print(f"(a) Requests per second (each row runs for {args.seconds:.0f} s; clients are separate processes)")
    print(
        table(
            ["scenario", "clients", "requests", "req/s", "p50 ms", "p95 ms", "errors"],
            [r.cells() for r in rows],
        )
    )
    print(f"\n(b) Memory (RSS of the emulator process): empty at start {mib(rss_empty)}")
    delta = mem["rss_after"] - mem["rss_before"]
    print(
        table(
            [
                "mailboxes",
                "items stored",
                "accounts (s)",
                "bulk CreateItem (s)",
                "items/s",
                "RSS before",
                "RSS after",
                "per item",
            ],
            [
                [
                    str(mem["mailboxes"]),
                    f"{mem['stored']:,}",
                    f"{mem['accounts_seconds']:.1f}",
                    f"{mem['items_seconds']:.1f}",
                    f"{mem['items'] / mem['items_seconds']:,.0f}",
                    mib(mem["rss_before"]),
                    mib(mem["rss_after"]),
                    f"{delta / max(1, mem['items']):,.0f} B",
                ]
            ],
        )
    )
    print(
        "\n(c) One GetStreamingEvents connection carrying many subscriptions (changes via the control plane)"
    )
    if isinstance(stream, str):
        print(table(["subscriptions", "result"], [[str(args.subscriptions), stream]]))
    else:
        lat = stream["latencies"]

        def pct(p: float) -> str:
            return f"{lat[min(len(lat) - 1, int(len(lat) * p))] * 1000:.1f}" if lat else "-"

        print(
            table(
                [
                    "subscriptions",
                    "subscribe (s)",
                    "changes",
                    "notified",
                    "p50 ms",
                    "p95 ms",
                    "max ms",
                    "events/s",
                    "stream errors",
                ],
                [
                    [
                        str(stream["subscriptions"]),
                        f"{stream['subscribe_seconds']:.2f}",
                        str(stream["changes"]),
                        str(stream["received"]),
                        pct(0.5),
                        pct(0.95),
                        f"{max(lat) * 1000:.1f}" if lat else "-",
                        f"{stream['events_per_second']:,.0f}",
                        str(len(stream["errors"])),
                    ]
                ],
            )
        )
        if lat:
            print(f"    mean latency {statistics.mean(lat) * 1000:.1f} ms")
    print(f"\nTotal time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
