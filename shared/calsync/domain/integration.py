"""An integration: one JRNI parent company connected to one Exchange organisation, with its options.

Only *references* to secrets live here (Secrets Manager names); the secrets themselves are read at run time through
the SecretStore port and never stored in DynamoDB or environment variables.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from calsync.domain.model import BLOCKING_FREE_BUSY, FreeBusy, ResourceKind, SyncOptions


class ExchangeApi(enum.StrEnum):
    """Which of Exchange's APIs an integration speaks: EWS (Exchange Server on premises, and Exchange Online until
    EWS is switched off there); Microsoft Graph is the next choice. The adapters are picked by it, in one place
    (``calsync.bootstrap``); nothing above them depends on it."""

    EWS = "ews"


class ExchangeAuth(enum.StrEnum):
    BASIC = "basic"
    NTLM = "ntlm"
    OAUTH2 = "oauth2"


class AccessType(enum.StrEnum):
    IMPERSONATION = "impersonation"  # one service account with ApplicationImpersonation over the mailboxes
    DELEGATE = "delegate"  # each mailbox owner granted the service account delegate access to the calendar


@dataclass(frozen=True)
class ExchangeConnection:
    """How to reach Exchange. ``secret_name`` holds ``{"username", "password"}`` or ``{"tenant_id", "client_id",
    "client_secret"}`` (OAuth2)."""

    endpoint: str
    secret_name: str
    auth: ExchangeAuth = ExchangeAuth.BASIC
    access_type: AccessType = AccessType.IMPERSONATION
    server_version: str = "Exchange2016"
    verify_tls: bool = True
    # Token endpoint for OAuth2; None means Microsoft Entra ID's for the tenant.
    token_url: str | None = None
    api: ExchangeApi = ExchangeApi.EWS


@dataclass(frozen=True)
class JrniConnection:
    """How to reach JRNI's admin API. ``secret_name`` holds ``{"app_id", "app_key", "email", "password"}``."""

    base_url: str
    company_id: str  # the parent company: its token works for every child company
    secret_name: str


@dataclass(frozen=True)
class Integration:
    """Everything an integration is configured with."""

    id: str
    name: str
    jrni: JrniConnection
    exchange: ExchangeConnection
    # Secrets Manager name of how JRNI authenticates to our webhook: {"username", "password"} or {"token"}.
    webhook_secret_name: str
    options: SyncOptions = field(default_factory=SyncOptions)
    subject_template: str | None = None  # None: the product's default template
    body_template: str | None = None
    appointment_lock: bool = True  # inbound: Outlook edits of JRNI bookings are put back as JRNI has them
    auto_confirm: bool = False  # inbound: a reservation moved in Outlook, or given an attendee, is confirmed
    inbound_free_busy: tuple[FreeBusy, ...] = BLOCKING_FREE_BUSY  # what blocks time in JRNI
    created_at: datetime | None = None
    # A test integration (an emulator, a staging server): its endpoints may be plain http and on loopback.
    test_endpoints: bool = False
    # When the subject or body template last changed (None: not since the integration was made): the next reconcile
    # brings the items of bookings still to come to the new templates.
    templates_changed_at: datetime | None = None
    # Counts the stored changes (0: not stored yet): a change is written only over the version it was made from.
    version: int = 0


class SyncState(enum.StrEnum):
    OK = "ok"
    SKIPPED = "skipped"  # e.g. a booking for an unmapped adviser
    ERROR = "error"  # a permanent failure: its message is in the dead-letter queue
    NEEDS_ATTENTION = (
        "needs_attention"  # calsync held something back until an operator decides (a mass delete)
    )


# The subjects of sync outcomes (MappingStatus.subject).
UNMAPPED = "unmapped"  # bookings skipped because the calendar has no mailbox
OUTLOOK_CHANGES = "Outlook changes"  # a mailbox's Outlook changes as a whole


def booking_subject(key: object) -> str:
    """Outbound: the booking's item in the calendar's mailbox."""
    return f"booking {key}"


def outlook_change_subject(key: object) -> str:
    """Inbound: an Outlook change to a booking's item, which JRNI may refuse."""
    return f"Outlook change to booking {key}"


@dataclass(frozen=True)
class MappingStatus:
    """What the operator sees for one mapped (or unmapped) staff member or resource."""

    integration_id: str
    kind: ResourceKind
    jrni_id: str
    state: SyncState
    detail: str = ""
    at: datetime | None = None
    # What the outcome is about ("booking 37001/100011", "Outlook changes"; "" the calendar as a whole): a problem
    # (an outcome other than ok) stays open under its subject until an outcome settles it, whatever else happens to
    # the calendar meanwhile.
    subject: str = ""
    # Subjects this outcome settles besides its own (which an ok outcome always settles).
    settles: tuple[str, ...] = ()

    @property
    def settled(self) -> tuple[str, ...]:
        """The open problems this outcome closes."""
        own = (self.subject,) if self.state is SyncState.OK else ()
        others = tuple(s for s in self.settles if s != self.subject)
        return tuple(dict.fromkeys(own + others))

    @property
    def is_problem(self) -> bool:
        return self.state is not SyncState.OK
