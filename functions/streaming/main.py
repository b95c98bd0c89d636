"""The streaming task (ECS Fargate): keeps EWS streaming subscriptions of the mapped mailboxes and wakes inbound.

Settings come from the environment (see ``calsync.streaming.wiring``); it runs until SIGTERM (or SIGINT), then ends
its subscriptions and connections, sends what it holds and writes a last heartbeat, within ECS's stop timeout.
"""

from __future__ import annotations

import logging
import signal
import sys

from calsync.streaming.wiring import StreamingSettings, build_runner, release_share


def main() -> int:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stdout,
        format="%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s",
    )
    runner = build_runner(StreamingSettings.from_env())
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: runner.stop())
    try:
        runner.run()
    finally:
        release_share(runner)
    return 0


if __name__ == "__main__":
    sys.exit(main())
