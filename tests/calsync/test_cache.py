"""The webhook function's read-through cache of integrations: a burst of deliveries reads the integration once, an
integration created a moment ago is found at once, and a change is seen within the cache's time."""

from __future__ import annotations

from dataclasses import replace

from calsync.adapters.cache import CachedIntegrations
from tests.calsync.builders import INTEGRATION, integration
from tests.calsync.fakes import FakeIntegrations


class CountingIntegrations(FakeIntegrations):
    reads = 0

    def get(self, integration_id: str):  # type: ignore[no-untyped-def]
        self.reads += 1
        return super().get(integration_id)


def test_an_integration_found_is_read_once_within_the_cache_time_then_afresh() -> None:
    now = [100.0]
    store = CountingIntegrations(integration())
    cached = CachedIntegrations(store, 15.0, clock=lambda: now[0])
    first = cached.get(INTEGRATION)
    # When the webhook secret changes behind it, within 15 s the cached one is still served, without a read
    store.items[INTEGRATION] = replace(integration(), webhook_secret_name="rotated")
    now[0] += 14.9
    assert cached.get(INTEGRATION) == first
    assert store.reads == 1
    # Then after 15 s the change is seen
    now[0] += 0.2
    assert cached.get(INTEGRATION).webhook_secret_name == "rotated"  # type: ignore[union-attr]
    assert store.reads == 2


def test_an_unknown_integration_is_not_remembered_and_a_removed_one_goes_after_the_cache_time() -> None:
    now = [0.0]
    store = CountingIntegrations()
    cached = CachedIntegrations(store, 15.0, clock=lambda: now[0])
    assert cached.get(INTEGRATION) is None
    # An integration created a moment after a miss is found at once
    cached.create(integration())
    assert cached.get(INTEGRATION) is not None
    assert [i.id for i in cached.all()] == [INTEGRATION]
    # Removed: still served until the cache time is over, then gone
    del store.items[INTEGRATION]
    now[0] += 10
    assert cached.get(INTEGRATION) is not None
    now[0] += 10
    assert cached.get(INTEGRATION) is None


def test_a_change_or_a_delete_made_through_the_cache_is_seen_by_it_at_once() -> None:
    store = CountingIntegrations(integration())
    cached = CachedIntegrations(store, 15.0, clock=lambda: 0.0)
    read = cached.get(INTEGRATION)
    assert read is not None
    changed = cached.update(replace(read, name="Renamed"), expected_version=read.version)
    assert cached.get(INTEGRATION) == changed and changed.name == "Renamed"
    assert cached.delete(INTEGRATION) is True
    assert cached.get(INTEGRATION) is None
