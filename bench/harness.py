"""What the benchmarks share: the environment their functions run in, in the benchmark's own process."""

from __future__ import annotations

from local.moto_server import client_environment


def functions_environment(moto_url: str, region: str) -> dict[str, str]:
    """AWS at the moto server at ``moto_url``, and Powertools quiet (warnings only, no tracing, no metrics): the
    functions' logs would otherwise fill the table's terminal and cost CPU the figures would count."""
    return {
        **client_environment(moto_url, region),
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_DISABLED": "true",
    }
