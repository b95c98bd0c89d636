"""The connection test's checklist and automap on fakes: the order, what a failure stops, the deadline, what automap
maps and why it leaves the others."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from calsync import parallel
from calsync.domain import (
    InvalidInputError,
    Mapping,
    NotFoundError,
    PermanentError,
    ResourceKind,
    RetryableError,
)
from calsync.domain.diagnosis import (
    EXCHANGE_AUTHENTICATION,
    EXCHANGE_AUTODISCOVER,
    EXCHANGE_CHECKS,
    EXCHANGE_REACHABLE,
    EXCHANGE_TLS,
    EXCHANGE_VERSION,
    JRNI_CHECKS,
    JRNI_COMPANIES,
    JRNI_LOGIN,
    JRNI_REACHABLE,
    MAILBOXES,
    Check,
    CheckState,
    mailbox_checks,
)
from calsync.ports import ConnectionChecks, JrniCalendar
from calsync.usecases.admin import AdminDeps
from calsync.usecases.diagnose import MAX_MAILBOXES, automap, diagnose
from tests.calsync.builders import ALICE, BOB, INTEGRATION, integration
from tests.calsync.fakes import (
    FakeBookingSource,
    FakeMappings,
    fake_admin_deps,
)

PERSON, RESOURCE = ResourceKind.PERSON, ResourceKind.RESOURCE
OK, FAILED, WARNING, SKIPPED = CheckState.OK, CheckState.FAILED, CheckState.WARNING, CheckState.SKIPPED


@dataclass
class Script:
    """What a fake check answers: the states in order (a name left out is never reached), and where it hangs."""

    states: dict[str, CheckState] = field(default_factory=dict)
    hang_at: str | None = None
    raise_at: str | None = None


class Hang:
    """A check that does not answer until the test ends."""

    def __init__(self) -> None:
        self.released = threading.Event()

    def wait(self) -> None:
        self.released.wait(10)


@pytest.fixture
def hang() -> Iterator[Hang]:
    waiting = Hang()
    yield waiting
    waiting.released.set()


def run(names: tuple[str, ...], script: Script, hang: Hang | None) -> Iterator[Check]:
    for name in names:
        if name == script.hang_at and hang is not None:
            hang.wait()
        if name == script.raise_at:
            raise RetryableError(f"{name}: the server went away")
        state = script.states.get(name, OK)
        yield Check(name, state, f"{name} is {state.value}", "the fix" if state is FAILED else None)
        if state is FAILED:
            return


class FakeJrniCheck:
    def __init__(self, script: Script, hang: Hang | None) -> None:
        self.script, self.hang = script, hang

    def check(self) -> Iterator[Check]:
        return run(JRNI_CHECKS, self.script, self.hang)


class FakeExchangeCheck:
    def __init__(self, script: Script, mailboxes: dict[str, Script], hang: Hang | None) -> None:
        self.script, self.mailboxes, self.hang = script, mailboxes, hang
        self.opened: list[tuple[str, bool]] = []

    def check(self) -> Iterator[Check]:
        return run(EXCHANGE_CHECKS, self.script, self.hang)

    def open_mailbox(self, mailbox: str, *, write: bool) -> Iterator[Check]:
        self.opened.append((mailbox, write))
        return run(mailbox_checks(mailbox, write=write), self.mailboxes.get(mailbox, Script()), self.hang)


def deps(
    *mappings: Mapping,
    jrni: Script | None = None,
    exchange: Script | None = None,
    mailboxes: dict[str, Script] | None = None,
    calendars: list[JrniCalendar] | None = None,
    hang: Hang | None = None,
) -> tuple[AdminDeps, FakeExchangeCheck]:
    exchange_check = FakeExchangeCheck(exchange or Script(), mailboxes or {}, hang)
    checks = ConnectionChecks(jrni=FakeJrniCheck(jrni or Script(), hang), exchange=exchange_check)
    made = fake_admin_deps(
        integration(),
        mappings=FakeMappings(*mappings),
        bookings_for=lambda _: FakeBookingSource(calendars=calendars or []),
        checks_for=lambda _: checks,
    )
    return made, exchange_check


def lines(checks: list[Check]) -> list[tuple[str, CheckState]]:
    return [(c.name, c.state) for c in checks]


def mapping(jrni_id: str, mailbox: str, kind: ResourceKind = PERSON) -> Mapping:
    return Mapping(INTEGRATION, kind, jrni_id, mailbox)


# ---- the checklist ---------------------------------------------------------------------------------------------------


def test_all_well_is_ok_with_every_check_in_order() -> None:
    services, _ = deps(
        mapping("11", ALICE), mapping("12", BOB), exchange=Script({EXCHANGE_AUTODISCOVER: SKIPPED})
    )

    found = diagnose(services, INTEGRATION)

    assert found.ok
    assert lines(found.checks) == [
        *[(name, OK) for name in JRNI_CHECKS],
        *[(name, OK) for name in EXCHANGE_CHECKS[:-1]],
        (EXCHANGE_AUTODISCOVER, SKIPPED),
        (MAILBOXES, OK),
        (f"mailbox {ALICE}", OK),
        (f"mailbox {BOB}", OK),
    ]


def test_a_failed_check_skips_what_depends_on_it_and_only_that() -> None:
    services, exchange = deps(
        mapping("11", ALICE),
        jrni=Script({JRNI_LOGIN: FAILED}),
        exchange=Script({EXCHANGE_AUTHENTICATION: FAILED}),
    )

    found = diagnose(services, INTEGRATION)

    assert not found.ok
    by_name = {c.name: c for c in found.checks}
    assert by_name[JRNI_REACHABLE].state is OK and by_name[JRNI_LOGIN].fix == "the fix"
    assert (by_name[JRNI_COMPANIES].state, by_name[JRNI_COMPANIES].detail) == (
        SKIPPED,
        "not checked: JRNI login failed",
    )
    assert [by_name[n].state for n in (EXCHANGE_REACHABLE, EXCHANGE_TLS, EXCHANGE_AUTHENTICATION)] == [
        OK,
        OK,
        FAILED,
    ]
    assert by_name[EXCHANGE_VERSION].detail == "not checked: Exchange authentication failed"
    # No mailbox is opened with credentials Exchange refused; each says why it was not checked.
    assert exchange.opened == []
    assert (by_name[f"mailbox {ALICE}"].state, by_name[f"mailbox {ALICE}"].detail) == (
        SKIPPED,
        "not checked: Exchange authentication failed",
    )


def test_a_warning_does_not_stop_anything_nor_fail_the_test() -> None:
    services, _ = deps(mapping("11", ALICE), exchange=Script({EXCHANGE_TLS: WARNING}))

    found = diagnose(services, INTEGRATION)

    assert found.ok
    assert dict(lines(found.checks))[EXCHANGE_TLS] is WARNING
    assert dict(lines(found.checks))[f"mailbox {ALICE}"] is OK


def test_a_check_that_does_not_answer_in_time_fails_and_the_answer_comes_at_the_deadline(hang: Hang) -> None:
    services, exchange = deps(
        mapping("11", ALICE), exchange=Script(hang_at=EXCHANGE_AUTHENTICATION), hang=hang
    )

    began = time.monotonic()
    found = diagnose(services, INTEGRATION, deadline_seconds=0.3)

    assert time.monotonic() - began < 2
    by_name = {c.name: c for c in found.checks}
    assert [by_name[n].state for n in JRNI_CHECKS] == [OK, OK, OK]
    assert (by_name[EXCHANGE_AUTHENTICATION].state, by_name[EXCHANGE_AUTHENTICATION].detail) == (
        FAILED,
        "did not answer within 0.3 s",
    )
    assert by_name[EXCHANGE_AUTHENTICATION].fix
    assert by_name[EXCHANGE_VERSION].detail == "not checked: Exchange authentication did not answer in time"
    assert by_name[f"mailbox {ALICE}"].state is SKIPPED and exchange.opened == []
    assert by_name[f"mailbox {ALICE}"].detail == "not checked: Exchange authentication did not answer in time"


def test_one_slow_mailbox_fails_for_time_and_the_others_are_checked(hang: Hang) -> None:
    services, _ = deps(
        mapping("11", ALICE),
        mapping("12", BOB),
        mailboxes={BOB: Script(hang_at=f"mailbox {BOB}")},
        hang=hang,
    )

    found = diagnose(services, INTEGRATION, deadline_seconds=0.3)

    assert dict(lines(found.checks))[f"mailbox {ALICE}"] is OK
    assert dict(lines(found.checks))[f"mailbox {BOB}"] is FAILED
    assert not found.ok


def test_checks_that_never_started_by_the_deadline_are_dropped_not_left_queued(hang: Hang) -> None:
    many = [f"adviser{n}@example.com" for n in range(parallel.MAX_AT_ONCE + 4)]
    services, exchange = deps(
        *[mapping(str(n), m) for n, m in enumerate(many)],
        mailboxes={m: Script(hang_at=f"mailbox {m}") for m in many},
        hang=hang,
    )

    found = diagnose(services, INTEGRATION, deadline_seconds=0.3)

    assert all(dict(lines(found.checks))[f"mailbox {m}"] is FAILED for m in many)
    hang.released.set()
    time.sleep(0.2)
    # Only those that had started ran; the rest never reach Exchange after the answer was given.
    assert len(exchange.opened) <= parallel.MAX_AT_ONCE


def test_an_error_the_adapter_let_through_fails_the_check_it_was_making() -> None:
    services, _ = deps(jrni=Script(raise_at=JRNI_COMPANIES))

    by_name = {c.name: c for c in diagnose(services, INTEGRATION).checks}

    assert by_name[JRNI_COMPANIES].state is FAILED
    assert by_name[JRNI_COMPANIES].detail == f"{JRNI_COMPANIES}: the server went away"


def test_a_given_mailbox_is_checked_instead_of_the_mapped_ones_with_the_write_probe() -> None:
    services, exchange = deps(mapping("11", ALICE))

    found = diagnose(services, INTEGRATION, " Carol@Example.com ", write=True)

    assert exchange.opened == [("carol@example.com", True)]
    assert lines(found.checks)[-4:] == [
        (MAILBOXES, OK),
        *[(name, OK) for name in mailbox_checks("carol@example.com", write=True)],
    ]


def test_a_mailbox_that_cannot_be_opened_skips_its_write_probe() -> None:
    services, _ = deps(mapping("11", ALICE), mailboxes={ALICE: Script({f"mailbox {ALICE}": FAILED})})

    found = diagnose(services, INTEGRATION, write=True)

    create, delete = mailbox_checks(ALICE, write=True)[1:]
    assert lines(found.checks)[-3:] == [(f"mailbox {ALICE}", FAILED), (create, SKIPPED), (delete, SKIPPED)]


def test_at_most_50_mapped_mailboxes_are_checked_and_the_answer_says_so() -> None:
    many = [mapping(str(n), f"adviser{n:03}@example.com") for n in range(MAX_MAILBOXES + 5)]
    services, exchange = deps(*many)

    found = diagnose(services, INTEGRATION)

    assert len(exchange.opened) == MAX_MAILBOXES
    which = next(c for c in found.checks if c.name == MAILBOXES)
    assert which.state is WARNING and f"first {MAX_MAILBOXES} of {MAX_MAILBOXES + 5}" in which.detail
    assert found.ok  # a warning only


def test_without_any_mapping_the_mailboxes_are_skipped_with_what_to_do() -> None:
    services, exchange = deps()

    found = diagnose(services, INTEGRATION)

    assert found.ok and exchange.opened == []
    assert found.checks[-1].name == MAILBOXES and found.checks[-1].state is SKIPPED
    assert "give a mailbox" in found.checks[-1].detail


def test_refusals_unknown_integration_a_mailbox_that_is_no_address_no_checks_deployed() -> None:
    services, exchange = deps()
    with pytest.raises(NotFoundError):
        diagnose(services, "nope")
    with pytest.raises(InvalidInputError, match="not a mailbox address"):
        diagnose(services, INTEGRATION, "alice at example")
    assert exchange.opened == []
    without = AdminDeps(**{**services.__dict__, "checks_for": None})
    with pytest.raises(PermanentError, match="cannot test connections"):
        diagnose(without, INTEGRATION)


# ---- automap ---------------------------------------------------------------------------------------------------------


def calendar(jrni_id: str, name: str, kind: ResourceKind = PERSON, **fields: object) -> JrniCalendar:
    return JrniCalendar(kind, jrni_id, "37001", name, **fields)  # type: ignore[arg-type]


def test_automap_maps_what_opens_and_says_why_for_the_rest() -> None:
    calendars = [
        calendar("1", "Alice Adams", email="alice@example.com"),  # mapped already: left alone
        calendar(
            "2", "Ben Brown", email="ben@old.example.com", ews_email="Ben@Example.com"
        ),  # ews_email wins
        calendar("3", "Chloe Clark", email="chloe@example.com"),
        calendar("4", "Dan Away", email="dan@example.com", disabled=True),
        calendar("5", "Eve Nomail"),
        calendar("6", "Fay Typo", email="fay at example.com"),
        calendar("7", "Gus Twin", email="alice@example.com"),  # Alice's mailbox
        calendar("8", "Hal Shared", email="desk@example.com"),
        calendar("9", "Ivy Shared", email="desk@example.com"),
        calendar("10", "Jo Elsewhere", email="jo@partner.example.com"),
        calendar("21", "Room 1", RESOURCE, ews_email="room1@example.com"),
    ]
    refused = Script({"mailbox jo@partner.example.com": FAILED})
    services, exchange = deps(
        mapping("1", "alice@example.com"), calendars=calendars, mailboxes={"jo@partner.example.com": refused}
    )

    done = automap(services, INTEGRATION)

    assert [(m.calendar.jrni_id, m.mailbox) for m in done.mapped] == [
        ("2", "ben@example.com"),
        ("3", "chloe@example.com"),
        ("21", "room1@example.com"),
    ]
    mailboxes = {(m.kind, m.jrni_id): m.mailbox for m in services.mappings.mappings(INTEGRATION)}
    assert (
        mailboxes[(PERSON, "2")] == "ben@example.com" and mailboxes[(RESOURCE, "21")] == "room1@example.com"
    )
    # Each new mapping is backfilled, as one made by hand.
    assert all(m.run_id for m in done.mapped)
    assert len(services.reconcile_queue.sent) == 3  # type: ignore[attr-defined]
    reasons = {n.calendar.jrni_id: n.reason for n in done.not_mapped}
    assert list(reasons) == ["4", "5", "6", "7", "8", "9", "10"]
    assert reasons["4"].startswith("disabled in JRNI")
    assert reasons["5"] == "JRNI has no e-mail for it (neither ews_email nor email)"
    assert reasons["6"] == "its JRNI e-mail 'fay at example.com' is not a mailbox address"
    assert reasons["7"] == "alice@example.com is already mapped to person 1 (Alice Adams)"
    assert reasons["8"] == reasons["9"]
    assert (
        "desk@example.com is the JRNI e-mail of person 8 (Hal Shared), person 9 (Ivy Shared)" in reasons["8"]
    )
    assert (
        reasons["10"]
        == "cannot open jo@partner.example.com: mailbox jo@partner.example.com is failed; the fix"
    )
    # Only the candidates were probed, read only.
    assert sorted(exchange.opened) == sorted(
        (m, False)
        for m in ("ben@example.com", "chloe@example.com", "jo@partner.example.com", "room1@example.com")
    )


def test_automap_reports_what_was_not_checked_in_time(hang: Hang) -> None:
    calendars = [
        calendar("2", "Ben", email="ben@example.com"),
        calendar("3", "Chloe", email="chloe@example.com"),
    ]
    services, _ = deps(
        calendars=calendars,
        mailboxes={"chloe@example.com": Script(hang_at="mailbox chloe@example.com")},
        hang=hang,
    )

    done = automap(services, INTEGRATION, deadline_seconds=0.3)

    assert [m.calendar.jrni_id for m in done.mapped] == ["2"]
    assert [(n.calendar.jrni_id, n.reason) for n in done.not_mapped] == [
        ("3", "chloe@example.com not checked in time, run automap again")
    ]
    assert [m.jrni_id for m in services.mappings.mappings(INTEGRATION)] == ["2"]


def test_automap_refuses_an_unknown_integration() -> None:
    services, _ = deps()
    with pytest.raises(NotFoundError):
        automap(services, "nope")
