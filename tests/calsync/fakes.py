"""In-memory fakes of the ports (not mocks): they keep state and enforce the same rules as the real adapters."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

from calsync.domain import EventContent, JrniKey, Link, StaleStateError, Stamp
from calsync.ports import RemoteRef


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
