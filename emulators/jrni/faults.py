"""Injected faults (``/_emulator/faults``): what they are and when one applies. Pure; the app and the webhook
sender ask ``take`` at the moment a fault could strike."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from .state import BadRequestError, parse_int

KINDS = ("http_500", "latency", "token_expiry", "duplicate_webhooks", "reorder_webhooks")
_KEYS = {"kind", "count", "probability", "delay_ms", "path"}


@dataclass
class Fault:
    kind: str
    count: int | None = None  # how many more times it strikes; None = until cleared
    probability: float = 1.0
    delay_ms: int = 0
    path: str | None = None  # http faults: only requests whose path starts with this

    def as_json(self) -> dict[str, Any]:
        """The fault as the control plane shows it."""
        return {
            "kind": self.kind,
            "count": self.count,
            "probability": self.probability,
            "delay_ms": self.delay_ms,
            "path": self.path,
        }


def parse_fault(body: Any) -> Fault:
    """A fault from its control-plane JSON; unknown kinds or keys are a 400."""
    if not isinstance(body, dict):
        raise BadRequestError("a fault must be a JSON object")
    extra = set(body) - _KEYS
    if extra:
        raise BadRequestError(f"unknown fault key(s): {', '.join(sorted(extra))}")
    kind = body.get("kind")
    if kind not in KINDS:
        raise BadRequestError(f"kind must be one of {', '.join(KINDS)}")
    probability = body.get("probability", 1.0)
    if isinstance(probability, bool) or not isinstance(probability, int | float) or not 0 <= probability <= 1:
        raise BadRequestError("probability must be a number from 0 to 1")
    path = body.get("path")
    if path is not None and not isinstance(path, str):
        raise BadRequestError("path must be a string")
    count = body.get("count")
    return Fault(
        kind=kind,
        count=None if count is None else parse_int(count, "count", 1),
        probability=float(probability),
        delay_ms=parse_int(body.get("delay_ms", 0), "delay_ms", 0),
        path=path,
    )


class Faults:
    """The active faults, consumed as they strike."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self.active: list[Fault] = []
        self._rng = rng or random.Random()

    def add(self, fault: Fault) -> None:
        """Arm a fault."""
        self.active.append(fault)

    def clear(self) -> None:
        """Disarm every fault."""
        self.active.clear()

    def take(self, kind: str, path: str | None = None) -> Fault | None:
        """The first armed fault of this kind that strikes now (counting it down), or None."""
        for fault in self.active:
            if fault.kind != kind:
                continue
            if path is not None and fault.path is not None and not path.startswith(fault.path):
                continue
            if fault.probability < 1 and self._rng.random() >= fault.probability:
                continue
            if fault.count is not None:
                fault.count -= 1
                if fault.count <= 0:
                    self.active.remove(fault)
            return fault
        return None
