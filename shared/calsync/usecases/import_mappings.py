"""Mappings in bulk: rows of (kind, JRNI id, mailbox) from a CSV file or a JSON list, every row checked before any is
applied, every bad row reported with its line; all of them applied, or none.

Lines are numbered as the operator sees them: in a CSV file as a spreadsheet shows its rows (the header is line 1),
in a JSON list from 1 for the first mapping.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from calsync.domain import (
    InvalidInputError,
    InvalidRowsError,
    Mapping,
    ResourceKind,
    TooLargeError,
    validation,
)
from calsync.domain.reconcile import ReconcileRun
from calsync.usecases.admin import AdminDeps, backfill, find_integration

MAX_ROWS = 2000
MAX_BYTES = 1_000_000
COLUMNS = ("kind", "jrni_id", "mailbox")
_KINDS = ", ".join(kind.value for kind in ResourceKind)

Key = tuple[ResourceKind, str]


@dataclass(frozen=True)
class ImportRow:
    """One row as read: its line, and its three values as given (``unreadable``: why the row could not be read)."""

    line: int
    kind: str = ""
    jrni_id: str = ""
    mailbox: str = ""
    unreadable: str = ""


@dataclass(frozen=True)
class Imported:
    """What an import did: mappings made or changed (each with the backfill it started), and rows already so."""

    applied: list[tuple[Mapping, ReconcileRun]]
    unchanged: int


def _too_many(count: int) -> TooLargeError:
    return TooLargeError(
        f"{count} rows: at most {MAX_ROWS:,} in one import; split the file and send each part"
    )


def rows_of_csv(text: str) -> list[ImportRow]:
    """The rows of a CSV file whose first line is the header ``kind,jrni_id,mailbox`` (in any order); blank lines
    are skipped."""
    read: list[list[str]] = []
    try:
        # A spreadsheet's export may start with a byte order mark.
        read.extend(csv.reader(io.StringIO(text.removeprefix("\ufeff")), strict=True))
    except csv.Error as exc:
        raise InvalidRowsError(
            "the file cannot be read as CSV",
            [(len(read) + 1, f"{exc}: quote a value holding commas or quotes")],
        ) from None
    records = list(enumerate(read, start=1))
    if not records:
        raise InvalidRowsError("the file is empty", [(1, "expected the header row kind,jrni_id,mailbox")])
    columns = [cell.strip().lower() for cell in records[0][1]]
    if sorted(columns) != sorted(COLUMNS):
        raise InvalidRowsError(
            "the file's first line is not its header",
            [(1, f"expected the columns kind,jrni_id,mailbox, found {','.join(columns) or 'nothing'}")],
        )
    rows = []
    for line, record in records[1:]:
        if not any(cell.strip() for cell in record):
            continue
        if len(record) != len(COLUMNS):
            rows.append(
                ImportRow(line, unreadable=f"{len(record)} fields, expected 3 (kind,jrni_id,mailbox)")
            )
            continue
        values = dict(zip(columns, record, strict=True))
        rows.append(ImportRow(line, values["kind"], values["jrni_id"], values["mailbox"]))
    if len(rows) > MAX_ROWS:
        raise _too_many(len(rows))
    return rows


def rows_of_json(document: Any) -> list[ImportRow]:
    """The rows of ``{"mappings": [{"kind", "jrni_id", "mailbox"}, ...]}`` (a JRNI id may be given as a number)."""
    listed = document.get("mappings") if isinstance(document, dict) else None
    if not isinstance(listed, list) or set(document) != {"mappings"}:
        raise InvalidInputError(
            'expected {"mappings": [{"kind": "person", "jrni_id": "101", "mailbox": "alice@example.com"}, ...]}'
        )
    if len(listed) > MAX_ROWS:
        raise _too_many(len(listed))
    rows = []
    for line, item in enumerate(listed, start=1):
        if not isinstance(item, dict) or set(item) != set(COLUMNS):
            found = ", ".join(sorted(item)) if isinstance(item, dict) else type(item).__name__
            rows.append(
                ImportRow(line, unreadable=f"expected an object of kind, jrni_id and mailbox, found {found}")
            )
            continue
        values = {name: item[name] for name in COLUMNS}
        if isinstance(values["jrni_id"], int) and not isinstance(values["jrni_id"], bool):
            values["jrni_id"] = str(values["jrni_id"])
        wrong = [name for name, value in values.items() if not isinstance(value, str)]
        if wrong:
            rows.append(ImportRow(line, unreadable=f"{', '.join(wrong)} must be text"))
            continue
        rows.append(ImportRow(line, values["kind"], values["jrni_id"], values["mailbox"]))
    return rows


def import_mappings(deps: AdminDeps, integration_id: str, rows: Sequence[ImportRow]) -> Imported:
    """Map every row's staff member or resource to its mailbox, if every row can be: each row is a kind, a JRNI id
    and a mailbox address; JRNI knows the staff member or resource; no two rows name the same one or the same
    mailbox; no mailbox stays mapped to another. Otherwise InvalidRowsError naming each bad row, and nothing is
    applied. Each new or changed mapping is backfilled (as a single mapping is); a row mapped so already is left.

    The checks see the mappings as they are when the import starts: a mapping changed meanwhile by someone else
    may still make one write refused (ConflictError), after the rows before it were applied."""
    integration = find_integration(deps.integrations, integration_id)
    if not rows:
        raise InvalidInputError("the file has no mappings: nothing to import")
    known = {(c.kind, c.jrni_id) for c in deps.bookings_for(integration).calendars()}
    current: dict[Key, str] = {(m.kind, m.jrni_id): m.mailbox for m in deps.mappings.mappings(integration.id)}
    errors: list[tuple[int, str]] = []
    lines: dict[Key, int] = {}
    mailboxes: dict[str, int] = {}
    wanted: list[tuple[int, Mapping]] = []
    for row in rows:
        problem = row.unreadable or _problem(row, known, lines, mailboxes)
        if problem:
            errors.append((row.line, problem))
            continue
        kind, jrni_id = ResourceKind(row.kind.strip().lower()), row.jrni_id.strip()
        mapping = Mapping(integration.id, kind, jrni_id, validation.mailbox_address(row.mailbox))
        lines[(mapping.kind, mapping.jrni_id)] = row.line
        mailboxes[mapping.mailbox] = row.line
        wanted.append((row.line, mapping))
    changes = [(line, m) for line, m in wanted if current.get((m.kind, m.jrni_id)) != m.mailbox]
    ordered, stuck = _in_order(changes, current)
    errors += stuck
    if errors:
        raise InvalidRowsError(
            f"{len(errors)} of {len(rows)} rows cannot be imported, so none was: correct them and send the whole "
            f"file again",
            sorted(errors),
        )
    applied = []
    for mapping in ordered:
        deps.mappings.put(mapping)
        applied.append((mapping, backfill(deps, mapping)))
    return Imported(applied, unchanged=len(wanted) - len(changes))


def _problem(row: ImportRow, known: set[Key], lines: dict[Key, int], mailboxes: dict[str, int]) -> str:
    """What is wrong with one row on its own and against the rows before it ("" when nothing)."""
    problems = []
    kind = row.kind.strip().lower()
    if kind not in {k.value for k in ResourceKind}:
        problems.append(f"kind {row.kind!r} is not one of {_KINDS}")
    checks: list[tuple[Callable[[str], str], str]] = [
        (validation.jrni_id, row.jrni_id.strip()),
        (validation.mailbox_address, row.mailbox),
    ]
    for check, value in checks:
        try:
            check(value)
        except InvalidInputError as exc:
            problems.append(str(exc))
    if problems:
        return "; ".join(problems)
    key = (ResourceKind(kind), row.jrni_id.strip())
    mailbox = validation.mailbox_address(row.mailbox)
    if key not in known:
        return (
            f"JRNI has no {kind} {key[1]} in this integration's companies (GET /admin/integrations/"
            f"{{id}}/mappings lists the staff and resources JRNI has)"
        )
    if key in lines:
        return f"{kind} {key[1]} is on line {lines[key]} too: one mailbox per staff member or resource"
    if mailbox in mailboxes:
        return f"mailbox {mailbox} is on line {mailboxes[mailbox]} too: a mailbox serves one staff member or resource"
    return ""


def _in_order(
    changes: list[tuple[int, Mapping]], current: dict[Key, str]
) -> tuple[list[Mapping], list[tuple[int, str]]]:
    """The changed mappings in an order in which each mailbox is free when it is claimed (a mailbox moving from one
    staff member to another is freed first by the other's own row), and the rows that cannot be: a mailbox mapped to
    someone the file leaves as they are, or mailboxes swapped between rows."""
    holders = {mailbox: key for key, mailbox in current.items()}
    pending = list(changes)
    ordered: list[Mapping] = []
    while pending:
        ready = [(line, m) for line, m in pending if holders.get(m.mailbox) in (None, (m.kind, m.jrni_id))]
        if not ready:
            break
        for _, mapping in ready:
            key = (mapping.kind, mapping.jrni_id)
            holders.pop(current.get(key, ""), None)
            holders[mapping.mailbox] = key
            current = {**current, key: mapping.mailbox}
            ordered.append(mapping)
        pending = [change for change in pending if change not in ready]
    moved = {(m.kind, m.jrni_id) for _, m in changes}
    stuck = []
    for line, mapping in pending:
        kind, jrni_id = holders[mapping.mailbox]
        if (kind, jrni_id) in moved:
            why = (
                f"mailbox {mapping.mailbox} goes from {kind.value} {jrni_id} to {mapping.kind.value} "
                f"{mapping.jrni_id} while mailboxes are swapped between them: unmap one of them first"
            )
        else:
            why = (
                f"mailbox {mapping.mailbox} is mapped to {kind.value} {jrni_id}: unmap it first (DELETE "
                f".../mappings/{kind.value}/{jrni_id}), or map {kind.value} {jrni_id} to another mailbox in this file"
            )
        stuck.append((line, why))
    return ordered, stuck
