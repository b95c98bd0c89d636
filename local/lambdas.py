"""Lambda execution environments, locally: each invocation runs alone in an environment of its own.

In AWS a function's environment handles one invocation at a time; concurrent invocations run in separate
environments, each with its own copy of the function's module (its own ``processor``, its own Powertools ``Logger``
and the keys appended to it). Here an environment is a fresh copy of ``functions/<folder>/app.py``:
``FunctionEnvironments.invoke`` runs an event in an idle copy, and loads another (a cold start) when every copy is
busy. A module-level batch processor is never shared by two invocations at once, so a record one invocation
reports as failed cannot be reported (or forgotten) by another.

Powertools gives every ``Logger()`` of one service the same ``logging.Logger`` (and so the same formatter and keys).
Each copy is loaded with that name free, so its ``Logger()`` sets up one of its own; the service's shared logger
(the parent of ``calsync.*``'s module loggers) forwards each record to the handler of the environment running in
the thread that logs it.
"""

from __future__ import annotations

import importlib.util
import itertools
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import IO, Any

from local import ROOT

_loading = threading.Lock()
_numbers = itertools.count(1)
_current = threading.local()  # .handler: the log handler of the environment running in this thread


class _ToCurrentEnvironment(logging.Handler):
    """On the service's shared logger: hands each record to the handler of the environment invoked in this thread,
    or, outside any invocation, to ``fallback`` (the first environment's)."""

    def __init__(self) -> None:
        super().__init__()
        self.fallback: logging.Handler | None = None

    def emit(self, record: logging.LogRecord) -> None:
        handler = getattr(_current, "handler", None) or self.fallback
        if handler is not None:
            handler.handle(record)


_router = _ToCurrentEnvironment()


def _service() -> str:
    return os.environ.get("POWERTOOLS_SERVICE_NAME", "service_undefined")


def _shared_logger() -> logging.Logger:
    """The service's logger in logging's registry, carrying the forwarding handler."""
    logger = logging.getLogger(_service())
    if _router not in logger.handlers:
        logger.addHandler(_router)
    return logger


def load_module(folder: str, source: Path | None = None) -> ModuleType:
    """A new copy of ``functions/<folder>/app.py`` (or of ``source``), whose Powertools Logger is its own."""
    path = source or ROOT / "functions" / folder / "app.py"
    with _loading:
        shared = _shared_logger()
        registry = logging.Logger.manager.loggerDict
        name = shared.name
        del registry[
            name
        ]  # so that the copy's Logger() finds the name free and configures a logger of its own
        try:
            spec = importlib.util.spec_from_file_location(
                f"calsync_local_functions.{folder}.app{next(_numbers)}", path
            )
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot load {path}")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        finally:
            own = registry.get(name)
            registry[name] = shared
            if isinstance(own, logging.Logger) and own.level:
                shared.setLevel(own.level)  # calsync.* module loggers take their level from it
            # Module loggers first created during the load (``calsync.x``) found the copy's logger as their parent.
            for logger in list(registry.values()):
                if isinstance(logger, logging.Logger) and logger.parent is own and own is not None:
                    logger.parent = shared
    return module


def environment_handler(module: ModuleType) -> logging.Handler | None:
    """The log handler of a copy's Powertools Logger (None when the module has no ``logger``)."""
    logger = getattr(module, "logger", None)
    inner = getattr(logger, "_logger", None)
    handlers = getattr(inner, "handlers", None) or []
    return handlers[0] if handlers else None


class FunctionEnvironments:
    """The environments of one function (``functions/<folder>/app.py``, or ``source``); ``invoke`` has the signature
    of a Lambda handler."""

    def __init__(self, folder: str, log_stream: IO[str] | None = None, *, source: Path | None = None) -> None:
        self.folder = folder
        self.source = source
        self.log_stream = log_stream
        self.modules: list[ModuleType] = []  # every environment loaded, oldest first
        self._idle: list[ModuleType] = []
        self._lock = threading.Lock()
        self._customisations: list[Callable[[ModuleType], None]] = []

    def prewarm(self, count: int) -> FunctionEnvironments:
        """Load environments until there are ``count`` (import errors show at start rather than at first use)."""
        while len(self.modules) < count:
            self._release(self._new())
        return self

    def customise(self, change: Callable[[ModuleType], None]) -> Callable[[], None]:
        """Apply ``change`` to every environment, those loaded already and those loaded later (a test patching the
        function); the callable returned stops applying it to environments loaded from then on."""
        with self._lock:
            self._customisations.append(change)
            modules = list(self.modules)
        for module in modules:
            change(module)

        def forget() -> None:
            with self._lock:
                if change in self._customisations:
                    self._customisations.remove(change)

        return forget

    def invoke(self, event: dict[str, Any], context: Any) -> Any:
        module = self._take()
        previous = getattr(_current, "handler", None)
        _current.handler = environment_handler(module)
        try:
            return module.lambda_handler(event, context)
        finally:
            _current.handler = previous
            self._release(module)

    def _take(self) -> ModuleType:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self._new()

    def _release(self, module: ModuleType) -> None:
        with self._lock:
            self._idle.append(module)

    def _new(self) -> ModuleType:
        module = load_module(self.folder, self.source)
        handler = environment_handler(module)
        if handler is not None:
            if self.log_stream is not None and isinstance(handler, logging.StreamHandler):
                handler.setStream(self.log_stream)
            if _router.fallback is None:
                _router.fallback = handler
        metrics = getattr(module, "metrics", None)
        if self.log_stream is not None and metrics is not None and hasattr(metrics, "stream"):
            metrics.stream = self.log_stream  # the EMF lines in the function's log, beside its log lines
        with self._lock:
            self.modules.append(module)
            changes = list(self._customisations)
        for change in changes:
            change(module)
        return module


def forget_log_routing() -> None:
    """Take the forwarding handler off the service's logger (when a stack stops)."""
    logging.getLogger(_service()).removeHandler(_router)
    _router.fallback = None
