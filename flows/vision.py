"""The framewax dataflow; run it with ``python -m bytewax.run flows.vision``.

``FRAMEWAX_CONFIG=path.toml`` picks a config (default: ``flows/configs/default.toml``);
``python -m bytewax.run "flows.vision:build_flow('path.toml')"`` works too.

    capture ─► dedup ─┬─► call_vision ──┐
                      ├─► batch_encode ─┼─► order_by_seq ─► memory sink
                      └─► skipped ──────┘

This module only wires: every stage is built from the config here, and the
steps come from :mod:`operators.steps`.
"""

from __future__ import annotations

import atexit
import os
import sys
from dataclasses import dataclass, replace
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow

from flows.cluster import workers_per_process
from flows.config import FlowConfig, KeyPlacement, load_config
from flows.registry import build as build_stage
from flows.runtime import Runtime, SourceStage
from operators.batch.window import EncodeStage
from operators.dedup.stage import DedupStage, Route
from operators.options import choice
from operators.order.resequence import OrderStage
from operators.reading import Scene
from operators.steps import batch_encode, call_vision, capture, dedup, order_by_seq
from operators.vision.queue import VisionStage
from sinks.memory import MemorySink

__all__ = ["FlowBuild", "build", "build_flow"]


@dataclass(frozen=True)
class FlowBuild:
    """A built dataflow and the runtime its steps share (ledger, store, stages, reporter)."""

    flow: Dataflow
    runtime: Runtime


def build(
    config: str | os.PathLike[str] | FlowConfig | dict[str, Any] | None = None,
    *,
    runtime: Runtime | None = None,
) -> FlowBuild:
    """Build the vision dataflow from a config (path, mapping, ``FlowConfig`` or default).

    Every stage is resolved and its options checked here, so a bad config
    fails before anything runs. Pass a ``runtime`` to share its ledger and
    observation store (the env and :class:`flows.runner.Pipeline` do); without
    one, the run reports a status line and a summary itself.
    """
    cfg = load_config(config) if runtime is None else runtime.config
    rt = runtime or Runtime(cfg)
    c, d, v, b = cfg.capture, cfg.dedup, cfg.vision, cfg.batch

    source = build_stage("capture.source", c.source, c.options, controls=rt.controls)
    hud = {"regions": cfg.hud.regions}  # one key for dedup and the local model
    detector = build_stage("dedup.detector", d.detector, d.options, **hud) if d.enabled else None
    backend = build_stage(
        "vision.backend",
        v.backend,
        v.options,
        max_in_flight=v.max_in_flight,  # each endpoint's default limit
        deadline_ms=v.deadline_ms,
        hud_regions=cfg.hud.regions,
        ranges=cfg.hud.ranges or None,
    )
    encoder = build_stage("batch.encoder", b.encoder, b.options)
    if rt.controls is not None and getattr(source, "lockstep", False):
        # A lockstep game makes its next frame only after the agent saw this one: a batch
        # window waiting for more frames of the stream would only add its timeout.
        b = replace(b, timeout_ms=0.0)
    dedup_stage = DedupStage(
        detector,
        enabled=d.enabled,
        cache_size=d.cache_size,
        cache_scenes=[choice(Scene, n, "dedup.cache_scenes") for n in d.cache_scenes],
        routes={
            choice(Scene, k, "dedup.routes"): choice(Route, r, f"dedup.routes.{k}")
            for k, r in d.routes.items()
        },
    )
    vision, encode, order = VisionStage(backend, v), EncodeStage(encoder, b), OrderStage(cfg.order)
    rt.stages.update(
        capture=SourceStage(source), dedup=dedup_stage, vision=vision, batch=encode, order=order
    )

    flow = Dataflow("framewax_vision")
    until = rt.drain_until  # drains end by then after a stop (signal, stop(), close())
    frames = capture(
        "capture",
        flow,
        source,
        on_capture=rt.captured,
        stop=rt.stop,
        workers_per_process=rt.workers_per_process,
        on_placed=rt.placed,
        local_keys=cfg.run.placement is KeyPlacement.LOCAL,
        on_stop=rt.shutdown,  # a stop in one process stops every process of the cluster
        times=rt.times,
    )
    # (stream_id, Frame)
    checked = dedup("dedup", frames, dedup_stage, rt.times)
    # kept / encode_only: (stream_id, Frame); parts: (stream_id, VisionResult | CacheEntry);
    # skipped: (stream_id, Outcome)
    readings = call_vision("vision", checked.kept, vision, until, rt.times)
    # (stream_id, VisionResult | Outcome)
    to_encode = op.merge("to_encode", checked.kept, checked.encode_only)
    encoded = batch_encode("encode", to_encode, encode, until, rt.times)
    # (stream_id, Encoded | Outcome)
    parts = op.merge("parts", readings, encoded, checked.parts, checked.skipped)
    # (stream_id, VisionResult | Encoded | Outcome | CacheEntry)
    resolved = order_by_seq("order", parts, order, until, rt.times)
    # (stream_id, Observation | Outcome): one per seq, in seq order
    op.output(
        "memory",
        resolved,
        MemorySink(
            rt.store,
            rt.ledger,
            on_item=rt.reporter.on_item,
            on_close=rt.partition_closed,
            on_build=rt.partition_built,
            times=rt.times,
        ),
    )
    return FlowBuild(flow, rt)


def build_flow(
    config: str | os.PathLike[str] | FlowConfig | dict[str, Any] | None = None,
) -> Dataflow:
    """The dataflow alone, for ``python -m bytewax.run "flows.vision:build_flow('my.toml')"``.

    It loads its models before it returns, reports its own status line and
    summary, stops cleanly on SIGINT / SIGTERM, and makes the process exit
    non-zero if its ledger does not balance.
    """
    cfg = load_config(config)
    built = build(runtime=Runtime(cfg, workers_per_process=workers_per_process()))
    rt = built.runtime
    rt.handle_signals()  # first: a Ctrl-C while the models load stops cleanly too
    atexit.register(_exit_code, rt)
    rt.serve_metrics()
    rt.warm_up()
    return built.flow


def _exit_code(rt: Runtime) -> None:
    """At exit: a run whose ledger did not balance ends the process with its code."""
    if rt.exit_code:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rt.exit_code)


_flow: Dataflow | None = None


def __getattr__(name: str) -> Any:
    # `flow` is built on first access (bytewax.run looks it up), not at import,
    # so `flows.vision:build_flow(...)` never builds the default flow too.
    global _flow
    if name == "flow":
        if _flow is None:
            _flow = build_flow(os.environ.get("FRAMEWAX_CONFIG") or None)
        return _flow
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
