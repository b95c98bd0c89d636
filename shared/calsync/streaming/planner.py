"""Which mailboxes this streaming task owns, how their subscriptions are packed into connection groups, and which
mailboxes are synced on a timer because the connections allowed are full. Pure: no clock, no I/O.

Exchange carries at most 200 subscriptions on one ``GetStreamingEvents`` connection, all of one affinity group (the
``X-AnchorMailbox`` names the group's first mailbox), and limits the hanging connections of one account (Exchange
Online and 2016/2019: 10; 2013: 3). Groups never mix integrations: each integration connects with its own account.
https://learn.microsoft.com/en-us/exchange/client-developer/exchange-web-services/how-to-maintain-affinity-between-group-of-subscriptions-and-mailbox-server
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import groupby

from calsync.domain import InvalidInputError, validation

MAX_GROUP_SIZE = 200  # subscription ids per GetStreamingEvents connection (Exchange's documented maximum)


@dataclass(frozen=True, order=True)
class MailboxRef:
    """One mapped mailbox of one integration (the same mailbox mapped in two integrations is two refs)."""

    integration_id: str
    mailbox: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "mailbox", self.mailbox.strip().lower())


@dataclass(frozen=True)
class Shard:
    """This task's share of the mailboxes: task ``index`` of ``count``."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"shard {self.index} of {self.count} does not exist")


@dataclass(frozen=True)
class ConnectionGroup:
    """The subscriptions carried by one streaming connection: mailboxes of one integration, anchored on one of them."""

    integration_id: str
    anchor: str  # X-AnchorMailbox of every request of the group, and the mailbox the connection impersonates
    mailboxes: tuple[str, ...]  # sorted; includes the anchor

    @property
    def key(self) -> tuple[str, str]:
        """What identifies the group across re-plans (its members may change, its anchor does not)."""
        return self.integration_id, self.anchor

    def refs(self) -> list[MailboxRef]:
        return [MailboxRef(self.integration_id, mailbox) for mailbox in self.mailboxes]


@dataclass(frozen=True)
class StreamingPlan:
    groups: tuple[ConnectionGroup, ...] = ()
    timed: tuple[MailboxRef, ...] = ()  # owned, but beyond the connections allowed: synced on a timer
    _index: dict[MailboxRef, ConnectionGroup] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._index.update({ref: group for group in self.groups for ref in group.refs()})

    def streaming(self) -> set[MailboxRef]:
        """Every mailbox carried by a streaming connection."""
        return set(self._index)

    def owned(self) -> set[MailboxRef]:
        """Every mailbox this task is responsible for."""
        return set(self._index) | set(self.timed)

    def group_of(self, ref: MailboxRef) -> ConnectionGroup | None:
        return self._index.get(ref)


def shard_of(ref: MailboxRef, count: int) -> int:
    """The task (of ``count``) that owns ``ref``: a stable hash, so every task decides alike without talking."""
    digest = hashlib.sha256(f"{ref.integration_id}\n{ref.mailbox}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


def connection_budget(connection_limit: int, shard: Shard) -> int:
    """Connections this task may hold per integration: the account's limit is shared by every task using it."""
    share, rest = divmod(max(connection_limit, 0), shard.count)
    return share + (1 if shard.index < rest else 0)


def plan_streaming(
    mailboxes: Iterable[MailboxRef],
    *,
    connection_limit: int,
    shard: Shard = Shard(),
    group_size: int = MAX_GROUP_SIZE,
    previous: StreamingPlan | None = None,
) -> StreamingPlan:
    """This task's mailboxes packed into connection groups, the rest on timed sync.

    Stable across re-plans: a mailbox already streaming stays in its group while it is mapped, and a group keeps its
    anchor while the anchor is mapped, so a new mapping costs one subscription rather than a reshuffle."""
    if not 1 <= group_size <= MAX_GROUP_SIZE:
        raise ValueError(f"group_size must be between 1 and {MAX_GROUP_SIZE}")
    owned = sorted({ref for ref in mailboxes if shard_of(ref, shard.count) == shard.index})
    budget = connection_budget(connection_limit, shard)
    earlier = previous.groups if previous else ()
    groups: list[ConnectionGroup] = []
    timed: list[MailboxRef] = []
    for integration_id, refs in groupby(owned, key=lambda ref: ref.integration_id):
        members = [ref.mailbox for ref in refs]
        before = [g for g in earlier if g.integration_id == integration_id]
        packed, rest = _pack(integration_id, members, before, budget, group_size)
        groups.extend(packed)
        timed.extend(MailboxRef(integration_id, mailbox) for mailbox in rest)
    return StreamingPlan(groups=tuple(groups), timed=tuple(timed))


def _anchor_of(members: list[str]) -> str:
    """The group's anchor: its first mailbox that is a valid address (every request of the group carries it in
    ``X-AnchorMailbox``, so one that is not, stored before addresses were checked, would make Exchange refuse the
    whole group; such a mailbox is refused alone instead)."""
    for mailbox in members:
        try:
            validation.mailbox_address(mailbox)
        except InvalidInputError:
            continue
        return mailbox
    return members[0]


def _pack(
    integration_id: str, mailboxes: list[str], before: list[ConnectionGroup], budget: int, size: int
) -> tuple[list[ConnectionGroup], list[str]]:
    """One integration's mailboxes (sorted) into at most ``budget`` groups of at most ``size``; the rest returned."""
    wanted = set(mailboxes)
    kept: list[tuple[str, list[str]]] = []  # (anchor, members), earlier groups first, in their order
    placed: set[str] = set()
    for group in before:
        if len(kept) == budget:
            break  # the limit was lowered: the last groups give their mailboxes back
        members = [m for m in group.mailboxes if m in wanted and m not in placed]
        if not members:
            continue
        # The anchor stays while it is mapped; otherwise the group is re-anchored (a new group, for the runner).
        anchor = group.anchor if group.anchor in members else _anchor_of(members)
        members = ([anchor] + [m for m in members if m != anchor])[:size]
        kept.append((anchor, members))
        placed.update(members)
    waiting = deque(m for m in mailboxes if m not in placed)
    for _, members in kept:  # fill free places before opening another connection
        while waiting and len(members) < size:
            members.append(waiting.popleft())
    while waiting and len(kept) < budget:
        members = [waiting.popleft() for _ in range(min(size, len(waiting)))]
        kept.append((_anchor_of(members), members))
    groups = [ConnectionGroup(integration_id, anchor, tuple(sorted(members))) for anchor, members in kept]
    return groups, list(waiting)
