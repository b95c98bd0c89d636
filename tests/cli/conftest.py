"""The CLI's tests: ``calsync`` run in-process (typer's runner) against the local stack or a loopback server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from typer.testing import CliRunner, Result

from calsync_cli.main import app
from local.seed import DEMO_SEED
from local.stack import LocalStack, StackOptions
from tests.cli.loopback import Server, serve

# The CLI's own environment variables, never taken from the machine running the tests.
# COLUMNS: usage errors come in a box as wide as the terminal; wide enough that a message is on one line.
CLEAN_ENV = {"CALSYNC_API": None, "CALSYNC_INTEGRATION": None, "AWS_PROFILE": None, "COLUMNS": "200"}


def calsync(*args: str, env: dict[str, str | None] | None = None) -> Result:
    """``calsync ARGS...``: its exit code, stdout and stderr (apart)."""
    return CliRunner().invoke(app, list(args), env={**CLEAN_ENV, **(env or {})}, catch_exceptions=False)


@dataclass
class Cli:
    """``calsync --api <the stack's API> ...``."""

    stack: LocalStack

    @property
    def api(self) -> str:
        assert self.stack.urls is not None
        return self.stack.urls.api

    def __call__(self, *args: str, env: dict[str, str | None] | None = None) -> Result:
        return calsync("--api", self.api, *args, env=env)


def local_stack(seed: bool) -> Iterator[LocalStack]:
    with (
        open(os.devnull, "w") as logs,
        LocalStack(
            StackOptions(
                api_port=0, ews_port=0, jrni_port=0, log_stream=logs, seed=DEMO_SEED if seed else None
            )
        ) as running,
    ):
        yield running


@pytest.fixture(scope="module")
def demo_stack() -> Iterator[LocalStack]:
    """The local stack with the demo bank (integration demo-bank, Alice, Ben and the room mapped; Chloe not)."""
    yield from local_stack(seed=True)


@pytest.fixture
def server() -> Iterator[Server]:
    """A loopback server standing in for the admin API (``server.url`` ends in the stage, ``/v1``)."""
    with serve() as running:
        yield running
