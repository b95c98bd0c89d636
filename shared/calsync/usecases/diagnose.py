"""The connection test and automap: what an operator runs before (and after) mapping staff to mailboxes.

The connection test is a checklist in a fixed order: JRNI (reachable, login, the company tree) and Exchange
(endpoint, TLS, authentication, server version, autodiscover) side by side, then each mailbox (the one given, or
up to ``MAX_MAILBOXES`` mapped ones, all at once). A check that fails stops the checks that depend on it, which are
reported ``skipped`` with the reason. The whole test answers within ``DEADLINE_SECONDS`` (API Gateway gives up at
29 s): a check still running then is ``failed`` ("did not answer within N s"), and what depends on it ``skipped``.

Automap maps every unmapped, enabled JRNI staff member and resource to the mailbox JRNI records for it
(``ews_email``, else ``email``) when the service account can open that mailbox, under the same deadline, and says
for each of the others why not.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from concurrent.futures import wait as wait_for
from dataclasses import dataclass

from calsync import parallel
from calsync.domain import (
    CalsyncError,
    ConflictError,
    Integration,
    InvalidInputError,
    PermanentError,
    RetryableError,
)
from calsync.domain.diagnosis import (
    EXCHANGE_AUTHENTICATION,
    EXCHANGE_CHECKS,
    JRNI_CHECKS,
    MAILBOXES,
    Check,
    CheckState,
    mailbox_checks,
)
from calsync.domain.validation import mailbox_address
from calsync.ports import ConnectionChecks, JrniCalendar
from calsync.usecases import admin
from calsync.usecases.admin import AdminDeps

# API Gateway ends a request at 29 s; the answer (and the Lambda's own start) needs the rest.
DEADLINE_SECONDS = 20.0
# Mailboxes checked in one test when none is given: enough to see a pattern, few enough to answer in time.
MAX_MAILBOXES = 50
# Automap's share of the deadline kept for mapping what opened (each mapping is a few writes and starts a backfill).
MAPPING_SHARE = 0.3


@dataclass(frozen=True)
class Diagnosis:
    """The checklist as it ended: ``ok`` when no check failed (warnings and skipped checks do not count)."""

    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(check.state is not CheckState.FAILED for check in self.checks)


def diagnose(
    deps: AdminDeps,
    integration_id: str,
    mailbox: str | None = None,
    *,
    write: bool = False,
    deadline_seconds: float = DEADLINE_SECONDS,
) -> Diagnosis:
    """Check every step from calsync to JRNI, to Exchange and into the mailboxes; ``mailbox`` (an address) checks
    that one instead of the mapped ones; ``write`` also creates and deletes a private probe item in each."""
    integration = admin.find_integration(deps.integrations, integration_id)
    given = mailbox_address(mailbox) if mailbox is not None else None
    checks = _checks(deps, integration)
    deadline = _Deadline(deadline_seconds)
    jrni = _Steps.start(JRNI_CHECKS, checks.jrni.check)
    exchange = _Steps.start(EXCHANGE_CHECKS, checks.exchange.check)
    mapped = sorted({m.mailbox for m in deps.mappings.mappings(integration.id)})
    mailboxes, which = _mailboxes(given, mapped)
    exchange.wait(deadline)
    authenticated = exchange.passed(EXCHANGE_AUTHENTICATION)
    probes: list[_Steps] = []
    if authenticated:
        probes = [
            _Steps.start(mailbox_checks(m, write=write), _open(checks, m, write=write)) for m in mailboxes
        ]
    for steps in (jrni, *probes):
        steps.wait(deadline)
    for steps in (jrni, exchange, *probes):
        steps.cancel()  # what waits for a thread past the deadline would only hold the next request up

    found = jrni.checks(deadline) + exchange.checks(deadline) + [which]
    if authenticated:
        for steps in probes:
            found += steps.checks(deadline)
    else:
        why = exchange.why_not(deadline)
        for m in mailboxes:
            found += [Check.skipped(name, why) for name in mailbox_checks(m, write=write)]
    return Diagnosis(found)


def _checks(deps: AdminDeps, integration: Integration) -> ConnectionChecks:
    if deps.checks_for is None:
        raise PermanentError(
            "this deployment cannot test connections: its admin function was built without the connection checks"
        )
    return deps.checks_for(integration)


def _open(checks: ConnectionChecks, mailbox: str, *, write: bool) -> Callable[[], Iterator[Check]]:
    return lambda: checks.exchange.open_mailbox(mailbox, write=write)


def _mailboxes(given: str | None, mapped: list[str]) -> tuple[list[str], Check]:
    """The mailboxes to check, and the checklist's line saying which."""
    if given is not None:
        return [given], Check.ok(MAILBOXES, f"checking the mailbox given, {given}")
    if not mapped:
        return [], Check.skipped(
            MAILBOXES, "no mailbox is mapped yet: map staff or resources, or give a mailbox to check"
        )
    if len(mapped) > MAX_MAILBOXES:
        return mapped[:MAX_MAILBOXES], Check.warning(
            MAILBOXES,
            f"checking the first {MAX_MAILBOXES} of {len(mapped)} mapped mailboxes (in alphabetical order)",
            "give a mailbox in the request to check one of the others",
        )
    return mapped, Check.ok(MAILBOXES, f"checking the {len(mapped)} mapped mailbox(es)")


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds

    def leaving(self, share: float) -> _Deadline:
        """A deadline that ends early enough to leave ``share`` of this one's time for what follows."""
        earlier = _Deadline(self.seconds * (1 - share))
        earlier.at = self.at - self.seconds * share
        return earlier

    def left(self) -> float:
        return max(0.0, self.at - time.monotonic())

    def late(self) -> str:
        return f"did not answer within {self.seconds:g} s"


class _Steps:
    """One run of checks (JRNI's, Exchange's or one mailbox's) made in the background, read as far as it got."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)
        self.made: list[
            Check
        ] = []  # appended by the background call only; read after it ended or the deadline
        self.error: CalsyncError | None = None
        self.future: Future[None] | None = None

    @classmethod
    def start(cls, names: Sequence[str], run: Callable[[], Iterator[Check]]) -> _Steps:
        steps = cls(names)
        steps.future = parallel.start(steps._drain, run)
        return steps

    def _drain(self, run: Callable[[], Iterator[Check]]) -> None:
        try:
            for check in run():
                self.made.append(check)
                if check.state is CheckState.FAILED:
                    return
        except CalsyncError as exc:  # an error the adapter did not turn into a check: the next check failed
            self.error = exc

    def wait(self, deadline: _Deadline) -> None:
        if self.future is not None:
            wait_for([self.future], timeout=deadline.left())

    def cancel(self) -> None:
        """Drop the run if it has not started (one that is running ends on its own)."""
        if self.future is not None:
            self.future.cancel()

    @property
    def done(self) -> bool:
        """Whether the run ended (a run dropped before it started did not)."""
        return self.future is None or (self.future.done() and not self.future.cancelled())

    def passed(self, name: str) -> bool:
        return any(check.name == name and check.passed for check in list(self.made))

    def checks(self, deadline: _Deadline) -> list[Check]:
        """Every one of the run's checks: made, failed for lack of time, or skipped with the reason."""
        done = self.done
        made = list(self.made)[: len(self.names)]
        found = list(made)
        remaining = self.names[len(made) :]
        if not remaining:
            return found
        if made and made[-1].state is CheckState.FAILED:
            why = f"not checked: {made[-1].name} failed"
        else:
            current, remaining = remaining[0], remaining[1:]
            if not done:
                found.append(
                    Check.failed(
                        current,
                        deadline.late(),
                        "check that the server answers promptly (its load, a firewall dropping packets), then "
                        "test again",
                    )
                )
                why = f"not checked: {current} did not answer in time"
            elif self.error is not None:
                found.append(Check.failed(current, str(self.error), _fix_of(self.error)))
                why = f"not checked: {current} failed"
            else:
                found.append(Check.skipped(current, "not checked"))
                why = "not checked"
        return found + [Check.skipped(name, why) for name in remaining]

    def why_not(self, deadline: _Deadline) -> str:
        """Why what depends on this run was not checked: the check that stopped it."""
        for check in self.checks(deadline):
            if check.state is CheckState.FAILED:
                late = check.detail == deadline.late()
                return f"not checked: {check.name} {'did not answer in time' if late else 'failed'}"
        return "not checked"


def _fix_of(error: CalsyncError) -> str:
    if isinstance(error, PermanentError):
        return "correct what the detail names, then test again"
    return "test again shortly; if it keeps failing, check the server's health"


# ---- automap --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mapped:
    calendar: JrniCalendar
    mailbox: str
    run_id: str | None  # the backfill started for the new mapping


@dataclass(frozen=True)
class NotMapped:
    calendar: JrniCalendar
    reason: str


@dataclass(frozen=True)
class Automap:
    """What automap mapped and what it did not (with why), each in JRNI's order."""

    mapped: list[Mapped]
    not_mapped: list[NotMapped]


def automap(deps: AdminDeps, integration_id: str, *, deadline_seconds: float = DEADLINE_SECONDS) -> Automap:
    """Map every unmapped, enabled JRNI staff member and resource to the mailbox JRNI records for it (``ews_email``,
    else ``email``) when the service account can open it; each new mapping is backfilled as a mapping made by hand."""
    integration = admin.find_integration(deps.integrations, integration_id)
    checks = _checks(deps, integration)
    deadline = _Deadline(deadline_seconds)
    listing = parallel.start(lambda: deps.bookings_for(integration).calendars())
    wait_for([listing], timeout=deadline.left())
    if not listing.done():
        raise RetryableError(
            f"JRNI did not list the staff and resources within {deadline_seconds:g} s: run automap again"
        )
    calendars = listing.result()
    mappings = deps.mappings.mappings(integration.id)
    mapped_keys = {(m.kind, m.jrni_id) for m in mappings}
    holders = {m.mailbox: m for m in mappings}
    names = {(c.kind, c.jrni_id): c.name for c in calendars}

    not_mapped: list[NotMapped] = []
    candidates: dict[str, list[JrniCalendar]] = {}
    for calendar in calendars:
        if (calendar.kind, calendar.jrni_id) in mapped_keys:
            continue
        reason, address = _candidate(calendar)
        holder = holders.get(address or "")
        if holder is not None:
            who = names.get((holder.kind, holder.jrni_id))
            reason = f"{address} is already mapped to {holder.kind.value} {holder.jrni_id}" + (
                f" ({who})" if who else ""
            )
        if reason is not None or address is None:
            not_mapped.append(NotMapped(calendar, reason or "no mailbox"))
        else:
            candidates.setdefault(address, []).append(calendar)

    probes: dict[str, _Steps] = {}
    for address, sharing in candidates.items():
        if len(sharing) > 1:
            named = ", ".join(f"{c.kind.value} {c.jrni_id} ({c.name})" for c in sharing)
            reason = f"{address} is the JRNI e-mail of {named}: map one of them by hand"
            not_mapped += [NotMapped(c, reason) for c in sharing]
        else:
            probes[address] = _Steps.start(
                mailbox_checks(address, write=False), _open(checks, address, write=False)
            )
    probing = deadline.leaving(MAPPING_SHARE)
    for steps in probes.values():
        steps.wait(probing)
    for steps in probes.values():
        steps.cancel()

    mapped: list[Mapped] = []
    for address, steps in probes.items():
        [calendar] = candidates[address]
        if not steps.done:
            not_mapped.append(NotMapped(calendar, f"{address} not checked in time, run automap again"))
            continue
        if not deadline.left():
            not_mapped.append(
                NotMapped(calendar, f"{address} opens, but was not mapped in time: run automap again")
            )
            continue
        opened = steps.checks(deadline)[0]
        if not opened.passed:
            fix = f"; {opened.fix}" if opened.fix else ""
            not_mapped.append(NotMapped(calendar, f"cannot open {address}: {opened.detail}{fix}"))
            continue
        try:
            mapping, run = admin.map_mailbox(deps, integration.id, calendar.kind, calendar.jrni_id, address)
        except ConflictError as exc:  # the mailbox was mapped to another one meanwhile
            not_mapped.append(NotMapped(calendar, str(exc)))
            continue
        mapped.append(Mapped(calendar, mapping.mailbox, run.run_id if run else None))
    order = {(c.kind, c.jrni_id): n for n, c in enumerate(calendars)}
    return Automap(
        mapped=sorted(mapped, key=lambda m: order[(m.calendar.kind, m.calendar.jrni_id)]),
        not_mapped=sorted(not_mapped, key=lambda n: order[(n.calendar.kind, n.calendar.jrni_id)]),
    )


def _candidate(calendar: JrniCalendar) -> tuple[str | None, str | None]:
    """Why a JRNI calendar cannot be mapped by itself (None when it can), and the mailbox JRNI records for it."""
    if calendar.disabled:
        return "disabled in JRNI: map it by hand if it should be synced", None
    candidate = calendar.ews_email or calendar.email
    if not candidate:
        return "JRNI has no e-mail for it (neither ews_email nor email)", None
    try:
        return None, mailbox_address(candidate)
    except InvalidInputError:
        return f"its JRNI e-mail {candidate!r} is not a mailbox address", None
