"""Windowed batching and batch encoding.

Bytewax's ``collect`` restarts its timeout on every item (an inactivity
timeout: on a fast stream it never fires) and has no cap on what it holds,
so this step keeps its own window: a batch is cut when it reaches
``max_size`` frames or when ``timeout_ms`` has passed since its *first*
frame, whichever comes first, and at the end of the stream. Each batch is
one torch call on a single-thread pool, polled so the worker never blocks.
Batches waiting for the encoder are bounded; frames beyond that bound are
``dropped(encoder_backlog)``.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

import bytewax.operators as op
import numpy as np
from bytewax.dataflow import operator
from bytewax.operators import KeyedStream, StatefulBatchLogic

from operators._pool import BoundedPool, soon
from operators.errors import StageError
from operators.types import Encoded, Frame, Outcome

__all__ = [
    "BatchEncoder",
    "BatchMetrics",
    "SizeTuner",
    "WindowPolicy",
    "batch_encode",
    "encode_frames",
]

logger = logging.getLogger(__name__)
Clock = Callable[[], float]


class BatchEncoder(Protocol):
    """Encodes images in one call: ``(N, 84, 84, 3)`` uint8 and ``(N, D)`` float32."""

    def encode(self, images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass(frozen=True)
class WindowPolicy:
    max_size: int = 8
    timeout_ms: float = 20.0
    max_pending_batches: int = 2
    poll_ms: float = 1.0
    latency_budget_ms: float = 0.0
    """Autotuning (0: off): the batch-size cap becomes the largest size whose window
    wait plus compute is predicted to stay within this budget (see ``SizeTuner``)."""

    def __post_init__(self) -> None:
        if (
            self.max_size < 1
            or self.timeout_ms < 0
            or self.max_pending_batches < 1
            or self.latency_budget_ms < 0
        ):
            msg = f"batch: max_size >= 1, timeout_ms >= 0 and max_pending_batches >= 1 are required; got {self}"
            raise ValueError(msg)


@dataclass
class BatchMetrics:
    batches: int = 0
    frames: int = 0
    sizes: list[int] = field(default_factory=list)
    wait_ms: list[float] = field(default_factory=list)  # first frame in → batch cut
    compute_ms: list[float] = field(default_factory=list)
    size_cap: int = 0  # the batch-size cap now (max_size, or the autotuner's choice)


class SizeTuner:
    """Picks the largest batch size whose added latency fits a budget, from what it measures.

    The added latency of a batch's first frame is the window's fill time,
    ``min(timeout, (B - 1) × frame interval)``, plus the batch's compute, fitted
    online as ``a + b·B`` (least squares over the last batches; ``a = 0`` until two
    sizes were seen). The frame interval is a moving average of arrivals.
    """

    def __init__(self, max_size: int, timeout_ms: float, budget_ms: float, window: int = 32):
        self.max_size, self.timeout_ms, self.budget_ms = max_size, timeout_ms, budget_ms
        self.samples: deque[tuple[int, float]] = deque(maxlen=window)
        self.interval_ms: float | None = None
        self._last_arrival: float | None = None
        self.cap = max_size

    def arrived(self, now: float, n: int = 1) -> None:
        if self._last_arrival is not None and n > 0:
            dt = (now - self._last_arrival) * 1000.0 / n
            self.interval_ms = dt if self.interval_ms is None else 0.9 * self.interval_ms + 0.1 * dt
        self._last_arrival = now

    def measured(self, size: int, compute_ms: float) -> int:
        """Record a batch; returns the new cap."""
        self.samples.append((size, compute_ms))
        sizes = np.array([s for s, _ in self.samples], np.float64)
        ms = np.array([m for _, m in self.samples], np.float64)
        if len(set(sizes.tolist())) >= 2:
            b, a = np.polyfit(sizes, ms, 1)
            a, b = max(float(a), 0.0), max(float(b), 1e-6)
        else:
            a, b = 0.0, float(ms.mean() / sizes.mean())
        interval = self.interval_ms if self.interval_ms is not None else self.timeout_ms
        self.cap = 1
        for size in range(self.max_size, 0, -1):
            fill = min(self.timeout_ms, (size - 1) * interval)
            if fill + a + b * size <= self.budget_ms:
                self.cap = size
                break
        return self.cap


def encode_frames(encoder: BatchEncoder, frames: list[Frame], step: str) -> list[Encoded | Outcome]:
    """Encode one batch: one ``Encoded`` or ``failed`` outcome per input frame, in order.

    Frames of the wrong shape fail alone; the rest of the batch is encoded.
    """
    good: list[Frame] = []
    out: dict[int, Encoded | Outcome] = {}
    for f in frames:
        img = f.image
        if (
            not isinstance(img, np.ndarray)
            or img.dtype != np.uint8
            or img.ndim != 3
            or img.shape[2] != 3
        ):
            shape = getattr(img, "shape", None)
            out[f.seq] = Outcome.failed(
                f, "encode", f"{step}: frame shape {shape} is not (H, W, 3) uint8"
            )
        else:
            good.append(f)
    if good:
        try:
            visual, emb = encoder.encode([f.image for f in good])
            if len(visual) != len(good) or len(emb) != len(good):
                msg = f"{step}: encoder returned {len(visual)} visuals / {len(emb)} embeddings for {len(good)} frames"
                raise StageError("encode", msg)
            for i, f in enumerate(good):
                out[f.seq] = Encoded(
                    f.stream_id, f.seq, f.captured_at, visual[i].copy(), emb[i].copy(), f.truth
                )
        except StageError as ex:
            for f in good:
                out[f.seq] = Outcome.failed(f, ex.reason, ex.detail)
        except Exception as ex:  # an encoder bug fails its batch, not the flow
            logger.exception("%s: encoder failed on a batch of %d", step, len(good))
            for f in good:
                out[f.seq] = Outcome.failed(f, "encode", f"{type(ex).__name__}: {ex}")
    return [out[f.seq] for f in frames]


class _WindowLogic(StatefulBatchLogic[Frame, "Encoded | Outcome", None]):
    def __init__(self, stage: _Stage) -> None:
        self.stage = stage
        pol = stage.policy
        self.tuner = (
            SizeTuner(pol.max_size, pol.timeout_ms, pol.latency_budget_ms)
            if pol.latency_budget_ms > 0
            else None
        )
        self.cap = pol.max_size
        stage.metrics.size_cap = self.cap
        self.buffer: list[Frame] = []
        self.first_at = 0.0
        self.running: dict[Future[list[Encoded | Outcome]], tuple[float, int]] = {}
        self.ready: list[list[Frame]] = []  # cut, waiting for the encoder

    def on_batch(self, values: list[Frame]) -> tuple[list[Encoded | Outcome], bool]:
        now = self.stage.clock()
        if self.tuner is not None:
            self.tuner.arrived(now, len(values))
        for f in values:
            if not self.buffer:
                self.first_at = now
            self.buffer.append(f)
            if len(self.buffer) >= self.cap:
                self._cut(now)
        return self._pump(now), StatefulBatchLogic.RETAIN

    def on_notify(self) -> tuple[list[Encoded | Outcome], bool]:
        now = self.stage.clock()
        if self.buffer and (now - self.first_at) * 1000.0 >= self.stage.policy.timeout_ms:
            self._cut(now)
        return self._pump(now), StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[list[Encoded | Outcome], bool]:
        now = self.stage.clock()
        if self.buffer:
            self._cut(now)
        out = self._pump(now)
        while self.running or self.ready:
            if self.running:
                wait(list(self.running), timeout=0.05, return_when=FIRST_COMPLETED)
            else:
                time.sleep(self.stage.policy.poll_ms / 1000.0)
            out.extend(self._pump(self.stage.clock()))
        return out, StatefulBatchLogic.RETAIN

    def notify_at(self) -> datetime | None:
        pol = self.stage.policy
        if self.running or self.ready:
            return soon(pol.poll_ms)
        if self.buffer:
            due = self.first_at + pol.timeout_ms / 1000.0
            return datetime.fromtimestamp(due, tz=UTC) + timedelta(microseconds=50)
        return None

    def snapshot(self) -> None:
        return None

    def _cut(self, now: float) -> None:
        m = self.stage.metrics
        m.wait_ms.append((now - self.first_at) * 1000.0)
        self.ready.append(self.buffer)
        self.buffer = []

    def _pump(self, now: float) -> list[Encoded | Outcome]:
        st, out = self.stage, []
        for fut, (t0, n) in list(self.running.items()):
            if fut.done():
                del self.running[fut]
                st.pool.release()
                compute_ms = (time.perf_counter() - t0) * 1000.0
                st.metrics.compute_ms.append(compute_ms)
                if self.tuner is not None:
                    self.cap = st.metrics.size_cap = self.tuner.measured(n, compute_ms)
                st.metrics.batches += 1
                st.metrics.frames += n
                st.metrics.sizes.append(n)
                out.extend(fut.result())  # encode_frames never raises
        # Bound what waits for the encoder: drop the oldest frames beyond it.
        limit = st.policy.max_pending_batches * st.policy.max_size
        waiting = sum(len(b) for b in self.ready)
        while waiting > limit and self.ready:
            f = self.ready[0].pop(0)
            waiting -= 1
            out.append(
                Outcome.dropped(
                    f, "encoder_backlog", f"over {limit} frames waiting for the encoder"
                )
            )
            if not self.ready[0]:
                self.ready.pop(0)
        while self.ready and st.pool.try_acquire():
            batch = self.ready.pop(0)
            fut = st.pool.submit(encode_frames, st.encoder, batch, st.step_id)
            self.running[fut] = (time.perf_counter(), len(batch))
        return out


@dataclass
class _Stage:
    step_id: str
    encoder: BatchEncoder
    policy: WindowPolicy
    pool: BoundedPool
    metrics: BatchMetrics
    clock: Clock


@operator
def batch_encode(
    step_id: str,
    up: KeyedStream[Frame],
    encoder: BatchEncoder,
    policy: WindowPolicy,
    pool: BoundedPool,
    metrics: BatchMetrics,
    clock: Clock = time.time,
) -> KeyedStream[Encoded | Outcome]:
    """Window frames per stream and encode each window in one call.

    In: ``(stream_id, Frame)``. Out: ``(stream_id, Encoded | Outcome)``, one
    item per input frame (a failed frame fails alone).
    """
    stage = _Stage(step_id, encoder, policy, pool, metrics, clock)
    return op.stateful_batch("window", up, lambda _resume: _WindowLogic(stage))
