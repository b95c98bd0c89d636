"""Fixtures for the EWS emulator tests: one emulator for the session, emptied before each test.

Every SOAP body exchanged is captured, so ``test_schema_conformance`` (run last) can check the whole suite's traffic
against Microsoft's schema.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from exchangelib import (
    BASIC,
    DELEGATE,
    IMPERSONATION,
    Account,
    Build,
    Configuration,
    Credentials,
    EWSTimeZone,
    Version,
)
from exchangelib.protocol import BaseProtocol, Protocol

from emulators.ews.settings import EmulatorSettings
from emulators.ews.testing import EwsEmulator

PASSWORD = "pass-for-tests"
SERVICE = "svc@example.com"
TZ = EWSTimeZone("Europe/London")

# Everything every test exchanged with the emulator, across resets: (direction, operation, XML bytes, client).
CAPTURED: list[tuple[str, str, bytes, str]] = []


@pytest.fixture(scope="session")
def ews_server() -> Iterator[EwsEmulator]:
    settings = EmulatorSettings(validate_responses=True, capture=True)
    with EwsEmulator(settings) as emulator:
        yield emulator
        CAPTURED.extend(settings.captured)


@pytest.fixture
def ews(ews_server: EwsEmulator) -> Iterator[EwsEmulator]:
    """The emulator, empty, with default settings restored afterwards."""
    ews_server.reset()
    yield ews_server
    CAPTURED.extend(ews_server.settings.captured)
    ews_server.settings.captured.clear()
    ews_server.control("DELETE", "faults")
    defaults = EmulatorSettings()
    ews_server.control(
        "POST",
        "config",
        {
            "latency_ms": 0,
            "max_concurrency": defaults.max_concurrency,
            "max_streaming_connections": defaults.max_streaming_connections,
            "max_subscriptions_per_connection": defaults.max_subscriptions_per_connection,
            "subscription_idle_seconds": defaults.subscription_idle_seconds,
            "heartbeat_seconds": defaults.heartbeat_seconds,
        },
    )


_DEFAULT_ADAPTER = BaseProtocol.HTTP_ADAPTER_CLS


@pytest.fixture(autouse=True)
def _fresh_exchangelib() -> Iterator[None]:
    """Each test starts with no cached exchangelib connections and the default HTTP adapter.

    exchangelib keeps one Protocol (with its pooled, possibly NTLM-authenticated connections) per endpoint and
    user, whatever the auth type, so without this a Basic connection could quietly serve the next test's NTLM one.
    """
    Protocol.clear_cache()
    BaseProtocol.HTTP_ADAPTER_CLS = _DEFAULT_ADAPTER
    yield
    Protocol.clear_cache()
    BaseProtocol.HTTP_ADAPTER_CLS = _DEFAULT_ADAPTER


def make_config(
    ews: EwsEmulator, user: str, auth_type: str = BASIC, password: str = PASSWORD, **kwargs: Any
) -> Configuration:
    """An exchangelib configuration that goes straight to the emulator: no autodiscover, no version guessing."""
    return Configuration(
        service_endpoint=ews.ews_url,
        credentials=Credentials(user, password),
        auth_type=auth_type,
        version=Version(build=Build(15, 1, 2507, 6)),
        **kwargs,
    )


@pytest.fixture
def account_for(ews: EwsEmulator) -> Callable[..., Account]:
    """Build an exchangelib Account for ``address``: as its owner, or through the service account."""

    def build(
        address: str,
        *,
        via: str | None = None,
        access_type: str = DELEGATE,
        auth_type: str = BASIC,
        password: str = PASSWORD,
        **config: Any,
    ) -> Account:
        cfg = make_config(ews, via or address, auth_type=auth_type, password=password, **config)
        return Account(address, config=cfg, autodiscover=False, access_type=access_type, default_timezone=TZ)

    return build


@pytest.fixture
def alice(ews: EwsEmulator, account_for: Callable[..., Account]) -> Account:
    """alice@example.com, signed in as herself."""
    ews.add_account(
        "alice@example.com", PASSWORD, display_name="Alice Adviser", time_zone="GMT Standard Time"
    )
    return account_for("alice@example.com")


__all__ = ["CAPTURED", "IMPERSONATION", "PASSWORD", "SERVICE", "TZ", "make_config"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The schema conformance check reads what every other test exchanged, so it runs last."""
    last = [i for i in items if i.nodeid.endswith("test_every_exchanged_body_conforms_to_the_ews_schema")]
    items[:] = [i for i in items if i not in last] + last
