"""What one run of the flow shares between its steps: ledger, store, stages, signals.

A :class:`Runtime` is made per run (per process with ``-i/-a``) and returned
with the flow by :func:`flows.vision.build`. It owns the stages
(:class:`~operators.stage.Stage`: warmed up before frames flow, closed after,
asked for their ``metrics()`` by the summary), the run's stop (SIGINT /
SIGTERM through :func:`stop_on_signals`, ``shutdown()``), the
:class:`InputGuard` that releases a game's keys on every way out, and the
:class:`~flows.report.Reporter` that prints the status line and the summary.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import sys
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

from bytewax.inputs import FixedPartitionedSource

from flows.config import FlowConfig
from flows.metrics import MetricsServer, metrics_address
from flows.report import Reporter
from operators.capture.base import AgentControl
from operators.frame import Frame
from operators.ledger import Ledger
from operators.stage import (
    Stage,
    SupportsClose,
    SupportsMetrics,
    SupportsSampling,
    SupportsShare,
    SupportsWarmUp,
)
from operators.stats import LagStats, StepTimes
from sinks.memory import ObservationStore

__all__ = ["InputGuard", "Placement", "Runtime", "SourceStage", "stop_on_signals"]

logger = logging.getLogger(__name__)


def stop_on_signals(stop: threading.Event, on_stop: Any, note: str = "") -> None:
    """Make SIGINT and SIGTERM call ``on_stop(signal_name)`` once; a second signal, once
    ``stop`` is set, exits the process at once.

    Only from the main thread (Python's rule); Bytewax's run loop lets the handler
    run, and the flow then ends by itself (its sources see the stop), summary and all.
    """
    if threading.current_thread() is not threading.main_thread():
        return

    def on_signal(signum: int, _frame: Any) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            print(f"[framewax] {name} again: exiting now", file=sys.stderr, flush=True)
            os._exit(128 + signum)
        extra = f"; {note}" if note else ""
        print(
            f"[framewax] {name}: stopping{extra} (again to exit at once)",
            file=sys.stderr,
            flush=True,
        )
        on_stop(name)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)


class InputGuard:
    """Executors holding a game's keys in this run, released on SIGINT, SIGTERM and exit.

    :meth:`install` (main thread only, Python's rule) puts a handler in front of
    whatever SIGINT / SIGTERM did before: it releases every executor added, then does
    what was done before (``KeyboardInterrupt``, a previous handler, or the default
    exit). :meth:`uninstall` puts the previous handlers back where this guard's are
    still in place, and a guard that was uninstalled only passes signals on.
    """

    def __init__(self) -> None:
        self._held: weakref.WeakSet[Any] = weakref.WeakSet()
        self._before: dict[int, Any] = {}
        self._active = False

    def add(self, executor: Any) -> None:
        """Guard ``executor`` (anything with ``release_all()``); installs on first use."""
        self._held.add(executor)
        self.install()

    def discard(self, executor: Any) -> None:
        self._held.discard(executor)

    def release_all(self) -> None:
        for ex in list(self._held):
            try:
                ex.release_all()
            except Exception:  # releasing must not stop the others from releasing
                logger.exception("framewax: releasing %r failed", ex)

    def install(self) -> None:
        if self._active or threading.current_thread() is not threading.main_thread():
            return
        self._active = True
        atexit.register(self.release_all)
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._before[sig] = signal.getsignal(sig)
            signal.signal(sig, self._on_signal)

    def uninstall(self) -> None:
        if not self._active:
            return
        self._active = False
        atexit.unregister(self.release_all)
        if threading.current_thread() is threading.main_thread():
            for sig, before in self._before.items():
                if signal.getsignal(sig) == self._on_signal:
                    signal.signal(sig, before)

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self._active:
            self.release_all()
        before = self._before.get(signum, signal.SIG_DFL)
        if callable(before):
            before(signum, frame)
        elif before == signal.SIG_DFL:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)


class SourceStage:
    """The capture step as a :class:`~operators.stage.Stage`, whatever the source is
    (a capture stage of ours, or any Bytewax source a config names)."""

    name = "capture"

    def __init__(self, source: Any) -> None:
        self.source = source

    def stream_ids(self) -> list[str]:
        if isinstance(self.source, FixedPartitionedSource):
            return list(self.source.list_parts())
        return list(self.source.stream_ids())

    def warm_up(self) -> None:
        if isinstance(self.source, SupportsWarmUp):
            self.source.warm_up()

    def close(self) -> None:
        if isinstance(self.source, SupportsClose):
            self.source.close()

    def metrics(self) -> dict[str, Any]:
        m = self.source.metrics() if isinstance(self.source, SupportsMetrics) else {}
        return {"missed_ticks": {}, "errors": [], **m}


class Placement:
    """Which streams this process works on, and what reached it from elsewhere.

    Filled as this process's workers start (``placed``: the streams whose steps run on
    each) and as frames reach their first keyed step (``arrived``): a frame captured in
    another process came over the network, pickled at full size, and is counted here.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.pid = os.getpid()
        self.streams: dict[str, int] = {}  # streams whose steps run here -> their worker
        self.worker_count = 0
        self.crossed_frames = 0
        self.crossed_bytes = 0
        self.arrived_frames = 0

    def placed(self, worker_index: int, worker_count: int, stream_ids: list[str]) -> None:
        with self._lock:
            self.worker_count = worker_count
            self.streams.update(dict.fromkeys(stream_ids, worker_index))

    def arrived(self, frame: Frame) -> None:
        with self._lock:
            self.arrived_frames += 1
            if frame.origin != self.pid:
                self.crossed_frames += 1
                self.crossed_bytes += frame.image.nbytes

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "worker_count": self.worker_count,
                "streams": dict(sorted(self.streams.items())),
                "frames": self.arrived_frames,
                "crossed_frames": self.crossed_frames,
                "crossed_bytes": self.crossed_bytes,
            }


@dataclass
class Runtime:
    """Objects shared by one run's steps (all thread-safe or owned by one step)."""

    config: FlowConfig
    ledger: Ledger = field(default_factory=Ledger)
    stop: threading.Event = field(default_factory=threading.Event)
    controls: dict[str, AgentControl] | None = None
    report: bool = True
    stages: dict[str, Stage] = field(default_factory=dict)
    """The run's stages by name: ``capture``, ``dedup``, ``vision``, ``batch``, ``order``."""
    workers_per_process: int = 1
    """Bytewax workers in each process (``-w``): streams spread over processes first."""
    store: ObservationStore = field(init=False)
    reporter: Reporter = field(init=False)
    placement: Placement = field(init=False)
    lag: LagStats = field(init=False)
    """Lags the envs on this run measured (observation age at each step, shot probes)."""
    times: StepTimes = field(init=False)
    """Seconds each step's own Python takes (the summary's ``steps`` table)."""
    first_capture_at: float | None = field(init=False, default=None)
    last_capture_at: float | None = field(init=False, default=None)
    input_guard: InputGuard = field(init=False)
    """Executors holding a game's input in this run (the envs'), released on every way out."""

    def __post_init__(self) -> None:
        self.store = ObservationStore(self.config.sink.history)
        self.reporter = Reporter(self)
        self.placement = Placement()
        self.input_guard = InputGuard()
        self.times = StepTimes()
        self.lag = LagStats()

    def captured(self, frame: Frame) -> None:
        """A frame reached its stream's steps: the ledger's ``captured``, and locality."""
        self.ledger.captured(frame.stream_id, frame.seq)
        self.placement.arrived(frame)
        if self.first_capture_at is None:
            self.first_capture_at = frame.captured_at
        self.last_capture_at = frame.captured_at

    def placed(self, worker_index: int, worker_count: int, stream_ids: list[str]) -> None:
        """``stream_ids``' steps run on a worker of this process: a remote model's limits are
        the cluster's, shared out by streams, so this process takes its fraction of each."""
        self.placement.placed(worker_index, worker_count, stream_ids)
        total = len(self.stream_ids())
        mine = len(self.placement.snapshot()["streams"])
        if total and mine:
            for stage in self.stages.values():
                if isinstance(stage, SupportsShare):
                    stage.set_share(mine / total)

    stop_at: float | None = None
    """When the run was told to stop (``shutdown``), epoch seconds."""
    metrics: MetricsServer | None = None
    """The Prometheus endpoint, while one is served (``[run] metrics``, ``FRAMEWAX_METRICS``)."""

    def serve_metrics(self) -> MetricsServer | None:
        """Start the metrics endpoint if one is configured (once); it stops on :meth:`close`."""
        address = metrics_address(self.config.run.metrics)
        if not address or self.metrics is not None:
            return self.metrics
        server = self.metrics = MetricsServer(self, address)
        for stage in self.stages.values():
            if isinstance(stage, SupportsSampling):
                stage.sample_to(server.observe_stage)
        return server

    @property
    def exit_code(self) -> int:
        """What a standalone run exits with: 1 when its ledger did not balance."""
        return 1 if self.reporter.balanced is False else 0

    def partition_built(self, worker_index: int = 0, worker_count: int = 1) -> None:
        """A memory-sink partition of this process started (one per worker)."""
        self.reporter.partition_built(worker_index, worker_count)

    def partition_closed(self) -> None:
        """A memory-sink partition ended; after this process's last, the run is over:
        summary, and for a standalone run (``bytewax.run``, which has no owner to close its
        stages) the stages closed now, so calls still hanging are aborted, not waited on."""
        if self.reporter.partition_closed():
            self.finish()
            if self.report:
                self.close()

    def finish(self) -> dict[str, Any]:
        """The run has ended: close the ledger and return the summary (printed and written
        once, when the run reports)."""
        self.ledger.end()
        return self.reporter.finish()

    def shutdown(self, why: str = "stop") -> None:
        """End every source now; work in flight may finish for ``[run] shutdown_ms``."""
        if self.stop_at is None:
            self.stop_at = time.time()
            logger.info("framewax: %s: stopping, draining for up to %.0f ms", why, self.shutdown_ms)
        self.stop.set()

    @property
    def shutdown_ms(self) -> float:
        return self.config.run.shutdown_ms

    def drain_until(self) -> float | None:
        """When end-of-stream drains must be done by: ``shutdown_ms`` after a stop, else
        ``None`` (each item's own deadline: a finite stream that ended is not cut short)."""
        if self.stop_at is None:
            return None
        return self.stop_at + self.shutdown_ms / 1000.0

    def handle_signals(self) -> None:
        """SIGINT / SIGTERM stop the run cleanly (a second one exits at once)."""
        note = f"work in flight has {self.shutdown_ms:.0f} ms to finish"
        stop_on_signals(self.stop, self.shutdown, note)

    def stage(self, name: str) -> Stage:
        try:
            return self.stages[name]
        except KeyError:
            msg = f"this run has no stage {name!r} (it has {sorted(self.stages)}); build the flow first"
            raise KeyError(msg) from None

    def stream_ids(self) -> list[str]:
        """The streams the capture stage produces."""
        capture = self.stage("capture")
        assert isinstance(capture, SourceStage)
        return capture.stream_ids()

    def warm_up(self) -> None:
        """Load models now (OCR, torch) so the first frames do not queue behind the loading."""
        for stage in self.stages.values():
            stage.warm_up()

    def close(self) -> None:
        """Stop the stages' threads and clients, and the metrics endpoint; the flow must have
        ended (or be ending)."""
        self.input_guard.release_all()
        self.input_guard.uninstall()
        for stage in self.stages.values():
            stage.close()
        if self.metrics is not None:
            self.metrics.close()
