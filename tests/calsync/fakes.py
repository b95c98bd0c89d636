"""In-memory fakes of the ports (not mocks): they keep state and enforce the same rules as the real adapters."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

from calsync.domain import (
    Booking,
    ConflictError,
    EventContent,
    Integration,
    JrniKey,
    Link,
    Mapping,
    MappingStatus,
    PermanentError,
    ResourceKind,
    StaleStateError,
    Stamp,
)
from calsync.ports import JrniCalendar, OutboundMessage, RemoteRef


@dataclass
class FakeItem:
    remote_id: str
    version: str
    content: EventContent


class FakeCalendar:
    """Mailboxes of stamped items; counts remote requests like the EWS adapter would make them."""

    name = "fake"

    def __init__(self) -> None:
        self.mailboxes: dict[str, dict[str, FakeItem]] = {}
        self.requests = 0
        self._ids = itertools.count(1)
        # Set to a method name to make the next call to it raise (after doing its work, like a lost reply).
        self.crash_after: str | None = None

    def _maybe_crash(self, method: str) -> None:
        if self.crash_after == method:
            self.crash_after = None
            raise ConnectionError(f"crash after {method}")

    def create_event(self, mailbox: str, content: EventContent) -> RemoteRef:
        self.requests += 1
        remote_id = f"item-{next(self._ids)}"
        self.mailboxes.setdefault(mailbox, {})[remote_id] = FakeItem(remote_id, "v1", content)
        self._maybe_crash("create_event")
        return RemoteRef(remote_id, "v1")

    def update_event(self, mailbox: str, remote_id: str, content: EventContent) -> RemoteRef | None:
        self.requests += 1
        item = self.mailboxes.get(mailbox, {}).get(remote_id)
        if item is None:
            return None
        item.content = content
        item.version = f"v{int(item.version[1:]) + 1}"
        self._maybe_crash("update_event")
        return RemoteRef(remote_id, item.version)

    def delete_event(self, mailbox: str, remote_id: str) -> None:
        self.requests += 1
        self.mailboxes.get(mailbox, {}).pop(remote_id, None)
        self._maybe_crash("delete_event")

    def find_stamped(self, mailbox: str, stamp: Stamp) -> list[RemoteRef]:
        self.requests += 1
        return [RemoteRef(i.remote_id, i.version) for i in self.mailboxes.get(mailbox, {}).values()
                if i.content.stamp == stamp]  # fmt: skip

    def contents(self) -> dict[str, list[EventContent]]:
        """Every mailbox's items (empty mailboxes left out), for comparing calendars."""
        return {m: sorted((i.content for i in items.values()), key=lambda c: c.fingerprint)
                for m, items in self.mailboxes.items() if items}  # fmt: skip


class FakeLinkStore:
    """Links with the same optimistic locking as the DynamoDB store (``version_number``)."""

    def __init__(self) -> None:
        self.links: dict[tuple[str, JrniKey, str], Link] = {}

    def links_for(self, integration_id: str, jrni_key: JrniKey) -> list[Link]:
        return [link for (i, k, _), link in self.links.items() if i == integration_id and k == jrni_key]

    def save(self, link: Link) -> Link:
        key = (link.integration_id, link.jrni_key, link.mailbox)
        current = self.links.get(key)
        if (current.version_number if current else 0) != link.version_number:
            raise StaleStateError("link changed since it was read")
        stored = replace(link, version_number=link.version_number + 1)
        self.links[key] = stored
        return stored

    def delete(self, link: Link) -> None:
        key = (link.integration_id, link.jrni_key, link.mailbox)
        current = self.links.get(key)
        if current is not None and current.version_number != link.version_number:
            raise StaleStateError("link changed since it was read")
        self.links.pop(key, None)


class FakeIntegrations:
    def __init__(self, *integrations: Integration) -> None:
        self.items = {i.id: i for i in integrations}

    def get(self, integration_id: str) -> Integration | None:
        return self.items.get(integration_id)

    def all(self) -> list[Integration]:
        return list(self.items.values())

    def create(self, integration: Integration) -> None:
        if integration.id in self.items:
            raise ConflictError(f"integration {integration.id} exists")
        self.items[integration.id] = integration


class FakeMappings:
    """Mappings with the same 1:1 rule as the DynamoDB store, and recorded statuses."""

    def __init__(self, *mappings: Mapping) -> None:
        self.items: dict[tuple[str, ResourceKind, str], Mapping] = {}
        self.status: dict[tuple[str, ResourceKind, str], MappingStatus] = {}
        for mapping in mappings:
            self.put(mapping)

    def mappings(self, integration_id: str) -> list[Mapping]:
        return [m for (i, _, _), m in self.items.items() if i == integration_id]

    def put(self, mapping: Mapping) -> None:
        for key, other in self.items.items():
            if other.mailbox == mapping.mailbox and other.integration_id == mapping.integration_id and \
                    key[1:] != (mapping.kind, mapping.jrni_id):  # fmt: skip
                raise ConflictError(f"{mapping.mailbox} is mapped to {other.kind.value} {other.jrni_id}")
        self.items[(mapping.integration_id, mapping.kind, mapping.jrni_id)] = mapping

    def remove(self, integration_id: str, kind: ResourceKind, jrni_id: str) -> bool:
        return self.items.pop((integration_id, kind, jrni_id), None) is not None

    def statuses(self, integration_id: str) -> list[MappingStatus]:
        return [s for (i, _, _), s in self.status.items() if i == integration_id]

    def record_status(self, status: MappingStatus) -> None:
        self.status[(status.integration_id, status.kind, status.jrni_id)] = status


class FakeSecrets:
    def __init__(self, **secrets: dict[str, str]) -> None:
        self.secrets = secrets

    def get(self, name: str) -> dict[str, str]:
        if name not in self.secrets:
            raise PermanentError(f"secret {name!r} does not exist")
        return self.secrets[name]


class FakeQueue:
    def __init__(self) -> None:
        self.sent: list[OutboundMessage] = []

    def send(self, messages: list[OutboundMessage], delivery_id: str = "") -> None:
        self.sent.extend(messages)


class FakeBookingSource:
    """JRNI as a dict of bookings; ``calendars`` for the admin API."""

    def __init__(self, *bookings: Booking, calendars: list[JrniCalendar] | None = None) -> None:
        self.bookings = {b.key: b for b in bookings}
        self.listed = calendars or []
        self.reads = 0

    def get_booking(self, company_id: str, booking_id: str) -> Booking | None:
        self.reads += 1
        return self.bookings.get(JrniKey(company_id, booking_id))

    def calendars(self) -> list[JrniCalendar]:
        return list(self.listed)
