"""Prometheus metrics of a run, served while it lasts: ``FRAMEWAX_METRICS=127.0.0.1:9464``.

Off by default; ``[run] metrics = "127.0.0.1:9464"`` or the environment
variable turns it on, for the main job and the env alike. A bare ``":9464"``
listens on loopback; name another address to listen elsewhere.

Counters and gauges are read from the ledger and the stages when Prometheus
scrapes (nothing is added to the dataflow's hot path for them), so at the
end of a run they agree with the ledger exactly:

- ``framewax_frames_captured_total{stream}``
- ``framewax_frames_resolved_total{stream, outcome, reason}``
- ``framewax_in_flight{stage}``: ``ledger`` (captured, unresolved), ``vision``
  and ``batch`` (calls and batches running)
- ``framewax_endpoint_requests_total{url}``, ``framewax_endpoint_failures_total{url, reason}``,
  ``framewax_endpoint_limit{url}``, ``framewax_endpoint_in_flight{url}``,
  ``framewax_endpoint_breaker_open{url}`` (HTTP backends)

and two histograms are observed as items pass:

- ``framewax_stage_seconds{stage}``: ``vision`` (a call), ``vision_queue``
  (a frame's wait for a slot), ``batch_window`` (a window's fill),
  ``batch_compute`` (a batch's encoding)
- ``framewax_observation_age_seconds``: capture to the memory sink
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from operators.errors import ConfigError

if TYPE_CHECKING:
    from flows.runtime import Runtime

__all__ = ["MetricsServer", "metrics_address", "parse_address"]

STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def parse_address(text: str) -> tuple[str, int]:
    """``"host:port"`` (``":port"``: loopback) → ``(host, port)``; errors name the setting."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:  # 0: any free port
        msg = f"run.metrics = {text!r}: expected 'host:port' (e.g. '127.0.0.1:9464', ':9464')"
        raise ConfigError(msg)
    return host.strip("[]") or "127.0.0.1", int(port)


def metrics_address(configured: str) -> str:
    """``FRAMEWAX_METRICS`` if set, else the config's ``[run] metrics``."""
    return os.environ.get("FRAMEWAX_METRICS", configured).strip()


class _Collector:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def collect(self) -> Iterator[Metric]:
        captured, resolved, in_flight = self.rt.ledger.by_stream()
        c = CounterMetricFamily(
            "framewax_frames_captured", "Frames captured, per stream.", labels=["stream"]
        )
        for stream, n in sorted(captured.items()):
            c.add_metric([stream], n)
        yield c
        r = CounterMetricFamily(
            "framewax_frames_resolved",
            "Frames resolved, per stream, outcome and reason.",
            labels=["stream", "outcome", "reason"],
        )
        for (stream, outcome, reason), n in sorted(resolved.items()):
            r.add_metric([stream, outcome, reason], n)
        yield r
        g = GaugeMetricFamily(
            "framewax_in_flight", "Frames or calls not yet resolved, per stage.", labels=["stage"]
        )
        g.add_metric(["ledger"], sum(in_flight.values()))
        # Every stage through the Stage protocol: its metrics() at scrape time.
        numbers = {name: stage.metrics() for name, stage in self.rt.stages.items()}
        for name, m in numbers.items():
            if "in_flight" in m:
                g.add_metric([name], m["in_flight"])
        yield g
        yield from self._endpoints([ep for m in numbers.values() for ep in m.get("endpoints", [])])

    def _endpoints(self, eps: list[dict[str, Any]]) -> Iterator[Metric]:
        if not eps:
            return
        req = CounterMetricFamily(
            "framewax_endpoint_requests", "Requests sent, per endpoint.", labels=["url"]
        )
        fail = CounterMetricFamily(
            "framewax_endpoint_failures",
            "Failed requests, per endpoint and reason.",
            labels=["url", "reason"],
        )
        limit = GaugeMetricFamily(
            "framewax_endpoint_limit", "In-flight limit now, per endpoint.", labels=["url"]
        )
        now = GaugeMetricFamily(
            "framewax_endpoint_in_flight", "Requests in flight, per endpoint.", labels=["url"]
        )
        breaker = GaugeMetricFamily(
            "framewax_endpoint_breaker_open", "1 while the breaker is open.", labels=["url"]
        )
        for ep in eps:
            url = ep["url"]
            req.add_metric([url], ep["requests"])
            for reason, n in sorted(ep["failures"].items()):
                fail.add_metric([url, reason], n)
            limit.add_metric([url], ep["limit"])
            now.add_metric([url], ep["in_flight"])
            breaker.add_metric([url], 0 if ep["breaker"] == "closed" else 1)
        yield from (req, fail, limit, now, breaker)


class MetricsServer:
    """Serves one run's metrics on ``address`` until :meth:`close` (its own registry, so
    several runs in one process do not mix)."""

    def __init__(self, rt: Runtime, address: str) -> None:
        self.host, self.port = parse_address(address)
        self.registry = CollectorRegistry()
        self.registry.register(_Collector(rt))
        self.stage_seconds = Histogram(
            "framewax_stage_seconds",
            "Time per item in a stage.",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=self.registry,
        )
        self.age = Histogram(
            "framewax_observation_age_seconds",
            "Capture to memory sink, per observation.",
            buckets=STAGE_BUCKETS,
            registry=self.registry,
        )
        self._lock = threading.Lock()
        self._server: Any
        try:
            self._server, self._thread = start_http_server(
                self.port, addr=self.host, registry=self.registry
            )
        except OSError as ex:
            msg = f"run.metrics = {address!r}: cannot listen there: {ex}"
            raise ConfigError(msg) from ex
        self.port = self._server.server_port  # port 0: the one the OS chose

    def observe_stage(self, stage: str, seconds: float) -> None:
        self.stage_seconds.labels(stage=stage).observe(seconds)

    def close(self) -> None:
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
            self._thread.join(timeout=5)
