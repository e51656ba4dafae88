"""Windowed batching and batch encoding.

Bytewax's ``collect`` restarts its timeout on every item (an inactivity
timeout: on a fast stream it never fires) and has no cap on what it holds,
so each stream keeps its own :class:`BatchWindow`: a batch is cut when it
reaches the size cap or when ``timeout_ms`` has passed since its *first*
frame, whichever comes first, and at the end of the stream. Each batch is
one encoder call on the stage's single-slot pool, polled so the worker never
blocks; batches waiting for the encoder are bounded (beyond that, frames are
``dropped(encoder_backlog)``), and a batch running past ``deadline_ms`` fails
its frames as ``failed(timeout)``. No Bytewax here: :mod:`operators.steps`
adapts it.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from operators.clock import SYSTEM_CLOCK, Clock
from operators.errors import StageError
from operators.frame import Frame, image_problem
from operators.observation import Encoded
from operators.options import at_least, greater_than
from operators.outcome import Outcome
from operators.pool import BoundedPool, InlineExecutor, pump_until_done
from operators.stage import SupportsClose, SupportsWarmUp
from operators.stats import percentiles

__all__ = [
    "BatchEncoder",
    "BatchMetrics",
    "BatchWindow",
    "EncodeStage",
    "SizeTuner",
    "WindowPolicy",
    "encode_frames",
]

logger = logging.getLogger(__name__)


class BatchEncoder(Protocol):
    """Encodes images in one call: ``(N, 84, 84, 3)`` uint8 and ``(N, D)`` float32."""

    def encode(self, images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass(frozen=True)
class WindowPolicy:
    """How frames are batched for the encoder. These are also the ``[batch]`` config keys."""

    max_size: int = 8
    """Largest batch the encoder gets."""
    timeout_ms: float = 30.0
    """A batch is cut this long after its first frame arrived, full or not."""
    max_pending_batches: int = 2
    """Batches' worth of frames that may wait for the encoder before the oldest are dropped."""
    latency_budget_ms: float = 0.0
    """Autotune the batch size (0: off): the largest batch (up to ``max_size``) whose window
    wait plus compute stays within this many ms, learned from the batches run (``SizeTuner``)."""
    deadline_ms: float = 30000.0
    """A batch still encoding this long after it started fails its frames as ``failed(timeout)``."""
    poll_ms: float = 1.0
    """How often a running batch is checked for completion."""
    inline: bool = False
    """Encode in the worker's own thread instead of on the encoder's thread: for a small
    encoder that costs less than the hop and the poll that collects its batch (the CPU
    encoder in lockstep, one frame a batch). The worker waits for each batch and a batch
    is not given up at ``deadline_ms``."""

    def __post_init__(self) -> None:
        at_least("batch.max_size", self.max_size, 1)
        at_least("batch.timeout_ms", self.timeout_ms, 0)
        at_least("batch.max_pending_batches", self.max_pending_batches, 1)
        at_least("batch.latency_budget_ms", self.latency_budget_ms, 0)
        greater_than("batch.deadline_ms", self.deadline_ms, 0)
        greater_than("batch.poll_ms", self.poll_ms, 0)


@dataclass
class BatchMetrics:
    """Counters of the stage (recent samples bounded)."""

    batches: int = 0
    frames: int = 0
    sizes: deque[int] = field(default_factory=lambda: deque(maxlen=10000))
    wait_ms: deque[float] = field(default_factory=lambda: deque(maxlen=10000))
    """First frame in → batch cut."""
    compute_ms: deque[float] = field(default_factory=lambda: deque(maxlen=10000))
    size_cap: int = 0
    """The batch-size cap now (``max_size``, or the autotuner's choice)."""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    """Held while updating: several workers of one process share these counters."""
    on_sample: Callable[[str, float], None] | None = field(default=None, repr=False, compare=False)
    """Also called with ``("batch_window", seconds)`` and ``("batch_compute", seconds)``."""


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
    Never raises.
    """
    good: list[Frame] = []
    out: dict[int, Encoded | Outcome] = {}
    for f in frames:
        problem = image_problem(f.image)
        if problem is not None:
            out[f.seq] = Outcome.failed(f, "encode", f"{step}: {problem}")
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


class EncodeStage:
    """The encode step's shared parts: the encoder, its single-slot pool, counters, clock."""

    name = "batch"

    def __init__(
        self,
        encoder: BatchEncoder,
        policy: WindowPolicy,
        *,
        pool: BoundedPool | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.encoder = encoder
        self.policy = policy
        executor = InlineExecutor() if policy.inline else None
        self.pool = pool or BoundedPool("framewax-encode", 1, executor)
        self.clock = clock
        self.stats = BatchMetrics(size_cap=policy.max_size)

    def for_stream(self) -> BatchWindow:
        return BatchWindow(self)

    def warm_up(self) -> None:
        if isinstance(self.encoder, SupportsWarmUp):
            self.encoder.warm_up()

    def close(self) -> None:
        self.pool.close()
        if isinstance(self.encoder, SupportsClose):
            self.encoder.close()

    def sample_to(self, on_sample: Callable[[str, float], None] | None) -> None:
        """Report each item's timing to ``on_sample(name, seconds)`` (metrics histograms)."""
        self.stats.on_sample = on_sample

    def metrics(self) -> dict[str, Any]:
        m = self.stats
        with m.lock:
            return {
                "batches": m.batches,
                "frames": m.frames,
                "mean_size": m.frames / m.batches if m.batches else 0.0,
                "window_wait_ms": percentiles(m.wait_ms),
                "compute_ms": percentiles(m.compute_ms),
                "size_cap": m.size_cap,
                "in_flight": self.pool.in_flight,
                "device": str(getattr(self.encoder, "loaded_device", "")),
            }


@dataclass
class _Running:
    frames: list[Frame]
    started: float  # on the stage's clock


Out = Encoded | Outcome


class BatchWindow:
    """One stream's window and the batches it sent (see the module doc)."""

    def __init__(self, stage: EncodeStage) -> None:
        self.stage = stage
        pol = stage.policy
        self.tuner = (
            SizeTuner(pol.max_size, pol.timeout_ms, pol.latency_budget_ms)
            if pol.latency_budget_ms > 0
            else None
        )
        self.cap = pol.max_size
        self.buffer: list[Frame] = []
        self.first_at = 0.0
        self.ready: deque[tuple[list[Frame], float]] = deque()  # cut, waiting for the encoder
        self.running: dict[Future[list[Out]], _Running] = {}
        self.progress_at = stage.clock.now()

    # -- StreamLogic ---------------------------------------------------------------
    def offer(self, frames: list[Frame]) -> list[Out]:
        now = self.stage.clock.now()
        if self.tuner is not None:
            self.tuner.arrived(now, len(frames))
        for f in frames:
            if not self.buffer:
                self.first_at = now
            self.buffer.append(f)
            if len(self.buffer) >= self.cap:
                self._cut(now)
        if self.buffer and self.stage.policy.timeout_ms <= 0:
            self._cut(now)  # no window to wait for: this activation's frames are the batch
        return self._pump(now)

    def poll(self) -> list[Out]:
        now = self.stage.clock.now()
        if self.buffer and (now - self.first_at) * 1000.0 >= self.stage.policy.timeout_ms:
            self._cut(now)
        return self._pump(now)

    def next_wake(self) -> float | None:
        pol = self.stage.policy
        if self.running or self.ready:
            return self.stage.clock.now() + pol.poll_ms / 1000.0
        if self.buffer:
            return self.first_at + pol.timeout_ms / 1000.0
        return None

    def drain(self, until: float | None = None) -> list[Out]:
        """Encode what is left: each batch ends by its deadline; batches that get no slot
        for a whole deadline, or are still waiting at ``until``, are ``dropped(shutdown)``."""
        st, pol = self.stage, self.stage.policy
        clock = st.clock
        now = clock.now()
        if self.buffer:
            self._cut(now)
        out = self._pump(now)
        more, why = pump_until_done(
            clock,
            busy=lambda: bool(self.running or self.ready),
            running=lambda: bool(self.running),
            pump=lambda: self._pump(clock.now()),
            progress_at=lambda: self.progress_at,
            stall_s=pol.deadline_ms / 1000.0,
            stall_why=f"no encoder slot freed within {pol.deadline_ms:.0f} ms",
            poll_s=pol.poll_ms / 1000.0,
            until=until,
        )
        out.extend(more)
        for run in self.running.values():
            out.extend(Outcome.failed(f, "timeout", f"still encoding {why}") for f in run.frames)
        for batch, _cut_at in self.ready:
            out.extend(Outcome.dropped(f, "shutdown", f"not encoded {why}") for f in batch)
        self.running.clear()
        self.ready.clear()
        return out

    # -- the window ------------------------------------------------------------------
    def _cut(self, now: float) -> None:
        m = self.stage.stats
        with m.lock:
            m.wait_ms.append((now - self.first_at) * 1000.0)
        if m.on_sample is not None:
            m.on_sample("batch_window", now - self.first_at)
        self.ready.append((self.buffer, now))
        self.buffer = []

    def _pump(self, now: float) -> list[Out]:
        st, pol = self.stage, self.stage.policy
        out: list[Out] = self._collect(now)
        while self.ready and st.pool.try_acquire():
            batch, _ = self.ready.popleft()
            fut = st.pool.submit(encode_frames, st.encoder, batch, st.name)
            self.running[fut] = _Running(batch, now)
            self.progress_at = now
        if pol.inline:
            out.extend(self._collect(st.clock.now()))  # just encoded, in this thread
        # Bound what still waits for the encoder: drop the oldest frames beyond it.
        limit = pol.max_pending_batches * pol.max_size
        waiting = sum(len(b) for b, _ in self.ready)
        while waiting > limit and self.ready:
            batch, _ = self.ready[0]
            f = batch.pop(0)
            waiting -= 1
            detail = f"over {limit} frames waiting for the encoder"
            out.append(Outcome.dropped(f, "encoder_backlog", detail))
            if not batch:
                self.ready.popleft()
        return out

    def _collect(self, now: float) -> list[Out]:
        """Finished batches' frames, and the frames of batches past their deadline."""
        pol = self.stage.policy
        out: list[Out] = []
        for fut, run in list(self.running.items()):
            if fut.done():
                del self.running[fut]
                self.progress_at = now
                self._finished(run, now)
                # encode_frames never raises
                out.extend(fut.result())
            elif now - run.started > pol.deadline_ms / 1000.0:
                # The thread cannot be killed; the slot stays taken until it returns.
                del self.running[fut]
                self.progress_at = now
                detail = f"batch of {len(run.frames)} not encoded within {pol.deadline_ms:.0f} ms"
                out.extend(Outcome.failed(f, "timeout", detail) for f in run.frames)
        return out

    def _finished(self, run: _Running, now: float) -> None:
        """Count a batch; its compute time (send → harvest, on the stage's clock) tunes the cap."""
        m = self.stage.stats
        compute_ms = (now - run.started) * 1000.0
        n = len(run.frames)
        if self.tuner is not None:
            self.cap = self.tuner.measured(n, compute_ms)
        with m.lock:
            m.compute_ms.append(compute_ms)
            m.size_cap = self.cap
            m.batches += 1
            m.frames += n
            m.sizes.append(n)
        if m.on_sample is not None:
            m.on_sample("batch_compute", compute_ms / 1000.0)
