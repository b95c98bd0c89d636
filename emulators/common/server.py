"""Run an aiohttp application on loopback, in the foreground (CLI) or in a background thread (tests, local stack)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import ssl
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from aiohttp import web


def make_ssl_context(cert_file: str | None, key_file: str | None) -> ssl.SSLContext | None:
    """A server-side TLS context, or None when no certificate was given."""
    if not cert_file:
        return None
    if not key_file:
        raise ValueError("--tls-cert needs --tls-key")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context


class BackgroundServer:
    """An aiohttp application served from its own thread and event loop.

    ``start()`` returns once the socket is listening; ``port`` is then the real port (pass 0 to get a free one).
    ``call(fn)`` runs ``fn`` on the server's loop, so tests can read or change emulator state without races.
    """

    def __init__(
        self,
        app_factory: Callable[[], web.Application],
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._app_factory = app_factory
        self.host = host
        self.port = port
        self._ssl_context = ssl_context
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="emulator", daemon=True)
        self._runner: web.AppRunner | None = None
        self.app: web.Application | None = None

    @property
    def thread(self) -> threading.Thread:
        """The thread running the server's loop (the local stack names it, to account its CPU time)."""
        return self._thread

    @property
    def scheme(self) -> str:
        return "https" if self._ssl_context else "http"

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def start(self) -> BackgroundServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)
        return self

    async def _start(self) -> None:
        self.app = self._app_factory()
        # shutdown_timeout small: streaming connections are cut at stop instead of waited for.
        self._runner = web.AppRunner(self.app, shutdown_timeout=0.5, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self._ssl_context)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.port = sockets[0].getsockname()[1]

    def call(self, fn: Callable[[], Any], timeout: float = 30) -> Any:
        """Run ``fn()`` on the server's event loop and return its result."""
        future: Future[Any] = Future()

        def run() -> None:
            try:
                future.set_result(fn())
            except BaseException as exc:  # handed back to the calling thread
                future.set_exception(exc)

        self._loop.call_soon_threadsafe(run)
        return future.result(timeout=timeout)

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=30)
            self._runner = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_forever(
    app: web.Application, host: str, port: int, banner: str, ssl_context: ssl.SSLContext | None = None
) -> None:
    """Serve ``app`` until Ctrl-C or SIGTERM, printing ``banner`` (one line, flushed) once the socket listens.

    SIGTERM stops the server itself, cleanly (exit status 0). It is not turned into SIGINT: a background job of a
    non-interactive shell starts with SIGINT ignored, and would then never stop."""

    async def main() -> None:
        runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
        await site.start()
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stopping.set)
        print(banner, flush=True)
        try:
            await stopping.wait()
        finally:
            loop.remove_signal_handler(signal.SIGTERM)
            await runner.cleanup()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
