"""Running the EWS emulator from tests and the local stack: a background server and a control-plane client."""

from __future__ import annotations

from typing import Any

import requests

from emulators.common.server import BackgroundServer
from emulators.ews.app import build_app
from emulators.ews.keys import EMULATOR
from emulators.ews.settings import EmulatorSettings


class EwsEmulator:
    """An EWS emulator on a free loopback port, with a small client for its control plane."""

    def __init__(self, settings: EmulatorSettings | None = None, port: int = 0) -> None:
        self.settings = settings or EmulatorSettings()
        self.server = BackgroundServer(lambda: build_app(self.settings), port=port)
        self.http = requests.Session()

    def start(self) -> EwsEmulator:
        self.server.start()
        return self

    def stop(self) -> None:
        self.http.close()
        self.server.stop()

    def __enter__(self) -> EwsEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def ews_url(self) -> str:
        return f"{self.base_url}/EWS/Exchange.asmx"

    @property
    def emulator(self) -> Any:
        """The in-process Emulator object (read it through ``call`` to stay on the server's thread)."""
        assert self.server.app is not None
        return self.server.app[EMULATOR]

    def call(self, fn: Any) -> Any:
        return self.server.call(fn)

    def control(self, method: str, path: str, json: Any = None, expect: int | None = None) -> Any:
        """Call /_emulator/{path}; raises on an unexpected status, returns the JSON answer (or None)."""
        response = self.http.request(method, f"{self.base_url}/_emulator/{path}", json=json, timeout=30)
        if expect is not None and response.status_code != expect:
            raise AssertionError(f"{method} {path}: {response.status_code} {response.text}")
        if expect is None and response.status_code >= 400:
            raise AssertionError(f"{method} {path}: {response.status_code} {response.text}")
        return response.json() if response.content else None

    # Conveniences for the common set-up calls.

    def reset(self) -> None:
        self.control("POST", "reset")

    def add_account(self, address: str, password: str = "pass-for-tests", **extra: Any) -> Any:
        return self.control(
            "POST", "accounts", {"address": address, "password": password, **extra}, expect=201
        )

    def items(self, address: str, **query: str) -> list[dict[str, Any]]:
        response = self.http.get(
            f"{self.base_url}/_emulator/mailboxes/{address}/items", params=query, timeout=30
        )
        response.raise_for_status()
        return list(response.json())

    def add_folder(self, address: str, display_name: str, parent: str = "calendar") -> Any:
        """Make a calendar folder in ``address``'s mailbox (under its Calendar unless ``parent`` says otherwise)."""
        return self.control(
            "POST",
            f"mailboxes/{address}/folders",
            {"display_name": display_name, "parent": parent},
            expect=201,
        )
