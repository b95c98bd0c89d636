"""``python -m emulators.jrni [--host 127.0.0.1] [--port 8088] [--latency-ms N] [--seed FILE]``."""

from __future__ import annotations

import argparse
import socket
import sys

from emulators.common.server import serve_forever

from .app import create_app, load_seed_file
from .settings import JrniSettings
from .state import JrniError


def free_port(host: str) -> int:
    """A port nobody listens on now, so ``--port 0`` can still print the real port in the banner."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and serve until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m emulators.jrni", description="JRNI admin API emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8088, help="0 picks a free port")
    parser.add_argument("--latency-ms", type=int, default=0, help="added to every /api request")
    parser.add_argument("--seed", metavar="FILE", help="seed JSON, as POST /_emulator/seed")
    parser.add_argument(
        "--token-idle-seconds", type=float, default=24 * 3600, help="Auth-Token idle lifetime (default 24 h)"
    )
    args = parser.parse_args(argv)
    settings = JrniSettings(latency_ms=args.latency_ms, token_idle_seconds=args.token_idle_seconds)
    try:
        seed = load_seed_file(args.seed) if args.seed else None
        app = create_app(settings, seed)
    except (OSError, ValueError) as exc:
        print(f"cannot load seed: {exc}", file=sys.stderr)
        return 2
    except JrniError as exc:
        print(f"bad seed: {exc.message}", file=sys.stderr)
        return 2
    port = args.port or free_port(args.host)
    serve_forever(app, args.host, port, f"JRNI emulator listening on http://{args.host}:{port}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
