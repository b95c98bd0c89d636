"""The streaming planner: which mailboxes a task owns, how they are packed into connection groups, what goes on the
timer; as a Case table, and as properties over any mapping, limit and shard count."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calsync.streaming.planner import (
    ConnectionGroup,
    MailboxRef,
    Shard,
    StreamingPlan,
    connection_budget,
    plan_streaming,
    shard_of,
)


def refs(count: int, integration: str = "int-1", prefix: str = "m") -> list[MailboxRef]:
    return [MailboxRef(integration, f"{prefix}{n:04d}@bank.test") for n in range(count)]


@dataclass(frozen=True)
class Case:
    name: str
    mailboxes: list[MailboxRef]
    limit: int
    size: int
    groups: list[int]  # group sizes, in plan order
    timed: int


CASES = [
    Case("nothing mapped", [], 10, 200, [], 0),
    Case("one group is enough", refs(3), 10, 200, [3], 0),
    Case("full groups first", refs(450), 10, 200, [200, 200, 50], 0),
    Case("450 with a limit of 2: the rest on the timer", refs(450), 2, 200, [200, 200], 50),
    Case("no connection allowed: everything timed", refs(5), 0, 200, [], 5),
    Case("groups never mix integrations", refs(3, "int-a") + refs(2, "int-b"), 10, 200, [3, 2], 0),
    Case(
        "the limit binds per integration (each has its own account)",
        refs(5, "int-a") + refs(5, "int-b"),
        1,
        4,
        [4, 4],
        2,
    ),
    Case(
        "an address differing only in case is one mailbox",
        [MailboxRef("i", "A@x.test"), MailboxRef("i", "a@x.test")],
        10,
        200,
        [1],
        0,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_packing(case: Case) -> None:
    plan = plan_streaming(case.mailboxes, connection_limit=case.limit, group_size=case.size)
    assert [len(g.mailboxes) for g in plan.groups] == case.groups
    assert len(plan.timed) == case.timed
    for group in plan.groups:
        assert group.anchor in group.mailboxes  # X-AnchorMailbox is a mailbox of the group


def test_timed_mailboxes_are_named_and_stream_once_capacity_frees() -> None:
    first = plan_streaming(refs(450), connection_limit=2)
    assert len(first.timed) == 50
    raised = plan_streaming(refs(450), connection_limit=3, previous=first)
    assert not raised.timed and set(first.timed) <= {r for g in raised.groups[2:] for r in g.refs()}
    # The two full groups did not move.
    assert raised.groups[:2] == first.groups


def test_a_new_mapping_joins_a_group_with_room_and_moves_nobody() -> None:
    first = plan_streaming(refs(250), connection_limit=10)
    newcomer = MailboxRef("int-1", "aaa-new@bank.test")  # sorts first: must not push anyone along
    second = plan_streaming([*refs(250), newcomer], connection_limit=10, previous=first)
    assert second.groups[0] == first.groups[0]
    assert second.groups[1].anchor == first.groups[1].anchor
    assert set(second.groups[1].mailboxes) == {*first.groups[1].mailboxes, newcomer.mailbox}


def test_a_removed_anchor_re_anchors_its_group_and_others_stay() -> None:
    first = plan_streaming(refs(300), connection_limit=10)
    anchor = MailboxRef("int-1", first.groups[0].anchor)
    second = plan_streaming([r for r in refs(300) if r != anchor], connection_limit=10, previous=first)
    assert second.groups[0].anchor != anchor.mailbox and second.groups[0].anchor in first.groups[0].mailboxes
    assert set(second.groups[0].mailboxes) == set(first.groups[0].mailboxes) - {anchor.mailbox}
    assert second.groups[1] == first.groups[1]


def test_a_mailbox_that_is_no_address_never_anchors_a_group() -> None:
    # Stored before the admin API checked addresses, and sorting first: it would be every request's X-AnchorMailbox.
    hostile = MailboxRef("int-1", "a\x00@bank.test")
    plan = plan_streaming([hostile, *refs(3)], connection_limit=10)
    [group] = plan.groups
    assert group.anchor == "m0000@bank.test" and hostile.mailbox in group.mailboxes
    # Nor when its group loses its anchor.
    again = plan_streaming([hostile, *refs(3)[1:]], connection_limit=10, previous=plan)
    assert again.groups[0].anchor == "m0001@bank.test"


def test_a_lowered_limit_gives_the_last_groups_back_to_the_timer() -> None:
    first = plan_streaming(refs(450), connection_limit=3)
    second = plan_streaming(refs(450), connection_limit=1, previous=first)
    assert second.groups == first.groups[:1] and len(second.timed) == 250


def test_the_connection_limit_is_shared_between_tasks() -> None:
    assert [connection_budget(10, Shard(i, 3)) for i in range(3)] == [4, 3, 3]
    assert sum(connection_budget(2, Shard(i, 4)) for i in range(4)) == 2


def test_a_shard_that_does_not_exist_is_refused() -> None:
    with pytest.raises(ValueError):
        Shard(2, 2)


# ---- properties --------------------------------------------------------------------------------------------------

mailboxes = st.lists(
    st.builds(
        MailboxRef,
        st.sampled_from(["int-a", "int-b", "int-c"]),
        st.from_regex(r"[a-e]{1,3}@x\.test", fullmatch=True),
    ),
    max_size=60,
)


def check(plan: StreamingPlan, owned: set[MailboxRef], limit: int, size: int, shard: Shard) -> None:
    placed = [ref for group in plan.groups for ref in group.refs()] + list(plan.timed)
    assert len(placed) == len(set(placed)), "a mailbox is in two places"
    assert set(placed) == owned, "every owned mailbox is streamed or timed, and nothing else"
    for group in plan.groups:
        assert 1 <= len(group.mailboxes) <= size and group.anchor in group.mailboxes
    per_integration: dict[str, int] = {}
    for group in plan.groups:
        per_integration[group.integration_id] = per_integration.get(group.integration_id, 0) + 1
    assert all(n <= connection_budget(limit, shard) for n in per_integration.values())
    # No mailbox waits on the timer while its integration has a group with room or an unused connection.
    for ref in plan.timed:
        mine = [g for g in plan.groups if g.integration_id == ref.integration_id]
        assert len(mine) == connection_budget(limit, shard) and all(len(g.mailboxes) == size for g in mine)


@settings(max_examples=150, deadline=None)
@given(
    first=mailboxes,
    second=mailboxes,
    limit=st.integers(0, 5),
    size=st.integers(1, 7),
    count=st.integers(1, 4),
)
def test_plans_partition_respect_the_limits_and_stay_stable(
    first: list[MailboxRef], second: list[MailboxRef], limit: int, size: int, count: int
) -> None:
    shards = [Shard(i, count) for i in range(count)]
    plans = {s: plan_streaming(first, connection_limit=limit, group_size=size, shard=s) for s in shards}
    for shard, plan in plans.items():
        check(plan, {r for r in first if shard_of(r, count) == shard.index}, limit, size, shard)
    # The shards partition the mailboxes: each is owned by exactly one task.
    owners = [s for s, p in plans.items() for _ in p.owned()]
    assert len(owners) == len(set(first))
    assert set().union(*(p.owned() for p in plans.values())) == set(first)

    # Re-planned after the mappings changed: still valid, and a mailbox that stays mapped keeps its group.
    for shard, plan in plans.items():
        again = plan_streaming(second, connection_limit=limit, group_size=size, shard=shard, previous=plan)
        check(again, {r for r in second if shard_of(r, count) == shard.index}, limit, size, shard)
        before: dict[MailboxRef, ConnectionGroup] = {r: g for g in plan.groups for r in g.refs()}
        after: dict[MailboxRef, ConnectionGroup] = {r: g for g in again.groups for r in g.refs()}
        still = set(second)
        for ref, group in before.items():
            if ref in still and MailboxRef(ref.integration_id, group.anchor) in still:
                assert after[ref].anchor == group.anchor, "a streaming mailbox moved to another group"
        assert (
            plan_streaming(second, connection_limit=limit, group_size=size, shard=shard, previous=again)
            == again
        )
