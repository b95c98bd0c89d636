"""The overall deadline of one piece of work: the sooner of nested deadlines holds, calls started at once run under
it, and a timeout is cut to what is left."""

from __future__ import annotations

import pytest

from calsync import deadline, parallel
from calsync.domain import DeadlineExceededError


def test_no_deadline_leaves_timeouts_as_they_are() -> None:
    assert deadline.current() is None
    assert deadline.bounded(10.0, "JRNI") == 10.0


def test_a_timeout_is_cut_to_what_the_deadline_leaves() -> None:
    with deadline.within(2.0) as current:
        assert deadline.current() is current
        assert 1.5 < deadline.bounded(10.0, "JRNI") <= 2.0
        assert deadline.bounded(0.5, "JRNI") == 0.5
    assert deadline.current() is None


def test_an_inner_deadline_never_extends_an_outer_one() -> None:
    with deadline.within(1.0) as outer:
        with deadline.within(30.0) as inner:
            assert inner is outer
        with deadline.within(0.5) as sooner:
            assert sooner.at < outer.at


def test_nothing_left_names_the_call_and_the_allowance() -> None:
    with deadline.within(0.0), pytest.raises(DeadlineExceededError, match=r"JRNI's answer .* within the 0 s"):
        deadline.bounded(10.0, "JRNI's answer to GET /x")


def test_calls_started_at_once_run_under_the_starting_call_s_deadline() -> None:
    with deadline.within(5.0) as current:
        assert parallel.start(deadline.current).result() is current
    assert parallel.start(deadline.current).result() is None
