"""The emulator's tunables: what the command line and ``POST /_emulator/config`` can set."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class EmulatorSettings:
    """Limits default to Exchange's documented defaults (see README.md); tests may lower them."""

    latency_ms: int = 0
    validate_responses: bool = False
    # Exchange 2016 CU-era build; exchangelib derives RequestServerVersion Exchange2016 from 15.1.
    build: tuple[int, int, int, int] = (15, 1, 2507, 6)
    max_concurrency: int = 27  # EWSMaxConcurrency, per authenticated account
    max_streaming_connections: int = 10  # hanging connection limit, per authenticated account
    max_subscriptions_per_connection: int = 200
    subscription_idle_seconds: float = 30 * 60  # a subscription without a connection expires after 30 minutes
    heartbeat_seconds: float = 30.0  # streaming keep-alive envelopes
    pull_timeout_default_minutes: int = 30
    find_count_limit: int = 1000
    token_lifetime_seconds: int = 3600
    # Every exchanged body is kept for schema checks when set (tests set it; off for benchmarks).
    capture: bool = False
    # (direction, operation, body, client User-Agent): direction is request / response / fault
    captured: list[tuple[str, str, bytes, str]] = field(default_factory=list)

    @property
    def server_version_name(self) -> str:
        return "V2017_07_11"
