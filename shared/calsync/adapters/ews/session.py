"""What both Exchange adapters share: one connection's credentials, cached accounts, and calls whose errors are
translated into the domain's (with one retry when an OAuth token expired in a warm process)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from exchangelib import UTC as EWS_UTC
from exchangelib import CalendarItem, EWSDateTime
from exchangelib.folders import Calendar, Root
from exchangelib.items import ALL_OCCURRENCES, HARD_DELETE, SAVE_ONLY, SEND_TO_NONE
from exchangelib.properties import DistinguishedFolderId, Mailbox
from oauthlib.oauth2 import InvalidClientIdError, TokenExpiredError

from calsync.adapters.ews.connection import (
    DEFAULT_TIMEOUT_SECONDS,
    AccountCache,
    SelectiveVerifyHTTPAdapter,
    build_credentials,
    install_tls_adapter,
    version_for,
)
from calsync.adapters.ews.errors import Where, translated
from calsync.adapters.ews.stamps import register_stamp_fields
from calsync.domain import ExchangeConnection

T = TypeVar("T")

# Shared by every adapter in the process: a Lambda builds adapters per invocation, the connections outlive them.
ACCOUNTS = AccountCache()


class MailboxSession:
    """Exchange mailboxes reached through one ``ExchangeConnection`` with the credentials from its secret."""

    def __init__(
        self,
        connection: ExchangeConnection,
        secret: dict[str, str],
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        accounts: AccountCache | None = None,
    ) -> None:
        self.connection = connection
        self._secret = dict(secret)
        self._timeout = timeout
        self._accounts = accounts or ACCOUNTS
        # Fail at construction on what no request can fix: an unknown version, a secret without its fields.
        self._version = version_for(connection.server_version)
        _, self._who = build_credentials(connection, self._secret)
        register_stamp_fields()
        install_tls_adapter()
        if not connection.verify_tls:
            SelectiveVerifyHTTPAdapter.skip_verification_for(connection.endpoint)

    def _call(self, mailbox: str, operation: Callable[[Any], T]) -> T:
        """Run ``operation`` on the mailbox's Account, with Exchange's errors translated into the domain's."""
        where = Where(
            mailbox=mailbox,
            account=self._who,
            endpoint=self.connection.endpoint,
            secret_name=self.connection.secret_name,
            access_type=self.connection.access_type,
        )
        with translated(where):
            account = self._accounts.account(self.connection, self._secret, mailbox, self._timeout)
            try:
                return operation(account)
            except (InvalidClientIdError, TokenExpiredError):
                # The OAuth token expired in a warm process. requests-oauthlib noticed before sending anything and
                # exchangelib has already fetched a new token for the session, so one immediate retry is safe (a
                # write was not sent; a sync only reads).
                return operation(account)


def calendar_of(account: Any, mailbox: str) -> Any:
    """The mailbox's calendar by its well-known name, built without asking Exchange (``account.calendar`` would send
    two GetFolder requests first)."""
    folder_id = DistinguishedFolderId(id="calendar", mailbox=Mailbox(email_address=mailbox))
    return Calendar(root=Root(account=account), _distinguished_id=folder_id)


def ews_utc(value: datetime) -> Any:
    """A datetime as exchangelib writes it (UTC)."""
    return EWSDateTime.from_datetime(value.astimezone(UTC)).astimezone(EWS_UTC)


def create_items(
    account: Any, mailbox: str, items: Sequence[Mapping[str, Any]], *, chunk_size: int | None = None
) -> list[Any]:
    """New appointments in the mailbox's calendar, one per field set: saved only (nobody invited), no reminder. One
    CreateItem per ``chunk_size`` items; each answer is the item created (its id and change key) or the error
    Exchange gave for it."""
    calendar = calendar_of(account, mailbox)
    return list(
        account.bulk_create(
            folder=calendar,
            items=[
                CalendarItem(account=account, folder=calendar, reminder_is_set=False, **fields)
                for fields in items
            ],
            message_disposition=SAVE_ONLY,
            send_meeting_invitations=SEND_TO_NONE,
            chunk_size=chunk_size,
        )
    )


def create_item(account: Any, mailbox: str, **fields: Any) -> Any:
    """One new appointment, as ``create_items`` makes it: the item created, or Exchange's error raised."""
    [created] = create_items(account, mailbox, [fields])
    if isinstance(created, Exception):
        raise created
    return created


def delete_item(account: Any, item_id: str, changekey: str | None = None) -> Any:
    """Hard-delete one item, nobody told (no cancellation, no read receipt): one DeleteItem. The answer is Exchange's:
    ``True``, or the error it gave for the item."""
    [deleted] = account.bulk_delete(
        ids=[(item_id, changekey)],
        delete_type=HARD_DELETE,
        send_meeting_cancellations=SEND_TO_NONE,
        affected_task_occurrences=ALL_OCCURRENCES,
        suppress_read_receipts=True,
    )
    return deleted
