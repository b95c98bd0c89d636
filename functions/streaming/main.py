"""The streaming task (ECS Fargate): keeps EWS streaming subscriptions of the mapped mailboxes and wakes inbound.

Settings come from the environment (see ``calsync.bootstrap.streaming``); it runs until SIGTERM (or SIGINT), then ends
its subscriptions and connections, sends what it holds and writes a last heartbeat, within ECS's stop timeout.
"""

from __future__ import annotations

import logging
import signal
import sys

from calsync.bootstrap.streaming import StreamingSettings, build_task


def main() -> int:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stdout,
        format="%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s",
    )
    task = build_task(StreamingSettings.from_env())
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: task.stop())
    task.run()  # gives up its share of the mailboxes (if it holds one) when it ends
    return 0


if __name__ == "__main__":
    sys.exit(main())
