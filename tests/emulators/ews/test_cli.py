"""``python -m emulators.ews`` as a developer or the local stack starts it: banner, options, TLS, clean shutdown."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from exchangelib import BASIC, DELEGATE, Account, Build, Configuration, Credentials, Version
from exchangelib.protocol import BaseProtocol, NoVerifyHTTPAdapter

from tests.emulators.ews.conftest import PASSWORD, TZ
from tests.tls import write_self_signed

ROOT = Path(__file__).resolve().parents[3]
ALICE = "alice@example.com"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Cli:
    """One emulator process and what it printed."""

    def __init__(self, process: subprocess.Popen[str], banner: str, base_url: str) -> None:
        self.process = process
        self.banner = banner
        self.base_url = base_url
        self.http = requests.Session()
        # Over TLS the test trusts its own certificate; REQUESTS_CA_BUNDLE must not override that.
        self.http.trust_env = False

    @property
    def ews_url(self) -> str:
        return f"{self.base_url}/EWS/Exchange.asmx"

    def stop(self, sig: int = signal.SIGINT) -> int:
        self.http.close()
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=60)  # a busy machine can take long to stop it


@pytest.fixture
def start_cli() -> Iterator[Callable[..., Cli]]:
    started: list[Cli] = []

    def start(*args: str, scheme: str = "http") -> Cli:
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "emulators.ews", "--port", str(port), *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        banner = process.stdout.readline().rstrip(
            "\n"
        )  # blocks until the server listens (or the process dies)
        cli = Cli(process, banner, f"{scheme}://127.0.0.1:{port}")
        started.append(cli)
        assert banner, f"no banner; stderr: {process.stderr.read() if process.stderr else ''}"
        return cli

    yield start
    for cli in started:
        if cli.process.poll() is None:
            cli.process.kill()
            cli.process.wait(timeout=60)


def open_calendar(cli: Cli) -> Account:
    cli.http.post(
        f"{cli.base_url}/_emulator/accounts", json={"address": ALICE, "password": PASSWORD}, timeout=10
    ).raise_for_status()
    config = Configuration(
        service_endpoint=cli.ews_url,
        credentials=Credentials(ALICE, PASSWORD),
        auth_type=BASIC,
        version=Version(build=Build(15, 1, 2507, 6)),
    )
    account = Account(ALICE, config=config, autodiscover=False, access_type=DELEGATE, default_timezone=TZ)
    account.calendar.refresh()
    return account


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_cli_prints_the_banner_serves_ews_and_stops_cleanly(start_cli: Callable[..., Cli], sig: int) -> None:
    cli = start_cli()
    assert cli.banner == f"EWS emulator listening on {cli.ews_url}"
    assert open_calendar(cli).calendar.name == "Calendar"
    assert cli.stop(sig) == 0
    assert "Traceback" not in (cli.process.stderr.read() if cli.process.stderr else "")


def test_cli_latency_and_validate_options(start_cli: Callable[..., Cli]) -> None:
    cli = start_cli("--latency-ms", "300", "--validate")
    settings = cli.http.get(f"{cli.base_url}/_emulator/config", timeout=10).json()
    assert settings["latency_ms"] == 300 and settings["validate_responses"] is True
    account = open_calendar(cli)
    started = time.monotonic()
    account.calendar.refresh()
    assert time.monotonic() - started >= 0.3
    assert cli.stop() == 0


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_cli_serves_https_with_a_certificate(start_cli: Callable[..., Cli], tmp_path: Path) -> None:
    cert_file, key_file = write_self_signed(tmp_path)
    cli = start_cli("--tls-cert", str(cert_file), "--tls-key", str(key_file), scheme="https")
    cli.http.verify = str(cert_file)
    assert cli.banner == f"EWS emulator listening on {cli.ews_url}" and cli.ews_url.startswith("https://")
    BaseProtocol.HTTP_ADAPTER_CLS = NoVerifyHTTPAdapter  # self-signed: exchangelib must not verify it
    assert open_calendar(cli).calendar.name == "Calendar"
    assert cli.stop() == 0


def test_cli_refuses_a_certificate_without_its_key(tmp_path: Path) -> None:
    cert_file, _ = write_self_signed(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "emulators.ews", "--tls-cert", str(cert_file)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2 and "--tls-key" in result.stderr
