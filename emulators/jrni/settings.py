"""The JRNI emulator's tunables: what the command line and the tests can set."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class JrniSettings:
    """Defaults follow JRNI's documented behaviour where there is one (see README.md); tests lower the timings."""

    latency_ms: int = 0
    # JRNI: "valid 24 h from last use" (dev.jrni.com /reference/auth-token-expiry).
    token_idle_seconds: float = 24 * 3600
    # Webhook delivery; JRNI documents no retry policy, so these are the emulator's choice (README.md).
    webhook_timeout_seconds: float = 5.0
    webhook_max_attempts: int = 8
    webhook_backoff_seconds: float = 1.0  # first retry after this; doubles each time
    webhook_backoff_max_seconds: float = 60.0
    # How long a reorder_webhooks fault holds a delivery waiting for a later one to overtake it.
    reorder_hold_seconds: float = 0.5
