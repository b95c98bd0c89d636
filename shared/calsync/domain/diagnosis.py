"""A connection test's lines: each check of the way to JRNI and Exchange, what it found and, when it failed, the fix.

Standard library only; the checks are made by the adapters (``ports.JrniCheck``, ``ports.ExchangeCheck``) and put
in order by ``usecases.diagnose``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class CheckState(enum.StrEnum):
    OK = "ok"
    FAILED = "failed"
    WARNING = "warning"  # works, but not as it should stay (TLS verification turned off)
    SKIPPED = "skipped"  # not checked: what it depends on failed or could not be checked, or nothing to check


@dataclass(frozen=True)
class Check:
    """One line of the checklist: ``detail`` says what was found in a sentence; ``fix`` what to change (None when
    nothing needs to)."""

    name: str
    state: CheckState
    detail: str
    fix: str | None = None

    @classmethod
    def ok(cls, name: str, detail: str) -> Check:
        return cls(name, CheckState.OK, detail)

    @classmethod
    def failed(cls, name: str, detail: str, fix: str) -> Check:
        return cls(name, CheckState.FAILED, detail, fix)

    @classmethod
    def warning(cls, name: str, detail: str, fix: str) -> Check:
        return cls(name, CheckState.WARNING, detail, fix)

    @classmethod
    def skipped(cls, name: str, detail: str) -> Check:
        return cls(name, CheckState.SKIPPED, detail)

    @property
    def passed(self) -> bool:
        """Whether it found what it checks working (a warning: working, though not as it should stay)."""
        return self.state in (CheckState.OK, CheckState.WARNING)


# The checklist's names, in its order. A mailbox's checks are named after it.
JRNI_REACHABLE = "JRNI reachable"
JRNI_LOGIN = "JRNI login"
JRNI_COMPANIES = "JRNI companies"
JRNI_CHECKS = (JRNI_REACHABLE, JRNI_LOGIN, JRNI_COMPANIES)

EXCHANGE_REACHABLE = "Exchange endpoint reachable"
EXCHANGE_TLS = "TLS certificate"
EXCHANGE_AUTHENTICATION = "Exchange authentication"
EXCHANGE_VERSION = "Exchange server version"
EXCHANGE_AUTODISCOVER = "autodiscover"
EXCHANGE_CHECKS = (
    EXCHANGE_REACHABLE,
    EXCHANGE_TLS,
    EXCHANGE_AUTHENTICATION,
    EXCHANGE_VERSION,
    EXCHANGE_AUTODISCOVER,
)

MAILBOXES = "mailboxes"  # which mailboxes were checked (a warning when only the first 50 mapped ones were)


def mailbox_checks(mailbox: str, *, write: bool) -> tuple[str, ...]:
    """The names of one mailbox's checks: access and read, then (``write``) the probe item's creation and removal."""
    access = (f"mailbox {mailbox}",)
    return access + (
        (f"write probe in {mailbox}: create", f"write probe in {mailbox}: delete") if write else ()
    )
