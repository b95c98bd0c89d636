"""calsync's metrics as CloudWatch embedded-metric-format (EMF) lines, on Powertools Metrics: CloudWatch reads them
out of the function's log, so there is no API call and no permission to grant.

Dimensions: ``service`` only (one value per function: webhook, outbound, inbound, reconcile, admin, streaming). The
integration ids are kept beside the figures as metadata (``integrations``): searchable in the log with CloudWatch
Logs Insights, but not a dimension, since every dimension value is a metric of its own (billed, and to be listed in
each alarm) and a deployment may serve many integrations.

Each function's module holds one ``FunctionMetrics``; its ``log_metrics`` makes it the metrics of the invocation under
way, so that ``EmfTelemetry`` (the ``Telemetry`` port the use cases are given, built once per process) adds to it, even
from the threads ``calsync.parallel`` runs calls on; the figures are written once, when the invocation ends.
"""

from __future__ import annotations

import functools
import json
import sys
import threading
from collections.abc import Callable
from contextvars import ContextVar
from typing import IO, Any

from aws_lambda_powertools.metrics import MetricUnit, SchemaValidationError
from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.constants import MAX_METRICS

from calsync.ports import Metric

_current: ContextVar[FunctionMetrics | None] = ContextVar("calsync_function_metrics", default=None)


class FunctionMetrics(AmazonCloudWatchEMFProvider):
    """One function's metrics: Powertools' EMF provider with a metric set of its own (``Metrics`` shares one set among
    all its instances in a process, and the local stack runs several invocations side by side in one process), safe
    to add to from several threads, written by ``log_metrics`` at the end of each invocation to ``stream``: the
    function's log (standard output, as Lambda captures it, unless set; the local stack sets it to its log)."""

    def __init__(self, service: str, namespace: str | None = None, stream: IO[str] | None = None) -> None:
        super().__init__(namespace=namespace, service=service)
        self.stream = stream
        self._lock = threading.RLock()
        self._integrations: set[str] = set()

    def add_metric(self, name: str, unit: MetricUnit | str, value: float, resolution: Any = 60) -> None:
        with self._lock:
            values = self.metric_set.get(name, {}).get("Value", [])
            if len(values) >= MAX_METRICS - 1 or len(self.metric_set) >= MAX_METRICS - 1:
                # Written before Powertools would print them itself (to standard output, whatever ``stream`` is).
                self._write_locked()
            super().add_metric(name=name, unit=unit, value=value, resolution=resolution)

    def count(self, name: Metric, value: int, integration_id: str = "") -> None:
        """Add to a count: one figure per invocation, however often it is counted."""
        with self._lock:
            metric = self.metric_set.get(str(name))
            if metric is not None and metric["Unit"] == MetricUnit.Count.value:
                metric["Value"][0] += float(value)
            else:
                self.add_metric(str(name), MetricUnit.Count, float(value))
            if integration_id:
                self._integrations.add(integration_id)

    def seconds(self, name: Metric, seconds: float, integration_id: str = "") -> None:
        """One more delay (each is a value of its own: CloudWatch's average and maximum see every one)."""
        with self._lock:
            self.add_metric(str(name), MetricUnit.Seconds, float(seconds))
            if integration_id:
                self._integrations.add(integration_id)

    def flush_metrics(self, raise_on_empty_metrics: bool = False) -> None:
        """Write what was added since the last flush as one EMF line; an invocation that added nothing writes
        nothing."""
        with self._lock:
            if not self.metric_set:
                if raise_on_empty_metrics:
                    raise SchemaValidationError("Must contain at least one metric.")
                return
            self._write_locked()

    def _write_locked(self) -> None:
        if not self.metric_set:
            return
        if self._integrations:
            self.add_metadata("integrations", sorted(self._integrations))
        line = json.dumps(self.serialize_metric_set(), separators=(",", ":"))
        self.clear_metrics()
        self._integrations.clear()
        if not is_metrics_disabled():
            self._write(line)

    def _write(self, line: str) -> None:
        stream = self.stream or sys.stdout
        stream.write(line + "\n")
        stream.flush()

    def add_cold_start_metric(self, context: Any) -> None:
        """Powertools' ``ColdStart`` metric (dimensions function_name and service), on its own line, written to
        ``stream`` like the others."""
        cold = AmazonCloudWatchEMFProvider(namespace=self.namespace)
        cold.add_dimension("function_name", str(getattr(context, "function_name", "") or "unknown"))
        if self.service:
            cold.add_dimension("service", str(self.service))
        cold.add_metric("ColdStart", MetricUnit.Count, 1)
        if not is_metrics_disabled():
            self._write(json.dumps(cold.serialize_metric_set(), separators=(",", ":")))

    def log_metrics(
        self,
        lambda_handler: Callable[..., Any] | None = None,
        capture_cold_start_metric: bool = False,
        raise_on_empty_metrics: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Powertools' decorator (the figures written when the handler returns or raises), with these metrics the
        ones ``EmfTelemetry`` adds to while the handler runs."""
        if lambda_handler is None:
            return functools.partial(
                self.log_metrics,
                capture_cold_start_metric=capture_cold_start_metric,
                raise_on_empty_metrics=raise_on_empty_metrics,
                **kwargs,
            )
        handler = lambda_handler

        @functools.wraps(handler)
        def collecting(event: Any, context: Any, *args: Any, **more: Any) -> Any:
            token = _current.set(self)
            try:
                return handler(event, context, *args, **more)
            finally:
                _current.reset(token)

        return super().log_metrics(
            collecting,
            capture_cold_start_metric=capture_cold_start_metric,
            raise_on_empty_metrics=raise_on_empty_metrics,
            **kwargs,
        )


class EmfTelemetry:
    """``Telemetry`` on the metrics of the invocation under way (``FunctionMetrics.log_metrics``). Outside any
    invocation (the streaming task, a long-running process), on ``outside``, written at once; without ``outside``,
    nothing is recorded there."""

    def __init__(self, outside: FunctionMetrics | None = None) -> None:
        self._outside = outside

    def count(self, name: Metric, value: int = 1, *, integration_id: str = "") -> None:
        metrics = _current.get()
        if metrics is not None:
            metrics.count(name, value, integration_id)
        elif self._outside is not None:
            self._outside.count(name, value, integration_id)
            self._outside.flush_metrics()

    def lag(self, name: Metric, seconds: float, *, integration_id: str = "") -> None:
        metrics = _current.get()
        if metrics is not None:
            metrics.seconds(name, seconds, integration_id)
        elif self._outside is not None:
            self._outside.seconds(name, seconds, integration_id)
            self._outside.flush_metrics()
