"""Fixtures the adapter tests share. JRNI: one JRNI emulator per module, reset and seeded for each test, and the
adapter's client configured against it. EWS: one EWS emulator per module (validating its own answers), and a clean
exchangelib around each test (the EWS test modules use it for every test)."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest
from exchangelib.protocol import BaseProtocol, Protocol

from calsync.adapters.ews.connection import SelectiveVerifyHTTPAdapter
from calsync.adapters.ews.session import ACCOUNTS
from calsync.adapters.jrni import JrniClient
from emulators.common.server import BackgroundServer
from emulators.ews.settings import EmulatorSettings
from emulators.ews.testing import EwsEmulator
from emulators.jrni.app import create_app
from tests.calsync.adapters.jrni_support import FAST, SEED, control, make_client


@pytest.fixture(scope="module")
def emulator() -> Iterator[BackgroundServer]:
    """One JRNI emulator for the module; each test resets and seeds it."""
    with BackgroundServer(lambda: create_app(FAST), "127.0.0.1", 0) as running:
        yield running


@pytest.fixture
def jrni_url(emulator: BackgroundServer) -> str:
    """The emulator's base URL, freshly reset and seeded with SEED."""
    control(emulator.base_url, "POST", "reset")
    control(emulator.base_url, "POST", "seed", json=copy.deepcopy(SEED))
    return emulator.base_url


@pytest.fixture
def client(jrni_url: str) -> Iterator[JrniClient]:
    """The adapter's client, configured as an integration would be (not yet logged in)."""
    made = make_client(jrni_url)
    yield made
    made.close()


@pytest.fixture(scope="module")
def ews_server() -> Iterator[EwsEmulator]:
    with EwsEmulator(EmulatorSettings(validate_responses=True)) as emulator:
        yield emulator


_DEFAULT_ADAPTER = BaseProtocol.HTTP_ADAPTER_CLS


@pytest.fixture
def fresh_exchangelib() -> Iterator[None]:
    """No cached Accounts or connections across tests, and exchangelib's process-wide adapter restored after."""
    ACCOUNTS.clear()
    Protocol.clear_cache()
    yield
    ACCOUNTS.clear()
    Protocol.clear_cache()
    SelectiveVerifyHTTPAdapter.forget()
    BaseProtocol.HTTP_ADAPTER_CLS = _DEFAULT_ADAPTER
