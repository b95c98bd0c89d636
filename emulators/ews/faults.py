"""Injected faults (set through the control plane) and the per-account concurrency budget."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

REQUEST_KINDS = ("server_busy", "http_503", "http_400", "connection_reset", "delay")
STREAM_KINDS = ("drop_stream", "expire_subscriptions", "missed_events")
KINDS = REQUEST_KINDS + STREAM_KINDS


@dataclass
class FaultRule:
    kind: str
    operation: str = "*"
    mailbox: str | None = None
    count: int | None = None  # None: until cleared
    probability: float = 1.0
    back_off_ms: int = 1000
    delay_ms: int = 0

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaultRule:
        unknown = set(data) - {
            "kind",
            "operation",
            "mailbox",
            "count",
            "probability",
            "back_off_ms",
            "delay_ms",
        }
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        kind = data.get("kind")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {list(KINDS)}")
        rule = cls(
            kind=kind,
            operation=str(data.get("operation", "*")),
            mailbox=str(data["mailbox"]).lower() if data.get("mailbox") else None,
            count=int(data["count"]) if data.get("count") is not None else None,
            probability=float(data.get("probability", 1.0)),
            back_off_ms=int(data.get("back_off_ms", 1000)),
            delay_ms=int(data.get("delay_ms", 0)),
        )
        if not 0.0 <= rule.probability <= 1.0:
            raise ValueError("probability must be between 0 and 1")
        if rule.count is not None and rule.count < 1:
            raise ValueError("count must be at least 1")
        return rule

    def matches(self, operation: str, mailbox: str | None) -> bool:
        if self.operation not in ("*", operation):
            return False
        return self.mailbox is None or self.mailbox == (mailbox or "").lower()


class Faults:
    """The active fault rules; each firing uses up one of its ``count``."""

    def __init__(self, seed: int | None = None) -> None:
        self.rules: list[FaultRule] = []
        self._random = random.Random(seed)
        self.fired: Counter[str] = Counter()

    def add(self, rule: FaultRule) -> None:
        self.rules.append(rule)

    def clear(self) -> None:
        self.rules.clear()

    def take(self, kinds: tuple[str, ...], operation: str, mailbox: str | None) -> FaultRule | None:
        """The first rule of one of ``kinds`` that applies now (consuming one use), or None."""
        for rule in list(self.rules):
            if rule.kind not in kinds or not rule.matches(operation, mailbox):
                continue
            if rule.probability < 1.0 and self._random.random() >= rule.probability:
                continue
            if rule.count is not None:
                rule.count -= 1
                if rule.count <= 0:
                    self.rules.remove(rule)
            self.fired[rule.kind] += 1
            return rule
        return None


class Budget:
    """Requests in flight per authenticated account: EWSMaxConcurrency."""

    def __init__(self) -> None:
        self.in_flight: Counter[str] = Counter()

    def enter(self, account: str, limit: int) -> bool:
        if self.in_flight[account] >= limit:
            return False
        self.in_flight[account] += 1
        return True

    def leave(self, account: str) -> None:
        self.in_flight[account] -= 1
        if self.in_flight[account] <= 0:
            del self.in_flight[account]
