"""The vision stage: many model calls in flight, bounded, never blocking a worker.

``call_vision`` keeps, per stream, a queue of frames waiting for a slot and
the calls in flight. Each Bytewax activation it harvests finished calls,
drops frames that waited past the staleness budget (``dropped(stale)``) or
overflowed the queue (``dropped(backlog)``), and submits waiting frames
while the step's in-flight limit allows: oldest first (FIFO), or newest
first, where the older frames still waiting when the newest are sent are
``dropped(superseded)`` (they would only hold the ordered output back). Calls run
on a :class:`~operators._pool.BoundedPool`; a call that outlives its deadline
is ``failed(timeout)``. Every failure comes out as an ``Outcome`` on the
stream, never as an exception.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Protocol, runtime_checkable

import bytewax.operators as op
from bytewax.dataflow import operator
from bytewax.operators import KeyedStream, StatefulBatchLogic

from operators._pool import BoundedPool, soon
from operators.errors import StageError
from operators.types import Frame, Outcome, VisionResult

__all__ = [
    "RoutedBackend",
    "ServeOrder",
    "VisionBackend",
    "VisionMetrics",
    "VisionPolicy",
    "call_vision",
]

logger = logging.getLogger(__name__)
Clock = Callable[[], float]


class VisionBackend(Protocol):
    """Reads one frame; blocking, called on a pool thread.

    Raise :class:`~operators.errors.VisionError` (or any ``StageError``) with
    a short ``reason`` for a per-frame failure.
    """

    name: str

    def infer(self, frame: Frame) -> VisionResult: ...


@runtime_checkable
class RoutedBackend(VisionBackend, Protocol):
    """A backend with slots of its own (endpoints with limits): the operator reserves
    one before it sends a frame, so a frame waits here, under the staleness
    budget, rather than inside the backend. ``reserve`` never blocks; ``None``
    means no slot is free now. ``infer_on`` ends the lease, whatever happens.
    """

    def reserve(self) -> Any | None: ...

    def infer_on(self, lease: Any, frame: Frame) -> VisionResult: ...


class ServeOrder(str, Enum):
    """Which waiting frame gets the next free slot."""

    NEWEST = "newest"
    OLDEST = "oldest"


@dataclass(frozen=True)
class VisionPolicy:
    """Limits of the vision stage (see ``flows.config.VisionConfig`` for the docs)."""

    max_in_flight: int = 4
    max_pending: int = 64
    staleness_ms: float = 2000.0
    deadline_ms: float = 10000.0
    order: ServeOrder = ServeOrder.NEWEST
    poll_ms: float = 1.0
    grace_ms: float = 0.0
    """Extra time past ``deadline_ms`` before the operator gives a call up, for
    backends that enforce the deadline themselves (and say why they failed)."""


@dataclass
class VisionMetrics:
    """Counters of the step, shared by its keys; read by the run summary."""

    submitted: int = 0
    completed: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    latency_ms: deque[float] = field(default_factory=lambda: deque(maxlen=10000))
    queue_wait_ms: deque[float] = field(default_factory=lambda: deque(maxlen=10000))

    @property
    def failed(self) -> int:
        """Calls that ended without a result, all reasons together."""
        return sum(self.failures.values())


def _timed_infer(
    backend: VisionBackend, frame: Frame, lease: Any = None
) -> tuple[VisionResult, float]:
    t0 = time.perf_counter()
    if lease is None:
        return backend.infer(frame), (time.perf_counter() - t0) * 1000.0
    result = backend.infer_on(lease, frame)  # type: ignore[attr-defined]
    return result, (time.perf_counter() - t0) * 1000.0


class _VisionLogic(StatefulBatchLogic[Frame, "VisionResult | Outcome", None]):
    def __init__(self, stage: _Stage) -> None:
        self.stage = stage
        self.pending: deque[Frame] = deque()
        self.inflight: dict[Future[tuple[VisionResult, float]], tuple[Frame, float]] = {}
        self.abandoned: set[Future[tuple[VisionResult, float]]] = set()
        # Finished futures, appended by the pool threads (deque.append is atomic),
        # so a poll costs O(finished), not O(in flight).
        self.finished: deque[Future[tuple[VisionResult, float]]] = deque()
        self.deferred: list[Outcome] = []

    def on_batch(self, values: list[Frame]) -> tuple[list[VisionResult | Outcome], bool]:
        self.pending.extend(values)
        return self._pump(), StatefulBatchLogic.RETAIN

    def on_notify(self) -> tuple[list[VisionResult | Outcome], bool]:
        return self._pump(), StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[list[VisionResult | Outcome], bool]:
        # Bytewax stops notifying once its input has ended, so finish here:
        # wait (bounded by each call's deadline) for what is in flight.
        pol = self.stage.policy
        give_up = time.monotonic() + (pol.deadline_ms + pol.staleness_ms) / 1000.0 + 1.0
        out = self._pump()
        while (self.inflight or self.pending) and time.monotonic() < give_up:
            if self.inflight:
                wait(list(self.inflight), timeout=0.05, return_when=FIRST_COMPLETED)
            else:  # waiting for a slot held by another stream
                time.sleep(pol.poll_ms / 1000.0)
            out.extend(self._pump())
        for frame, _sent in self.inflight.values():
            out.append(Outcome.failed(frame, "timeout", "still in flight when the stream ended"))
        out.extend(
            Outcome.dropped(f, "shutdown", "no slot before the stream ended") for f in self.pending
        )
        out.extend(self.deferred)
        self.deferred = []
        self.inflight.clear()
        self.pending.clear()
        return out, StatefulBatchLogic.RETAIN

    def notify_at(self) -> datetime | None:
        if self.inflight or self.pending or self.abandoned or self.deferred:
            return soon(self.stage.policy.poll_ms)
        return None

    def snapshot(self) -> None:
        # In-flight calls cannot be resumed; a recovered run starts empty.
        return None

    def _pump(self) -> list[VisionResult | Outcome]:
        st, pol = self.stage, self.stage.policy
        out: list[VisionResult | Outcome] = []
        # Drops decided with the last harvest go out now, after the results did:
        # a result shares its activation with no bulk of drops to order and sink.
        carried, self.deferred = self.deferred, []
        drops: list[Outcome] = []
        now = st.clock()
        while self.finished:
            fut = self.finished.popleft()
            if fut in self.abandoned:
                self.abandoned.discard(fut)
                st.pool.release()
            elif fut in self.inflight:
                frame, sent = self.inflight.pop(fut)
                st.pool.release()
                out.append(self._harvest(fut, frame, sent))
        # Calls past their deadline; the dict is in send order, so only the oldest
        # need looking at.
        limit = (pol.deadline_ms + pol.grace_ms) / 1000.0
        while self.inflight:
            fut, (frame, sent) = next(iter(self.inflight.items()))
            if now - sent <= limit:
                break
            # The thread cannot be killed; its slot stays taken until it ends.
            del self.inflight[fut]
            self.abandoned.add(fut)
            st.metrics.failures["timeout"] += 1
            out.append(
                Outcome.failed(frame, "timeout", f"no result within {pol.deadline_ms:.0f} ms")
            )
        # Staleness and backlog policies on the waiting queue.
        budget = pol.staleness_ms / 1000.0
        if budget > 0 and self.pending and now - self.pending[0].captured_at > budget:
            keep: deque[Frame] = deque()
            for f in self.pending:
                if now - f.captured_at > budget:
                    drops.append(
                        Outcome.dropped(f, "stale", f"waited {(now - f.captured_at) * 1000:.0f} ms")
                    )
                else:
                    keep.append(f)
            self.pending = keep
        while len(self.pending) > pol.max_pending:
            drops.append(
                Outcome.dropped(self.pending.popleft(), "backlog", f"queue over {pol.max_pending}")
            )
        sent_newest = False
        while self.pending and st.pool.try_acquire():
            lease = None
            if st.routed:
                lease = st.backend.reserve()  # type: ignore[attr-defined]
                if lease is None:  # every endpoint is full: wait here, under the budget
                    st.pool.release()
                    break
            f = self.pending.pop() if pol.order is ServeOrder.NEWEST else self.pending.popleft()
            st.metrics.submitted += 1
            st.metrics.queue_wait_ms.append((now - f.captured_at) * 1000.0)
            fut = st.pool.submit(_timed_infer, st.backend, f, lease)
            self.inflight[fut] = (f, now)
            fut.add_done_callback(self.finished.append)
            sent_newest = pol.order is ServeOrder.NEWEST
        if sent_newest:
            # Newest-first: frames older than the ones just sent would only hold
            # the ordered output back until they went stale; drop them now.
            drops.extend(
                Outcome.dropped(f, "superseded", "a newer frame took the free slot")
                for f in self.pending
            )
            self.pending.clear()
        if drops and any(isinstance(r, VisionResult) for r in out):
            self.deferred = drops  # next poll, a millisecond from now (deferred once only)
            return carried + out
        return carried + drops + out

    def _harvest(
        self, fut: Future[tuple[VisionResult, float]], frame: Frame, sent: float
    ) -> VisionResult | Outcome:
        m = self.stage.metrics
        try:
            result, ms = fut.result()
        except StageError as ex:
            m.failures[ex.reason] += 1
            return Outcome.failed(frame, ex.reason, ex.detail)
        except Exception as ex:  # a backend bug must not stop the flow
            logger.exception(
                "vision backend %s failed on %s#%s",
                self.stage.backend.name,
                frame.stream_id,
                frame.seq,
            )
            m.failures["error"] += 1
            return Outcome.failed(frame, "error", f"{type(ex).__name__}: {ex}")
        if not isinstance(result, VisionResult) or (result.stream_id, result.seq) != (
            frame.stream_id,
            frame.seq,
        ):
            m.failures["error"] += 1
            return Outcome.failed(
                frame, "error", f"backend returned {result!r} for seq {frame.seq}"
            )
        m.completed += 1
        m.latency_ms.append(ms)
        return dataclasses.replace(result, queue_ms=max(0.0, (sent - frame.captured_at) * 1000.0))


@dataclass
class _Stage:
    backend: VisionBackend
    policy: VisionPolicy
    pool: BoundedPool
    metrics: VisionMetrics
    clock: Clock
    routed: bool = False

    def __post_init__(self) -> None:
        self.routed = isinstance(self.backend, RoutedBackend)


@operator
def call_vision(
    step_id: str,
    up: KeyedStream[Frame],
    backend: VisionBackend,
    policy: VisionPolicy,
    pool: BoundedPool,
    metrics: VisionMetrics,
    clock: Clock = time.time,
) -> KeyedStream[VisionResult | Outcome]:
    """Run ``backend`` on every frame with up to ``policy.max_in_flight`` calls in flight.

    In: ``(stream_id, Frame)``. Out: ``(stream_id, VisionResult | Outcome)``,
    one item per frame, in completion order (not ``seq`` order).
    """
    stage = _Stage(backend, policy, pool, metrics, clock)
    return op.stateful_batch("calls", up, lambda _resume: _VisionLogic(stage))
