"""``calsync local [--api-port 8087] [--ews-port 8089] [--jrni-port 8088] [--seed FILE] [--latency-ms N]``."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from local.seed import DEMO_SEED, SeedError
from local.stack import LocalStack, StackOptions


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="calsync", description="calsync development tools")
    commands = parser.add_subparsers(dest="command", required=True)
    local = commands.add_parser(
        "local",
        help="run the whole stack on loopback (moto, the EWS and JRNI emulators, the functions)",
        description="Runs moto, both emulators, an API Gateway-like front, the SQS pollers and the streaming task, seeds a demo "
        "organisation, prints one ready line with the URLs, and runs until Ctrl-C or SIGTERM.",
    )
    local.add_argument("--api-port", type=int, default=8087, help="the API front (0: a free port)")
    local.add_argument("--ews-port", type=int, default=8089, help="the EWS emulator (0: a free port)")
    local.add_argument("--jrni-port", type=int, default=8088, help="the JRNI emulator (0: a free port)")
    local.add_argument(
        "--seed",
        metavar="FILE",
        default=str(DEMO_SEED),
        help="seed JSON (see local/seed.py; default: the demo organisation); 'none' seeds nothing",
    )
    local.add_argument("--latency-ms", type=int, default=0, help="added to every request by both emulators")
    local.add_argument(
        "--reconcile-every",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="run the reconcile schedule this often (the template's default is 15 minutes); 0: never",
    )
    local.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="the functions' log level (logs go to stderr)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Start the stack, print the ready line, and run until interrupted."""
    args = _parser().parse_args(argv)
    seed = None if args.seed.lower() == "none" else Path(args.seed)
    stack = LocalStack(
        StackOptions(
            api_port=args.api_port,
            ews_port=args.ews_port,
            jrni_port=args.jrni_port,
            seed=seed,
            latency_ms=args.latency_ms,
            log_level=args.log_level,
            reconcile_every=args.reconcile_every or None,
        )
    )
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        urls = stack.start()
    except SeedError as exc:
        print(f"calsync local: seeding failed: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # most often a port in use
        print(f"calsync local: cannot start: {exc}", file=sys.stderr)
        return 1
    try:
        print(urls.ready_line(), flush=True)
        while not stopping.wait(0.5):
            pass
    finally:
        stack.stop()
    print("calsync local stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
