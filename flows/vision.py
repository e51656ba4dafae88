"""The framewax dataflow; run it with ``python -m bytewax.run flows.vision``.

``FRAMEWAX_CONFIG=path.toml`` picks a config (default: ``flows/configs/default.toml``);
``python -m bytewax.run "flows.vision:build_flow('path.toml')"`` works too.

    capture ─► dedup ─┬─► call_vision ──┐
                      ├─► batch_encode ─┼─► order_by_seq ─► memory sink
                      └─► skipped ──────┘
"""

from __future__ import annotations

import os
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow

from flows.config import FlowConfig, load_config
from flows.registry import build
from flows.runtime import Runtime
from operators._pool import BoundedPool
from operators.batching import WindowPolicy, batch_encode
from operators.capture import capture
from operators.dedup import Route, dedup
from operators.errors import ConfigError
from operators.order import OrderPolicy, order_by_seq
from operators.types import Scene, choice
from operators.vision import VisionPolicy, call_vision
from sinks.memory import MemorySink

__all__ = ["build_flow", "runtime_of"]


def build_flow(
    config: str | os.PathLike[str] | FlowConfig | dict[str, Any] | None = None,
    *,
    runtime: Runtime | None = None,
) -> Dataflow:
    """Build the vision dataflow from a config (path, mapping, ``FlowConfig`` or default).

    Every stage is resolved and its options checked here, so a bad config
    fails before anything runs. Pass a ``runtime`` to share its ledger and
    observation store (the env and :class:`flows.runner.Pipeline` do);
    without one, the run reports a status line and a summary itself.
    """
    cfg = load_config(config) if runtime is None else runtime.config
    rt = runtime or Runtime(cfg)
    c, d, v, b = cfg.capture, cfg.dedup, cfg.vision, cfg.batch

    rt.source = build(
        "capture.source", c.source, c.options, ledger=rt.ledger, stop=rt.stop, controls=rt.controls
    )
    detector = build("dedup.detector", d.detector, d.options) if d.enabled else None
    rt.backend = build(
        "vision.backend",
        v.backend,
        v.options,
        max_in_flight=v.max_in_flight,
        deadline_ms=v.deadline_ms,
    )
    rt.encoder = build("batch.encoder", b.encoder, b.options)
    vision_pool = BoundedPool("framewax-vision", v.max_in_flight)
    encode_pool = BoundedPool("framewax-encode", 1)
    rt.pools[:] = [vision_pool, encode_pool]
    vision_policy = VisionPolicy(
        v.max_in_flight,
        v.max_pending,
        v.staleness_ms,
        v.deadline_ms,
        v.order,
        poll_ms=v.poll_ms,
        # A backend that enforces the deadline itself says why a call failed
        # (drip, retries); the operator's own deadline is the backstop.
        grace_ms=500.0 if getattr(rt.backend, "enforces_deadline", False) else 0.0,
    )
    window = WindowPolicy(
        b.max_size, b.timeout_ms, b.max_pending_batches, latency_budget_ms=b.latency_budget_ms
    )

    flow = Dataflow("framewax_vision")
    frames = capture("capture", flow, rt.source)
    # (stream_id, Frame)
    cache_scenes = [choice(Scene, n, "dedup.cache_scenes") for n in d.cache_scenes]
    routes = {
        choice(Scene, k, "dedup.routes"): choice(Route, v, f"dedup.routes.{k}")
        for k, v in d.routes.items()
    }
    try:
        checked = dedup(
            "dedup",
            frames,
            detector,
            enabled=d.enabled,
            cache_size=d.cache_size,
            cache_scenes=cache_scenes,
            routes=routes,
        )
    except ValueError as ex:  # routes or the cache with a detector that cannot classify
        msg = f"dedup.detector = {d.detector!r}: {ex}"
        raise ConfigError(msg) from ex
    # kept / encode_only: (stream_id, Frame); parts: (stream_id, VisionResult | CacheEntry);
    # skipped: (stream_id, Outcome)
    readings = call_vision(
        "vision", checked.kept, rt.backend, vision_policy, vision_pool, rt.vision_metrics
    )
    # (stream_id, VisionResult | Outcome)
    to_encode = op.merge("to_encode", checked.kept, checked.encode_only)
    encoded = batch_encode("encode", to_encode, rt.encoder, window, encode_pool, rt.batch_metrics)
    # (stream_id, Encoded | Outcome)
    parts = op.merge("parts", readings, encoded, checked.parts, checked.skipped)
    # (stream_id, VisionResult | Encoded | Outcome)
    resolved = order_by_seq(
        "order", parts, OrderPolicy(cfg.order.gap_deadline_ms), rt.order_metrics
    )
    # (stream_id, Observation | Outcome): one per seq, in seq order
    op.output(
        "memory",
        resolved,
        MemorySink(
            rt.store,
            rt.ledger,
            on_item=rt.reporter.on_item,
            on_close=rt.reporter.partition_closed,
            on_build=rt.reporter.partition_built,
        ),
    )
    if runtime is None:
        rt.warm_up()  # a standalone run (bytewax.run): load models before frames flow
    # Dataflow is a frozen dataclass; the runtime rides along for runners and tests.
    object.__setattr__(flow, "_framewax_runtime", rt)
    return flow


def runtime_of(flow: Dataflow) -> Runtime:
    """The :class:`Runtime` (ledger, store, metrics) of a flow made by :func:`build_flow`."""
    rt = getattr(flow, "_framewax_runtime", None)
    if rt is None:
        msg = f"{flow.flow_id!r} was not built by flows.vision.build_flow"
        raise ValueError(msg)
    return rt


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
