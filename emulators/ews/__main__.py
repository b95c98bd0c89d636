"""``python -m emulators.ews``: serve the EWS emulator until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse

from emulators.common.server import make_ssl_context, serve_forever
from emulators.ews.app import build_app
from emulators.ews.settings import EmulatorSettings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m emulators.ews", description="EWS emulator (development only)"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--latency-ms", type=int, default=0, help="added to every EWS request")
    parser.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM)")
    parser.add_argument("--tls-key", help="the certificate's private key (PEM)")
    parser.add_argument("--validate", action="store_true", help="check every response against the EWS schema")
    args = parser.parse_args(argv)
    try:
        ssl_context = make_ssl_context(args.tls_cert, args.tls_key)
    except ValueError as exc:
        parser.error(str(exc))
    settings = EmulatorSettings(latency_ms=args.latency_ms, validate_responses=args.validate)
    scheme = "https" if ssl_context else "http"
    banner = f"EWS emulator listening on {scheme}://{args.host}:{args.port}/EWS/Exchange.asmx"
    serve_forever(build_app(settings), args.host, args.port, banner, ssl_context)


if __name__ == "__main__":
    main()
