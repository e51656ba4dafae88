"""The Bytewax layer of ``operators``: thin adapters from stage logic to dataflow steps.

Every other module in ``operators/`` is plain Python with an injected clock.
Here each stage becomes a step the way bytewax's own operators are written:

- :class:`FrameSource` drives a capture stage's :class:`~operators.capture.FrameStream`\\s
  as a ``DynamicSource``: each worker captures the streams placed on it
  (:mod:`operators.placement`) and keys their frames so every later step runs on
  that worker too; it paces by ``next_awake`` and ends every stream when the
  run's ``stop`` event is set;
- :func:`capture`, :func:`dedup`, :func:`call_vision`, :func:`batch_encode` and
  :func:`order_by_seq` run one :class:`~operators.stage.StreamLogic` per
  ``stream_id`` through :class:`Driven`, which maps Bytewax's hooks onto it:
  ``on_batch`` → ``offer``, ``on_notify`` → ``poll``, ``notify_at`` →
  ``next_wake``, ``on_eof`` → ``drain(until)``.

Nothing is snapshotted: in-flight calls cannot be resumed, so a recovered
run starts each stream's logic empty.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream, operator
from bytewax.inputs import DynamicSource, Source, StatelessSourcePartition
from bytewax.operators import KeyedStream, StatefulBatchLogic

from operators.batch.window import EncodeStage
from operators.capture.base import CaptureStage, FrameStream
from operators.dedup.stage import DedupStage
from operators.frame import Frame
from operators.observation import Encoded, Observation
from operators.order.resequence import OrderStage, Part
from operators.outcome import CacheEntry, Outcome
from operators.placement import place, routing_key, worker_of_key
from operators.reading import VisionResult
from operators.stage import StreamLogic
from operators.stats import StepTimes
from operators.vision.queue import VisionStage

__all__ = [
    "DedupOut",
    "Driven",
    "FrameSource",
    "StopSignal",
    "batch_encode",
    "call_vision",
    "capture",
    "dedup",
    "order_by_seq",
]

V = TypeVar("V")
W = TypeVar("W")
Until = Callable[[], float | None]
"""When a drain must be done by (epoch seconds), or ``None``: each item's own deadline."""


def _no_limit() -> float | None:
    return None


def _utc(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, tz=UTC)


class Driven(StatefulBatchLogic[V, W, None], Generic[V, W]):
    """Bytewax's stateful-batch hooks mapped onto a :class:`~operators.stage.StreamLogic`;
    with ``times``, each hook's own time is added to the step's cost (``name``)."""

    def __init__(
        self,
        logic: StreamLogic[V, W],
        until: Until = _no_limit,
        times: StepTimes | None = None,
        name: str = "",
    ) -> None:
        self.logic = logic
        self.until = until
        self.times = times
        self.name = name

    def on_batch(self, values: list[V]) -> tuple[list[W], bool]:
        if self.times is None:
            return self.logic.offer(values), StatefulBatchLogic.RETAIN
        t = time.perf_counter()
        out = self.logic.offer(values)
        self.times.add(self.name, time.perf_counter() - t, len(values))
        return out, StatefulBatchLogic.RETAIN

    def on_notify(self) -> tuple[list[W], bool]:
        if self.times is None:
            return self.logic.poll(), StatefulBatchLogic.RETAIN
        t = time.perf_counter()
        out = self.logic.poll()
        self.times.add(self.name, time.perf_counter() - t, 0)
        return out, StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[list[W], bool]:
        return self.logic.drain(self.until()), StatefulBatchLogic.RETAIN

    def notify_at(self) -> datetime | None:
        return _utc(self.logic.next_wake())

    def snapshot(self) -> None:
        return None


def _driven(
    step_id: str,
    up: KeyedStream[V],
    make: Callable[[], StreamLogic[V, W]],
    until: Until,
    times: StepTimes | None = None,
    name: str = "",
) -> KeyedStream[W]:
    return op.stateful_batch(step_id, up, lambda _resume: Driven(make(), until, times, name))


# -- capture ------------------------------------------------------------------------


@dataclass(frozen=True)
class StopSignal:
    """A stop (signal, ``stop()``) that reached one process, on its way to every worker of
    the cluster, so a Ctrl-C in one process stops them all."""

    pid: int


class _WorkerStreams(StatelessSourcePartition[tuple[str, Frame | StopSignal]]):
    """The streams one worker captures, each frame keyed to stay on this worker.

    When the run's ``stop`` is set, it sends one :class:`StopSignal` to every worker of
    the cluster (``everyone``: a routing key per worker) and ends.
    """

    STOP_CHECK_S = 0.1
    """A stream waiting longer than this (a recording paced as recorded) is still asked this
    often, so a stop is seen within it."""

    def __init__(
        self,
        streams: dict[str, FrameStream],
        keys: dict[str, str],
        stop: threading.Event | None,
        everyone: list[str],
        times: StepTimes | None = None,
    ) -> None:
        self.streams = streams
        self.keys = keys
        self.stop = stop
        self.everyone = everyone
        self.stopped = False
        self.times = times
        self._pool: ThreadPoolExecutor | None = None

    def next_batch(self) -> list[tuple[str, Frame | StopSignal]]:
        if self.times is None:
            return self._next_batch()
        t = time.perf_counter()
        out = self._next_batch()
        self.times.add("capture", time.perf_counter() - t, len(out))
        return out

    def _next_batch(self) -> list[tuple[str, Frame | StopSignal]]:
        if not self.streams or self.stopped:
            raise StopIteration
        if self.stop is not None and self.stop.is_set():
            self.stopped = True
            self.close()
            signal = StopSignal(os.getpid())
            return [(key, signal) for key in self.everyone]
        out: list[tuple[str, Frame | StopSignal]] = []
        made: dict[str, list[Frame] | None] = {}
        if len(self.streams) > 1:
            # Lockstep games whose agents all acted step at once: a vector env's step costs
            # one game step, not one per game (ViZDoom and numpy let go of the GIL).
            due = [(sid, s) for sid, s in self.streams.items() if getattr(s, "pending", _never)()]
            if len(due) > 1:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(
                        len(self.streams), thread_name_prefix="framewax-game"
                    )
                done = self._pool.map(_step, [s for _sid, s in due])
                made = dict(zip([sid for sid, _s in due], done, strict=True))
        for sid, stream in list(self.streams.items()):
            frames = made[sid] if sid in made else _step(stream)
            if frames is None:  # ended
                stream.close()
                del self.streams[sid]
                continue
            key = self.keys[sid]
            out.extend((key, f) for f in frames)
        if not self.streams and not out:
            raise StopIteration
        return out

    def next_awake(self) -> datetime | None:
        wakes = [s.next_wake() for s in self.streams.values()]
        if not wakes or any(w is None for w in wakes):
            return None  # a stream is ready now (or the partition is about to end)
        wake = min(w for w in wakes if w is not None)
        if self.stop is not None:
            wake = min(wake, time.time() + self.STOP_CHECK_S)
        return _utc(wake)

    def close(self) -> None:
        for stream in self.streams.values():
            stream.close()
        self.streams.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True)  # idle: every step it ran has returned
            self._pool = None


def _never() -> bool:
    return False


def _step(stream: FrameStream) -> list[Frame] | None:
    """A stream's frames due now, or ``None`` once it has ended."""
    try:
        return stream.next_frames()
    except StopIteration:
        return None


Placed = Callable[[int, int, list[str]], None]
"""``on_placed(worker_index, worker_count, stream_ids)``: these streams' steps run on this
worker (with local keys: the streams it captures)."""


class FrameSource(DynamicSource[tuple[str, Frame | StopSignal]]):
    """A capture stage as a Bytewax source, placed so every stream's work stays where its
    frames are (:mod:`operators.placement`): each worker opens the streams placed on it and
    keys their frames to itself. Out: ``(routing_key, Frame)``; every stream ends at its end
    or when ``stop`` is set (then a :class:`StopSignal` goes to every worker).
    """

    def __init__(
        self,
        stage: CaptureStage,
        stop: threading.Event | None = None,
        *,
        workers_per_process: int = 1,
        on_placed: Placed | None = None,
        local_keys: bool = True,
        times: StepTimes | None = None,
    ) -> None:
        self.stage = stage
        self.stop = stop
        self.workers_per_process = workers_per_process
        self.on_placed = on_placed
        self.local_keys = local_keys
        self.times = times

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _WorkerStreams:
        streams = self.stage.stream_ids()
        where = place(streams, worker_count, self.workers_per_process)
        keys = {
            s: routing_key(s, w, worker_count) if self.local_keys else s for s, w in where.items()
        }
        if self.on_placed is not None:
            # the streams whose steps (dedup, model calls, order, sink) run on this worker
            steps_here = [
                s for s in streams if worker_of_key(keys[s], worker_count) == worker_index
            ]
            self.on_placed(worker_index, worker_count, steps_here)
        mine = [s for s in streams if where[s] == worker_index]
        everyone = [routing_key("framewax-stop", w, worker_count) for w in range(worker_count)]
        return _WorkerStreams(
            {s: self.stage.open(s) for s in mine},
            {s: keys[s] for s in mine},
            self.stop,
            everyone,
            self.times,
        )


@operator
def capture(
    step_id: str,
    flow: Dataflow,
    source: CaptureStage | Source[Frame],
    on_capture: Callable[[Frame], None] | None = None,
    stop: threading.Event | None = None,
    *,
    workers_per_process: int = 1,
    on_placed: Placed | None = None,
    local_keys: bool = True,
    on_stop: Callable[[str], None] | None = None,
    times: StepTimes | None = None,
) -> KeyedStream[Frame]:
    """Frames from a capture stage (or any Bytewax source of ``Frame``), keyed so that a
    capture stage's streams stay on the worker that captures them.

    ``on_capture(frame)`` is called for every frame before it goes on (the ledger's
    ``captured``), on the worker whose steps, and sink, resolve that frame: each
    process's ledger holds its own streams' captures and outcomes. A Bytewax source
    named by a config is keyed by ``stream_id`` (Bytewax's placement), and so is every
    stream with ``local_keys=False`` (to measure what locality saves). A stop that
    reaches one process (``stop`` set there) reaches every worker of the cluster, where
    ``on_stop(why)`` is called (it should set their ``stop`` too). Out:
    ``(key, Frame)``; the key is an address, ``Frame.stream_id`` names the stream.

    >>> from bytewax.testing import TestingSink, run_main
    >>> from operators.capture.arena import ArenaSource
    >>> flow = Dataflow("capture_eg")
    >>> frames = capture("capture", flow, ArenaSource(frames=3, fps=0))
    >>> out = []
    >>> op.output("out", op.map_value("seq", frames, lambda f: (f.stream_id, f.seq)), TestingSink(out))
    >>> run_main(flow)
    >>> [v for _key, v in out]
    [('arena-0', 0), ('arena-0', 1), ('arena-0', 2)]
    """
    if isinstance(source, Source):
        frames: Stream[Frame] = op.input("source", flow, source)
        keyed: Any = op.key_on("key", frames, lambda f: f.stream_id)
    else:
        src = FrameSource(
            source,
            stop,
            workers_per_process=workers_per_process,
            on_placed=on_placed,
            local_keys=local_keys,
            times=times,
        )
        keyed = op.input("source", flow, src)

    def on_item(_state: None, item: Frame | StopSignal) -> tuple[None, Frame | StopSignal]:
        if isinstance(item, StopSignal):
            if on_stop is not None and item.pid != os.getpid():
                on_stop(f"stopped in process {item.pid}")
        elif on_capture is not None:
            on_capture(item)
        return None, item

    seen: Any = op.stateful_map("captured", keyed, on_item)
    return op.filter_value("frames", seen, lambda item: isinstance(item, Frame))


# -- dedup ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DedupOut:
    """Streams out of :func:`dedup`."""

    kept: KeyedStream[Frame]
    """Frames worth a model call (and an encoding): ``(stream_id, Frame)``."""

    encode_only: KeyedStream[Frame]
    """Frames the scene classifier read (routed ``classify``): the encoder only."""

    parts: KeyedStream[VisionResult | CacheEntry]
    """For the order step: the classifier's readings and scene-cache pins."""

    skipped: KeyedStream[Outcome]
    """``duplicate(of)``, ``cached(of)``, ``dropped(scene_*)`` and ``failed(capture)``."""


@operator
def dedup(
    step_id: str, up: KeyedStream[Frame], stage: DedupStage, times: StepTimes | None = None
) -> DedupOut:
    """Per stream: drop what did not change, reuse what was seen, route scenes
    (:class:`~operators.dedup.DedupLogic`).

    A still arena (no autopilot) shows the same picture four times: one frame is kept,
    the rest are duplicates of it.

    >>> from bytewax.testing import TestingSink, run_main
    >>> from operators.capture.arena import ArenaSource
    >>> from operators.dedup import DedupStage, RegionDetector
    >>> flow = Dataflow("dedup_eg")
    >>> frames = capture("capture", flow, ArenaSource(frames=4, fps=0, autopilot=False))
    >>> checked = dedup("dedup", frames, DedupStage(RegionDetector("arena")))
    >>> kept, skipped = [], []
    >>> op.output("kept", checked.kept, TestingSink(kept))
    >>> op.output("skipped", checked.skipped, TestingSink(skipped))
    >>> run_main(flow)
    >>> [f.seq for _k, f in kept], [(o.seq, o.status.value, o.of) for _k, o in skipped]
    ([0], [(1, 'duplicate', 0), (2, 'duplicate', 0), (3, 'duplicate', 0)])"""
    routed = _driven("route", up, stage.for_stream, _no_limit, times, "dedup")

    def only(tag: str) -> Callable[[tuple[str, Any]], Any]:
        return lambda item: item[1] if item[0] == tag else None

    return DedupOut(
        kept=op.filter_map_value("kept", routed, only("model")),
        encode_only=op.filter_map_value("encode_only", routed, only("encode")),
        parts=op.filter_map_value("parts", routed, only("part")),
        skipped=op.filter_map_value("skipped", routed, only("skip")),
    )


# -- vision, encoder, order -----------------------------------------------------------------


@operator
def call_vision(
    step_id: str,
    up: KeyedStream[Frame],
    stage: VisionStage,
    until: Until = _no_limit,
    times: StepTimes | None = None,
) -> KeyedStream[VisionResult | Outcome]:
    """Many model calls in flight (:class:`~operators.vision.VisionQueue` per stream).

    In: ``(stream_id, Frame)``. Out: ``(stream_id, VisionResult | Outcome)``,
    one item per frame, in completion order (not ``seq`` order).

    >>> from bytewax.testing import TestingSink, run_main
    >>> from operators.capture.arena import ArenaSource
    >>> from operators.vision import VisionPolicy, VisionStage
    >>> class Reader:  # any VisionBackend: infer(frame) -> VisionResult, on a pool thread
    ...     name = "eg"
    ...     def infer(self, frame):
    ...         return VisionResult(frame.stream_id, frame.seq, health=100, backend=self.name)
    >>> flow = Dataflow("vision_eg")
    >>> frames = capture("capture", flow, ArenaSource(frames=3, fps=0))
    >>> stage = VisionStage(Reader(), VisionPolicy(max_in_flight=2))
    >>> out = []
    >>> op.output("out", call_vision("vision", frames, stage), TestingSink(out))
    >>> run_main(flow)
    >>> sorted((r.seq, r.health) for _k, r in out)
    [(0, 100), (1, 100), (2, 100)]
    """
    return _driven("calls", up, stage.for_stream, until, times, "vision")


@operator
def batch_encode(
    step_id: str,
    up: KeyedStream[Frame],
    stage: EncodeStage,
    until: Until = _no_limit,
    times: StepTimes | None = None,
) -> KeyedStream[Encoded | Outcome]:
    """Window frames per stream and encode each window in one call
    (:class:`~operators.batch.window.BatchWindow`).

    In: ``(stream_id, Frame)``. Out: ``(stream_id, Encoded | Outcome)``, one
    item per input frame (a failed frame fails alone).

    >>> import numpy as np
    >>> from bytewax.testing import TestingSink, run_main
    >>> from operators.batch import EncodeStage, WindowPolicy
    >>> from operators.capture.arena import ArenaSource
    >>> class Tiny:  # any BatchEncoder: N images in, (N, 84, 84, 3) and (N, D) out
    ...     def encode(self, images):
    ...         n = len(images)
    ...         return np.zeros((n, 84, 84, 3), np.uint8), np.zeros((n, 4), np.float32)
    >>> flow = Dataflow("encode_eg")
    >>> frames = capture("capture", flow, ArenaSource(frames=5, fps=0))
    >>> stage = EncodeStage(Tiny(), WindowPolicy(max_size=4))
    >>> out = []
    >>> op.output("out", batch_encode("encode", frames, stage), TestingSink(out))
    >>> run_main(flow)
    >>> sorted((e.seq, e.embedding.shape) for _k, e in out)
    [(0, (4,)), (1, (4,)), (2, (4,)), (3, (4,)), (4, (4,))]
    """
    return _driven("window", up, stage.for_stream, until, times, "batch")


@operator
def order_by_seq(
    step_id: str,
    up: KeyedStream[Part],
    stage: OrderStage,
    until: Until = _no_limit,
    times: StepTimes | None = None,
) -> KeyedStream[Observation | Outcome]:
    """Exactly one ``Observation`` or ``Outcome`` per ``seq``, in order, per stream
    (:class:`~operators.order.Resequencer`).

    In: ``(stream_id, VisionResult | Encoded | Outcome | CacheEntry)``.
    Out: ``(stream_id, Observation | Outcome)``.

    Seq 1's halves arrive before seq 0's; the observations come out in ``seq`` order:

    >>> import numpy as np
    >>> from bytewax.testing import TestingSink, TestingSource, run_main
    >>> from operators.order import OrderPolicy, OrderStage
    >>> def half(seq):
    ...     return Encoded("s", seq, 0.0, np.zeros((84, 84, 3), np.uint8), np.zeros(4, np.float32))
    >>> parts = [("s", VisionResult("s", 1, health=90)), ("s", half(1)),
    ...          ("s", VisionResult("s", 0, health=100)), ("s", half(0))]
    >>> flow = Dataflow("order_eg")
    >>> up = op.input("parts", flow, TestingSource(parts))
    >>> out = []
    >>> op.output("out", order_by_seq("order", up, OrderStage(OrderPolicy())), TestingSink(out))
    >>> run_main(flow)
    >>> [(o.seq, o.vision.health, o.status.value) for _k, o in out]
    [(0, 100, 'processed'), (1, 90, 'processed')]
    """
    return _driven("resequence", up, stage.for_stream, until, times, "order")
