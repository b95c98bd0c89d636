"""The whole local stack in one process: moto, both emulators, the HTTP front, the SQS poller, and the seed.

The functions run in-process with the environment a deployed function gets (read off ``template.yaml``), plus
``AWS_ENDPOINT_URL`` pointing every AWS client at moto and dummy credentials. ``stop()`` puts the environment back.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import IO, Any

from local import ROOT
from local.aws import Resources, create_resources, event_source_queue, function_environment, load_template
from local.events import LambdaContext
from local.front import build_front
from local.poller import SqsPoller
from local.seed import DEMO_SEED, Seeded, apply_seed, load_seed

REGION = "eu-west-2"
# moto accepts any credentials; these only keep boto3 from looking for real ones.
_DUMMY_AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
              "AWS_SECURITY_TOKEN": "testing", "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION}  # fmt: skip
# Logical ids in template.yaml of the three functions the stack runs, and their folders under functions/.
FUNCTIONS = {"JrniWebhookFunction": "jrni_webhook", "OutboundFunction": "outbound", "AdminFunction": "admin"}


@dataclass
class StackOptions:
    """``calsync local``'s options; ports 0 mean free ports. ``seed`` None means no seed at all."""

    api_port: int = 8087
    ews_port: int = 8089
    jrni_port: int = 8088
    seed: Path | None = DEMO_SEED
    latency_ms: int = 0
    host: str = "127.0.0.1"
    poller_workers: int = 2
    # Where the functions' logs (Powertools, JSON lines) go; stdout is kept for the ready line.
    log_stream: IO[str] = field(default_factory=lambda: sys.stderr)
    log_level: str = "INFO"


@dataclass(frozen=True)
class StackUrls:
    api: str
    ews: str
    jrni: str

    def ready_line(self) -> str:
        return "calsync local ready " + json.dumps({"api": self.api, "ews": self.ews, "jrni": self.jrni})


_loaded: dict[str, ModuleType] = {}


def _load(module: str) -> Any:
    """An emulator module, loaded by name: the emulators are checked by mypy on their own (not strictly), and
    ``mypy --strict local`` should judge this package only."""
    return importlib.import_module(module)


def load_function(folder: str) -> ModuleType:
    """``functions/<folder>/app.py`` as its own module (every function's module is called ``app``)."""
    if folder not in _loaded:
        path = ROOT / "functions" / folder / "app.py"
        spec = importlib.util.spec_from_file_location(f"calsync_local_functions.{folder}.app", path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {path}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _loaded[folder] = module
    return _loaded[folder]


class LocalStack:
    """Start with ``start()`` (or ``with``); ``urls``, ``resources`` and ``seeded`` tell what is running."""

    def __init__(self, options: StackOptions | None = None) -> None:
        self.options = options or StackOptions()
        self.template = load_template()
        self.urls: StackUrls | None = None
        self.resources: Resources | None = None
        self.seeded: Seeded | None = None
        self.moto: Any = None
        self.ews: Any = None
        self.jrni: Any = None
        self.front: Any = None
        self.poller: SqsPoller | None = None
        self.session: Any = None
        self._saved_env: dict[str, str | None] = {}
        self._log_handlers: list[tuple[logging.StreamHandler[Any], Any]] = []

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------------------------------------- start

    def start(self) -> StackUrls:
        """Start everything and seed; on any failure what was started is stopped again before raising."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> StackUrls:
        from moto.server import ThreadedMotoServer

        BackgroundServer = _load("emulators.common.server").BackgroundServer
        EmulatorSettings = _load("emulators.ews.settings").EmulatorSettings
        EwsEmulator = _load("emulators.ews.testing").EwsEmulator
        create_app = _load("emulators.jrni.app").create_app
        JrniSettings = _load("emulators.jrni.settings").JrniSettings

        opts = self.options
        # werkzeug (moto's server) logs every request; the stack's output is the ready line and the functions' logs.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.moto = ThreadedMotoServer(ip_address=opts.host, port=0, verbose=False)
        self.moto.start()
        moto_host, moto_port = self.moto.get_host_and_port()
        moto_url = f"http://{moto_host}:{moto_port}"

        self._set_env({**_DUMMY_AWS, "AWS_ENDPOINT_URL": moto_url})
        import boto3

        self.session = boto3.Session(region_name=REGION)
        self.resources = create_resources(_EndpointSession(self.session, moto_url), self.template)
        env = function_environment(self.template, self.resources)
        env["POWERTOOLS_LOG_LEVEL"] = opts.log_level
        env["POWERTOOLS_TRACE_DISABLED"] = "true"  # no X-Ray daemon here
        env["POWERTOOLS_METRICS_DISABLED"] = "true"
        self._set_env(env)

        self.ews = EwsEmulator(EmulatorSettings(latency_ms=opts.latency_ms), port=opts.ews_port).start()
        self.jrni = BackgroundServer(lambda: create_app(JrniSettings(latency_ms=opts.latency_ms)), opts.host,
                                     opts.jrni_port).start()  # fmt: skip

        from calsync import wiring

        wiring.reset()
        modules = {logical: load_function(folder) for logical, folder in FUNCTIONS.items()}
        self._route_logs()
        self.front = BackgroundServer(
            lambda: build_front(
                (modules["JrniWebhookFunction"].lambda_handler, self._context_factory("JrniWebhookFunction")),
                (modules["AdminFunction"].lambda_handler, self._context_factory("AdminFunction")),
            ),
            opts.host,
            opts.api_port,
        ).start()
        queue, batch_size = event_source_queue(self.template, "OutboundFunction")
        self.poller = SqsPoller(
            self.client("sqs"), self.resources.queue_urls[queue], self.resources.queue_arns[queue],
            modules["OutboundFunction"].lambda_handler, self._context_factory("OutboundFunction"),
            batch_size=batch_size, workers=opts.poller_workers,
        ).start()  # fmt: skip

        self.urls = StackUrls(api=self.front.base_url, ews=self.ews.base_url, jrni=self.jrni.base_url)
        if opts.seed is not None:
            self.seeded = apply_seed(
                load_seed(opts.seed), api_url=self.urls.api, ews_url=self.urls.ews, jrni_url=self.urls.jrni,
                secrets_client=self.client("secretsmanager"), secrets_prefix=env.get("SECRETS_PREFIX", ""),
            )  # fmt: skip
        return self.urls

    def client(self, service: str) -> Any:
        """A boto3 client for moto."""
        return self.session.client(service, endpoint_url=os.environ["AWS_ENDPOINT_URL"])

    def _context_factory(self, logical_id: str) -> Any:
        assert self.resources is not None
        props = self.template["Resources"][logical_id]["Properties"]
        defaults = self.template.get("Globals", {}).get("Function", {})
        name = str(self.resources.resolve(props.get("FunctionName", logical_id)))
        timeout = float(props.get("Timeout", defaults.get("Timeout", 3)))
        memory = int(props.get("MemorySize", defaults.get("MemorySize", 128)))
        return lambda: LambdaContext(name, timeout_seconds=timeout, memory_limit_in_mb=memory, region=REGION)

    def _route_logs(self) -> None:
        """Send the functions' logs (Powertools' stdout handler) to ``log_stream``."""
        service = os.environ.get("POWERTOOLS_SERVICE_NAME", "service_undefined")
        for handler in logging.getLogger(service).handlers:
            if isinstance(handler, logging.StreamHandler):
                self._log_handlers.append((handler, handler.stream))
                handler.setStream(self.options.log_stream)

    def _set_env(self, values: dict[str, str]) -> None:
        for name, value in values.items():
            self._saved_env.setdefault(name, os.environ.get(name))
            os.environ[name] = value

    # -------------------------------------------------------------------------------------------------- stop

    def stop(self) -> None:
        """Stop everything that was started, newest first, and put the environment back."""
        for part in (self.poller, self.front, self.jrni, self.ews, self.moto):
            if part is not None:
                try:
                    part.stop()
                except Exception as exc:  # stopping the rest matters more than this one
                    print(f"calsync local: stopping {type(part).__name__} failed: {exc}", file=sys.stderr)
        self.poller = self.front = self.jrni = self.ews = self.moto = None
        for handler, stream in self._log_handlers:
            handler.setStream(stream)
        self._log_handlers.clear()
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env.clear()
        if "calsync.wiring" in sys.modules:
            sys.modules["calsync.wiring"].reset()


class _EndpointSession:
    """A boto3 session whose clients all talk to ``endpoint_url`` (moto)."""

    def __init__(self, session: Any, endpoint_url: str) -> None:
        self.session = session
        self.endpoint_url = endpoint_url
        self.region_name = session.region_name

    def client(self, service: str) -> Any:
        return self.session.client(service, endpoint_url=self.endpoint_url)
