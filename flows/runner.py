"""Run the vision flow in this process, on a background thread.

:class:`Pipeline` is what the Gymnasium env, tests, notebooks and
benchmarks use: it builds the flow from a config, runs it with Bytewax's
in-process executor, and exposes the ledger and the observation store.
``stop()`` ends the source (``StopIteration``), lets in-flight work finish
and joins every thread it started.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
from collections.abc import Mapping
from typing import Any

from bytewax.testing import cluster_main, run_main

from flows.config import FlowConfig, load_config
from flows.runtime import Runtime
from flows.vision import build
from operators.ledger import Ledger
from sinks.memory import ObservationStore

__all__ = ["Pipeline"]

logger = logging.getLogger(__name__)


class Pipeline:
    """The vision dataflow running in-process.

    >>> with Pipeline(overrides={"capture": {"options": {"frames": 20, "fps": 0}}}) as p:
    ...     summary = p.wait(timeout=120)
    >>> summary["ledger"]["balanced"], summary["ledger"]["captured"]
    (True, 20)

    ``controlled=True`` hands every arena stream an
    :class:`~operators.capture.AgentControl` (``runtime.controls``) for an
    agent to drive; ``report=True`` prints the status line and summary;
    ``workers > 1`` runs that many Bytewax workers in this process (streams are
    spread over them, each stream's steps on the worker that captures it).
    """

    def __init__(
        self,
        config: str | os.PathLike[str] | FlowConfig | Mapping[str, Any] | None = None,
        *,
        overrides: Mapping[str, Any] | None = None,
        controlled: bool = False,
        report: bool = False,
        workers: int = 1,
    ) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            msg = f"workers = {workers!r}: expected an integer >= 1"
            raise ValueError(msg)
        self.workers = workers
        cfg = load_config(config, overrides)
        self.runtime = Runtime(
            cfg, controls={} if controlled else None, report=report, workers_per_process=workers
        )
        self.flow = build(runtime=self.runtime).flow
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._done = threading.Event()

    @property
    def ledger(self) -> Ledger:
        return self.runtime.ledger

    @property
    def store(self) -> ObservationStore:
        return self.runtime.store

    @property
    def started(self) -> bool:
        return self._thread is not None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> Pipeline:
        """Load the models, then run the flow on a background thread; returns at once."""
        if self._thread is not None:
            msg = "this Pipeline was already started; make a new one"
            raise RuntimeError(msg)
        # An agent's Python work in this process delays the dataflow's timers
        # unless the GIL is handed over often (measured: 4-8 ms -> 0.7 ms p50).
        sys.setswitchinterval(min(sys.getswitchinterval(), 0.0005))
        self.runtime.serve_metrics()
        self.runtime.warm_up()
        self._thread = threading.Thread(target=self._run, name="framewax-dataflow", daemon=True)
        self._thread.start()
        # A program that ends (or fails) without stop(): stop the flow before Python tears
        # its thread down (which aborts the process) and the sources' games are orphaned.
        atexit.register(self._stop_at_exit)
        return self

    def _stop_at_exit(self) -> None:
        if self._done.is_set():
            return
        try:
            self.stop(timeout=10.0)
        except Exception:  # exiting anyway: say so, do not mask the program's own error
            logger.exception("stopping the framewax dataflow at exit failed")

    def _run(self) -> None:
        try:
            if self.workers == 1:
                run_main(self.flow)
            else:
                cluster_main(self.flow, [], 0, worker_count_per_proc=self.workers)
        except BaseException as ex:  # reported to the caller by wait()/stop()
            logger.exception("the framewax dataflow stopped with an error")
            self.error = ex
        finally:
            self._done.set()

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        """Wait for the flow to end (its frame budget, or ``stop()``); returns the summary."""
        if self._thread is None:
            self.start()
        if not self._done.wait(timeout):
            msg = f"the flow did not end within {timeout} s (ledger: {self.ledger.counts()})"
            raise TimeoutError(msg)
        assert self._thread is not None
        self._thread.join(timeout=5.0)  # it has ended: only its last lines are left to run
        atexit.unregister(self._stop_at_exit)
        self.runtime.close()
        if self.error is not None:
            msg = f"the framewax dataflow failed: {self.error}"
            raise RuntimeError(msg) from self.error
        return self.runtime.finish()

    def stop(self, timeout: float = 30.0) -> dict[str, Any]:
        """End the sources now; work in flight has ``[run] shutdown_ms`` to finish, what is
        left is ``failed(timeout)`` / ``dropped(shutdown)``. Joins the threads; returns the
        summary (``TimeoutError`` if the flow is not over within ``timeout`` s)."""
        self.runtime.shutdown("Pipeline.stop()")
        if self._thread is None:
            self.runtime.close()
            return self.runtime.finish()
        return self.wait(timeout)

    def __enter__(self) -> Pipeline:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
