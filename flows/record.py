"""Record a stream to disk: ``python -m bytewax.run flows.record``.

``FRAMEWAX_RECORD_OUT`` is the folder (default ``recordings/``; one
sub-folder per stream), ``FRAMEWAX_CONFIG`` the config whose capture stage
is recorded. Replay it with ``[capture] source = "replay"`` and
``options.paths = ["recordings/arena-0"]``. SIGINT / SIGTERM end the recording
cleanly: the source stops, every frame captured so far is written and the
index is closed (a second signal exits at once).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow

from flows.config import FlowConfig, load_config
from flows.registry import build
from flows.runtime import stop_on_signals
from operators.steps import capture
from sinks.recorder import RecorderSink

__all__ = ["build_record_flow"]


def build_record_flow(
    config: str | os.PathLike[str] | FlowConfig | dict[str, Any] | None = None,
    out: str | os.PathLike[str] = "recordings",
    stop: threading.Event | None = None,
) -> Dataflow:
    """capture → recorder: every captured frame (with ground truth) written under ``out``,
    until the source ends or ``stop`` is set."""
    cfg = load_config(config)
    source = build("capture.source", cfg.capture.source, cfg.capture.options)
    flow = Dataflow("framewax_record")
    frames = capture("capture", flow, source, stop=stop)
    # (stream_id, Frame)
    op.output("recorder", frames, RecorderSink(Path(out)))
    return flow


def __getattr__(name: str) -> Any:
    if name == "flow":
        stop = threading.Event()
        stop_on_signals(stop, lambda _why: stop.set(), "writing what was captured")
        return build_record_flow(
            os.environ.get("FRAMEWAX_CONFIG") or None,
            os.environ.get("FRAMEWAX_RECORD_OUT", "recordings"),
            stop,
        )
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
