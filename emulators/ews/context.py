"""Who is asking, as whom, for which mailbox: authentication result, SOAP headers, and access checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lxml import etree

from emulators.ews.errors import EwsError, SoapFault
from emulators.ews.model import FOLDER_PREFIX, Mailbox, Store, normalize_address
from emulators.ews.settings import EmulatorSettings
from emulators.ews.xml import T_NS, child, children, local, parse_naive_or_aware, text_of

# Delegate permission levels (Outlook's calendar roles), weakest first.
_LEVELS = {"None": 0, "Reviewer": 1, "Author": 2, "Editor": 3}

VERSIONS = (
    "Exchange2007",
    "Exchange2007_SP1",
    "Exchange2010",
    "Exchange2010_SP1",
    "Exchange2010_SP2",
    "Exchange2013",
    "Exchange2013_SP1",
    "Exchange2015",
    "Exchange2016",
)


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: a user (by address) or an OAuth application (by client id)."""

    kind: str  # "user" | "app"
    name: str


@dataclass
class RequestContext:
    store: Store
    settings: EmulatorSettings
    principal: Principal
    version: str = "Exchange2016"
    impersonated: str | None = None
    time_zone: str | None = None
    anchor_mailbox: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # The running emulator (subscriptions, faults, stats) for the operations that need more than the store.
    emulator: Any = None

    @property
    def acting_user(self) -> str | None:
        """Whose rights apply: the impersonated user, else the authenticated user (apps have none of their own)."""
        if self.impersonated:
            return self.impersonated
        return self.principal.name if self.principal.kind == "user" else None

    @property
    def uses_meeting_time_zone(self) -> bool:
        """Exchange 2007 SP1 has one MeetingTimeZone; 2010 and later have StartTimeZone / EndTimeZone."""
        return self.version in ("Exchange2007", "Exchange2007_SP1")

    def read_soap_header(self, header: etree._Element | None) -> None:
        """Take RequestServerVersion, ExchangeImpersonation and TimeZoneContext from the SOAP header."""
        version_el = child(header, T_NS, "RequestServerVersion")
        if version_el is not None:
            self.version = version_el.get("Version", "Exchange2016")
        impersonation = child(header, T_NS, "ExchangeImpersonation")
        if impersonation is not None:
            sid = child(impersonation, T_NS, "ConnectingSID")
            if sid is not None:
                for el in sid:
                    if local(el) in ("PrimarySmtpAddress", "SmtpAddress", "PrincipalName", "SID") and el.text:
                        self.impersonated = normalize_address(el.text)
                        break
        tz_context = child(header, T_NS, "TimeZoneContext")
        definition = child(tz_context, T_NS, "TimeZoneDefinition")
        if definition is not None:
            from emulators.ews import timezones

            zone_id = definition.get("Id")
            if zone_id and not timezones.is_known(zone_id):
                raise SoapFault(
                    "ErrorTimeZone", f"The time zone '{zone_id}' in TimeZoneContext is not valid."
                )
            self.time_zone = zone_id

    def datetime_value(self, value: str) -> datetime:
        """An xs:dateTime of the request as aware UTC: without an offset it is wall-clock time in the TimeZoneContext
        zone, else UTC; ValueError when it is not a date-time."""
        from emulators.ews import timezones

        parsed = parse_naive_or_aware(value)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezones.zone(self.time_zone))
        return parsed.astimezone(UTC)

    def check_impersonation(self) -> None:
        """Refuse the whole request when impersonating someone the caller may not impersonate, or when an app-only
        OAuth token comes without ExchangeImpersonation (it has no user of its own to act as, Exchange Online)."""
        if not self.impersonated:
            if self.principal.kind == "app":
                raise SoapFault(
                    "ErrorInvalidExchangeImpersonationHeaderData",
                    "An app-only token must name the mailbox to act on in the ExchangeImpersonation header.",
                )
            return
        if self.store.mailbox(self.impersonated) is None:
            raise SoapFault(
                "ErrorNonExistentMailbox",
                f"The SMTP address has no mailbox associated with it: {self.impersonated}",
            )
        allowed = (
            self.store.can_impersonate(self.principal.name, self.impersonated)
            if self.principal.kind == "user"
            else _app_allows(self.store, self.principal.name, self.impersonated)
        )
        if not allowed:
            raise SoapFault(
                "ErrorImpersonateUserDenied",
                "The account does not have permission to impersonate the requested user.",
            )

    def default_mailbox(self) -> Mailbox:
        """The mailbox a request means when it names none: the impersonated user, else the caller.

        X-AnchorMailbox is only a routing hint (which server gets the request), never the mailbox acted on.
        """
        for candidate in (self.impersonated, self.acting_user):
            if candidate:
                mailbox = self.store.mailbox(candidate)
                if mailbox is not None:
                    return mailbox
        raise EwsError("ErrorNonExistentMailbox", "No mailbox is associated with this request.")

    def mailbox_by_address(self, address: str) -> Mailbox:
        mailbox = self.store.mailbox(address)
        if mailbox is None:
            raise EwsError(
                "ErrorNonExistentMailbox", f"The SMTP address has no mailbox associated with it: {address}"
            )
        return mailbox

    def check_access(self, mailbox: Mailbox, need: str = "read") -> None:
        """Raise ErrorAccessDenied unless the acting user may ``need`` (read / create / write) in ``mailbox``."""
        acting = self.acting_user
        if acting == mailbox.address:
            return
        if acting is None:
            # An application token without impersonation acts on the mailboxes it was granted.
            if _app_allows(self.store, self.principal.name, mailbox.address):
                return
            raise EwsError("ErrorAccessDenied", "Access is denied. Check credentials and try again.")
        level = _LEVELS.get(self.store.delegate_permission(mailbox.address, acting), 0)
        required = {"read": 1, "create": 2, "write": 3}[need]
        if level < required:
            raise EwsError("ErrorAccessDenied", "Access is denied. Check credentials and try again.")

    def effective_rights(self, mailbox: Mailbox) -> set[str]:
        """The EffectiveRights the acting user has on ``mailbox``'s calendar: all for the owner (or someone acting as
        the owner), Outlook's role otherwise (Reviewer reads; Author also creates; Editor also modifies and deletes)."""
        everything = {"CreateAssociated", "CreateContents", "CreateHierarchy", "Delete", "Modify", "Read"}
        acting = self.acting_user
        if acting == mailbox.address or (
            acting is None and _app_allows(self.store, self.principal.name, mailbox.address)
        ):
            return everything
        level = _LEVELS.get(self.store.delegate_permission(mailbox.address, acting), 0) if acting else 0
        rights = set()
        if level >= 1:
            rights.add("Read")
        if level >= 2:
            rights.add("CreateContents")
        if level >= 3:
            rights |= {"Delete", "Modify"}
        return rights

    def resolve_folder(self, folder_el: etree._Element) -> tuple[Mailbox, str]:
        """The mailbox and folder name a ``DistinguishedFolderId`` or ``FolderId`` element points to."""
        from emulators.ews.model import decode_id

        name = local(folder_el)
        if name == "DistinguishedFolderId":
            folder = folder_el.get("Id", "")
            mailbox_el = child(folder_el, T_NS, "Mailbox")
            address = text_of(mailbox_el, T_NS, "EmailAddress")
            mailbox = self.mailbox_by_address(address) if address else self.default_mailbox()
            return mailbox, folder
        if name == "FolderId":
            decoded = decode_id(folder_el.get("Id", ""))
            if decoded is None or decoded.kind != "folder":
                raise EwsError("ErrorInvalidIdMalformed", "Id is malformed.")
            owner = self.store.mailboxes.get(decoded.mailbox_num)
            if owner is None or not _folder_exists(owner, decoded.folder):
                raise EwsError("ErrorFolderNotFound", "The specified folder could not be found in the store.")
            return owner, decoded.folder
        raise EwsError("ErrorInvalidRequest", f"Unsupported folder id element {name}.")

    def calendar_folder_of(self, folder_el: etree._Element, need: str = "read") -> tuple[Mailbox, str]:
        """Resolve a folder id that must be a calendar folder this caller may use: its mailbox and folder name."""
        mailbox, folder = self.resolve_folder(folder_el)
        self.check_access(mailbox, need)
        if not mailbox.is_calendar(folder):
            raise EwsError(
                "ErrorFolderNotFound", f"The emulator keeps calendars only; folder '{folder}' holds no items."
            )
        return mailbox, folder


def _folder_exists(mailbox: Mailbox, name: str) -> bool:
    """A folder id names a well-known folder, or a calendar folder made in that mailbox (and still there)."""
    return not name.startswith(FOLDER_PREFIX) or mailbox.is_calendar(name)


def folder_ids(parent: etree._Element | None) -> list[etree._Element]:
    """The DistinguishedFolderId / FolderId children of a folder-ids container."""
    if parent is None:
        return []
    return [el for el in parent if local(el) in ("DistinguishedFolderId", "FolderId")]


def _app_allows(store: Store, client_id: str, mailbox: str) -> bool:
    app = store.oauth_apps.get(client_id)
    return app is not None and (app.mailboxes is None or normalize_address(mailbox) in app.mailboxes)


__all__ = ["VERSIONS", "Principal", "RequestContext", "children", "folder_ids"]
