"""What the CLI shows: rich tables for people, plain lines where stdout is not a terminal, and the progress of runs
and backfills being followed."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

MARKS = {"ok": "✔", "failed": "✘", "warning": "!", "skipped": "-"}
# Wide enough that a table written to a file or a pipe is not folded into unreadable columns.
PLAIN_WIDTH = 200


def consoles() -> tuple[Console, Console]:
    """stdout (answers, tables) and stderr (errors, progress notes); made when a command runs, not at import."""
    out = Console(soft_wrap=False)
    if not out.is_terminal:
        out = Console(width=PLAIN_WIDTH, no_color=True, highlight=False)
    err = Console(stderr=True, highlight=False)
    if not err.is_terminal:
        err = Console(stderr=True, width=PLAIN_WIDTH, no_color=True, highlight=False)
    return out, err


def table(title: str | None, columns: Iterable[str], rows: Iterable[Iterable[Any]]) -> Table:
    shown = Table(title=title, title_justify="left", show_lines=False)
    for column in columns:
        shown.add_column(column, overflow="fold")
    for row in rows:
        shown.add_row(*("—" if cell is None or cell == "" else str(cell) for cell in row))
    return shown


def age(at: str | None, now: datetime | None = None) -> str | None:
    """``12s ago``, ``4m ago``, ``3h ago``, ``2d ago`` for an ISO time; None when never."""
    seconds = age_seconds(at, now)
    if seconds is None:
        return None
    return f"{duration(seconds)} ago"


def age_seconds(at: str | None, now: datetime | None = None) -> float | None:
    if not at:
        return None
    try:
        when = datetime.fromisoformat(at)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, ((now or datetime.now(UTC)) - when).total_seconds())


def duration(seconds: float) -> str:
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """``{"exchange": {"verify_tls": true}}`` → ``[("exchange.verify_tls", True)]``: the keys ``integrations set``
    takes."""
    if isinstance(value, dict) and value:
        pairs: list[tuple[str, Any]] = []
        for key, inner in value.items():
            pairs += flatten(inner, f"{prefix}{key}.")
        return pairs
    return [(prefix.rstrip("."), value)]


# ---- the status table ------------------------------------------------------------------------------------------------


def status_rows(status: dict[str, Any], mappings: list[dict[str, Any]]) -> list[list[Any]]:
    """One row per mapped calendar (and per unmapped one with an open problem): kind, id, name, mailbox, state,
    last sync, last reconcile, lag, last error in words."""
    reconciles = {(r["kind"], str(r["jrni_id"])): r for r in status.get("reconcile", [])}
    problems: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for problem in status.get("problems", []):
        problems.setdefault((problem["kind"], str(problem["jrni_id"])), []).append(problem)
    rows = []
    for row in mappings:
        key = (row["kind"], str(row["jrni_id"]))
        open_problems = row.get("problems") or problems.get(key, [])
        if not row.get("mailbox") and not open_problems:
            continue
        reconcile = {
            **reconciles.get(key, {}),
            **{k: row[k] for k in ("backfill", "last_reconciled_at") if k in row},
        }
        synced = (row.get("status") or {}).get("at")
        reconciled = reconcile.get("last_reconciled_at")
        rows.append(
            [
                row["kind"],
                row["jrni_id"],
                row.get("name"),
                row.get("mailbox") or "(not mapped)",
                state_of(row, open_problems, reconcile.get("backfill")),
                age(synced),
                age(reconciled),
                lag_of(row, synced, reconciled),
                last_error(row, open_problems),
            ]
        )
    return rows


STATUS_COLUMNS = [
    "kind",
    "id",
    "name",
    "mailbox",
    "state",
    "last sync",
    "last reconcile",
    "lag",
    "last error",
]


def state_of(row: dict[str, Any], problems: list[dict[str, Any]], backfill: dict[str, Any] | None) -> str:
    if backfill:
        return f"backfilling {backfill.get('done', 0)}/{backfill.get('total', '?')}"
    states = {p.get("state") for p in problems}
    for worst in ("error", "needs_attention", "skipped"):
        if worst in states:
            return worst
    watch = row.get("outlook_changes") or {}
    if watch.get("mode") in ("error", "stale"):
        return f"outlook {watch['mode']}"
    if not row.get("mailbox"):
        return "not mapped"
    return str((row.get("status") or {}).get("state") or "waiting")


def lag_of(row: dict[str, Any], synced: str | None, reconciled: str | None) -> str | None:
    """How long since calsync last confirmed this calendar agrees (its last sync or reconcile, the newer); an API
    that measures lag itself (``lag_seconds``) is shown as it says."""
    if row.get("lag_seconds") is not None:
        return duration(float(row["lag_seconds"]))
    ages = [a for a in (age_seconds(synced), age_seconds(reconciled)) if a is not None]
    return duration(min(ages)) if ages else None


def last_error(row: dict[str, Any], problems: list[dict[str, Any]]) -> str | None:
    """The newest open problem in words, or why Outlook changes are not arriving."""
    if problems:
        newest = problems[0]
        about = newest.get("subject")
        detail = newest.get("detail") or newest.get("state")
        return f"{about}: {detail}" if about else str(detail)
    watch = row.get("outlook_changes") or {}
    if watch.get("mode") in ("error", "stale"):
        return str(watch.get("detail"))
    status = row.get("status") or {}
    if status.get("state") == "error":
        return str(status.get("detail"))
    return None


def status_summary(status: dict[str, Any]) -> str:
    states = (
        ", ".join(f"{n} {state}" for state, n in sorted((status.get("states") or {}).items())) or "none yet"
    )
    watching = ", ".join(f"{n} {mode}" for mode, n in sorted((status.get("outlook_changes") or {}).items()))
    line = f"integration {status.get('integration_id')}: {status.get('mapped', 0)} mapped; outcomes: {states}"
    if watching:
        line += f"; Outlook changes: {watching}"
    task = status.get("streaming_task")
    if task:
        line += f"; streaming task {task.get('state')}"
    return line


# ---- following runs and backfills ------------------------------------------------------------------------------------


@dataclass
class Followed:
    """One thing being waited for: a reconcile run, or the backfill (a one-mapping run) of a mapping."""

    label: str
    run_id: str | None = None
    key: tuple[str, str] | None = None  # (kind, jrni_id) of a backfilled mapping
    unit: str = "mappings"
    since: str | None = None  # the mapping's last reconcile before it was asked for (no run id known)
    done: int = 0
    total: int | None = None
    finished: bool = False
    state: str = "running"
    error: str | None = None
    answer: dict[str, Any] | None = None


Poll = Callable[[list[Followed]], None]


def follow(followed: list[Followed], poll: Poll, *, out: Console, interval: float, deadline: float) -> None:
    """Poll until every followed thing finished (``poll`` updates them), with a progress bar on a terminal and one
    plain line per change elsewhere. ``TimeoutError`` past ``deadline`` (a monotonic time)."""
    if out.is_terminal:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[unit]}"),
            TimeElapsedColumn(),
            console=out,
            transient=False,
        ) as progress:
            tasks: dict[int, TaskID] = {
                i: progress.add_task(item.label, total=item.total, unit=item.unit)
                for i, item in enumerate(followed)
            }

            def show() -> None:
                for i, item in enumerate(followed):
                    progress.update(tasks[i], completed=item.done, total=item.total)

            _loop(followed, poll, show, interval, deadline)
        return
    said: dict[int, tuple[int, int | None, bool]] = {}

    def lines() -> None:
        for i, item in enumerate(followed):
            now = (item.done, item.total, item.finished)
            if said.get(i) != now:
                said[i] = now
                out.print(f"{item.label}: {plain(item)}", soft_wrap=True, markup=False, highlight=False)

    _loop(followed, poll, lines, interval, deadline)


def plain(item: Followed) -> str:
    """``started``, ``2/5 writes``, ``5/5 writes done (created 5)``."""
    if item.total is None and not item.finished:
        return "started"
    text = f"{item.done}/{item.total} {item.unit}"
    if not item.finished:
        return text
    repaired = ((item.answer or {}).get("repaired")) or {}
    counts = ", ".join(f"{name} {n}" for name, n in repaired.items() if n)
    end = "done" if item.state == "done" else f"ended in {item.state}"
    return f"{text} {end}" + (f" ({counts})" if counts else "")


def _loop(
    followed: list[Followed], poll: Poll, show: Callable[[], None], interval: float, deadline: float
) -> None:
    while True:
        poll(followed)
        show()
        if all(item.finished for item in followed):
            return
        if time.monotonic() > deadline:
            raise TimeoutError
        time.sleep(interval)
