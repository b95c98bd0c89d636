"""Read-through caches for a warm function environment."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from calsync.domain import Integration
from calsync.ports import IntegrationStore

# How long the webhook function trusts an integration it read: every JRNI delivery needs the integration (to check
# the credentials) and nothing else of it, and a burst of deliveries would read the same item each time.
WEBHOOK_INTEGRATION_SECONDS = 15.0


class CachedIntegrations:
    """An ``IntegrationStore`` whose ``get`` remembers each integration found for ``seconds``.

    Only what was found is remembered: an integration created a moment ago is read as soon as it is asked for. A
    change to one (a new webhook secret, its removal) is seen within ``seconds``; whatever is queued meanwhile is
    checked again by the outbound function, which always reads the integration afresh."""

    def __init__(
        self, store: IntegrationStore, seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._store = store
        self._seconds = seconds
        self._clock = clock
        self._found: dict[str, tuple[float, Integration]] = {}
        self._lock = threading.Lock()

    def get(self, integration_id: str) -> Integration | None:
        now = self._clock()
        with self._lock:
            cached = self._found.get(integration_id)
        if cached is not None and now - cached[0] < self._seconds:
            return cached[1]
        integration = self._store.get(integration_id)
        with self._lock:
            if integration is None:
                self._found.pop(integration_id, None)
            else:
                self._found[integration_id] = (now, integration)
        return integration

    def all(self) -> list[Integration]:
        return self._store.all()

    def create(self, integration: Integration) -> Integration:
        return self._store.create(integration)

    def update(self, integration: Integration, expected_version: int) -> Integration:
        stored = self._store.update(integration, expected_version)
        with self._lock:
            self._found.pop(integration.id, None)
        return stored

    def delete(self, integration_id: str) -> bool:
        with self._lock:
            self._found.pop(integration_id, None)
        return self._store.delete(integration_id)
