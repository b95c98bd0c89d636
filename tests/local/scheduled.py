"""The local stack with Alice of the demo bank working to a JRNI schedule and the schedule_busy option on: what the
schedule tests and the availability view's tests share."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from local.seed import DEMO_SEED
from local.stack import LocalStack, StackOptions

SCHEDULE = 901
OUTSIDE = "Outside working hours"
# 09:00-17:00 Monday to Thursday, not Friday to Sunday (JRNI's weekday digits: 0 = Sunday).
WEEK = {
    "1": "0900-1700",
    "2": "0900-1700",
    "3": "0900-1700",
    "4": "0900-1700",
    "5": "None",
    "6": "None",
    "0": "None",
}


def scheduled_stack(tmp_path_factory: pytest.TempPathFactory, rules: dict[str, str]) -> Iterator[LocalStack]:
    """The stack (no streaming task) seeded with Alice on a schedule of ``rules``, busy time shown as ``OUTSIDE``."""
    seed = json.loads(Path(DEMO_SEED).read_text())
    seed["jrni"]["schedules"] = [{"id": SCHEDULE, "company_id": 37001, "name": "Mon-Thu", "rules": rules}]
    seed["jrni"]["people"][0]["schedule_id"] = SCHEDULE  # Alice
    seed["integration"]["options"]["schedule_busy"] = {
        "enabled": True,
        "subject": OUTSIDE,
        "free_busy": "Busy",
    }
    path = tmp_path_factory.mktemp("seed") / "seed.json"
    path.write_text(json.dumps(seed))
    with (
        open(os.devnull, "w") as logs,
        LocalStack(
            StackOptions(api_port=0, ews_port=0, jrni_port=0, log_stream=logs, seed=path, streaming=False)
        ) as running,
    ):
        yield running
