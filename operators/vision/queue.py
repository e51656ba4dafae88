"""The vision stage: many model calls in flight, bounded, never blocking a worker.

Per stream, a :class:`VisionQueue` keeps the frames waiting for a slot and
the calls in flight. Each time it is offered frames or polled it:

1. harvests finished calls (a ``VisionResult``, or ``failed(reason)``);
2. gives up calls past their deadline (``failed(timeout)``; the thread cannot
   be killed, so its slot stays taken until the call returns);
3. drops waiting frames older than the staleness budget (``dropped(stale)``);
4. sends waiting frames while the stage's pool (shared by every stream) has
   a slot: oldest first, or newest first, where the older frames still
   waiting are ``dropped(superseded)`` (they would only hold the ordered
   output back);
5. bounds what still waits (``dropped(backlog)``, the oldest first).

Time comes from the injected clock, calls run on a
:class:`~operators.pool.BoundedPool`, so the whole schedule is testable on a
fake clock with a manual executor. No Bytewax here: :mod:`operators.steps`
adapts it.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol, runtime_checkable

from operators.clock import SYSTEM_CLOCK, Clock
from operators.errors import StageError
from operators.frame import Frame
from operators.options import at_least, choice, greater_than
from operators.outcome import Outcome
from operators.placement import share_of
from operators.pool import BoundedPool, InlineExecutor, pump_until_done
from operators.reading import VisionResult
from operators.stage import SupportsClose, SupportsMetrics, SupportsShare, SupportsWarmUp
from operators.stats import percentiles

__all__ = [
    "RoutedBackend",
    "ServeOrder",
    "VisionBackend",
    "VisionMetrics",
    "VisionPolicy",
    "VisionQueue",
    "VisionStage",
]

logger = logging.getLogger(__name__)


class VisionBackend(Protocol):
    """Reads one frame; blocking, called on a pool thread.

    Raise :class:`~operators.errors.VisionError` (or any ``StageError``) with
    a short ``reason`` for a per-frame failure. Optionally implements
    ``warm_up()``, ``close()`` and ``metrics()``, which the stage calls.
    """

    name: str

    def infer(self, frame: Frame) -> VisionResult: ...


@runtime_checkable
class RoutedBackend(Protocol):
    """A backend with slots of its own (endpoints with limits): the stage reserves
    one before it sends a frame, so a frame waits here, under the staleness
    budget, rather than inside the backend. ``reserve`` never blocks; ``None``
    means no slot is free now. ``infer_on`` ends the lease, whatever happens.
    """

    name: str

    def reserve(self) -> Any | None: ...

    def infer_on(self, lease: Any, frame: Frame) -> VisionResult: ...


@runtime_checkable
class EnforcesDeadline(Protocol):
    """A backend that cuts its own calls at ``deadline_ms`` and says why they failed
    (drip, retries); the stage's deadline then is a backstop, ``grace_ms`` later."""

    enforces_deadline: bool


class ServeOrder(str, Enum):
    """Which waiting frame gets the next free slot."""

    NEWEST = "newest"
    OLDEST = "oldest"


@dataclass(frozen=True)
class VisionPolicy:
    """How the vision stage schedules calls. These are also the ``[vision]`` config keys."""

    max_in_flight: int = 2
    """Model calls in flight at once, for the whole stage (every stream and every endpoint of
    this process together). An HTTP endpoint's own ``max_in_flight`` bounds that endpoint;
    one that sets none may take up to this many."""
    max_pending: int = 32
    """Frames waiting for a slot, per stream; beyond it the oldest are ``dropped(backlog)``
    (0: no frame waits; one that finds no free slot is dropped)."""
    staleness_ms: float = 2000.0
    """A frame older than this when it would be sent is ``dropped(stale)`` (0 disables)."""
    deadline_ms: float = 10000.0
    """A call running longer than this is ``failed(timeout)``."""
    order: ServeOrder = ServeOrder.NEWEST
    """Which waiting frame gets a free slot first: ``newest`` or ``oldest``."""
    poll_ms: float = 1.0
    """How often finished calls are collected while calls are in flight (Bytewax cannot be
    woken from another thread); lower adds less latency and costs more CPU."""
    inline: bool = False
    """Call the model in the worker's own thread, a frame at a time, instead of on the pool:
    for an in-process model that answers in well under a millisecond (``local``), where
    the hop to a thread and the poll that collects the result cost more than the call
    (the lockstep presets). Calls do not overlap and are not given up at ``deadline_ms``;
    an HTTP model is refused."""

    def __post_init__(self) -> None:
        at_least("vision.max_in_flight", self.max_in_flight, 1)
        at_least("vision.max_pending", self.max_pending, 0)
        at_least("vision.staleness_ms", self.staleness_ms, 0)
        greater_than("vision.deadline_ms", self.deadline_ms, 0)
        greater_than("vision.poll_ms", self.poll_ms, 0)
        object.__setattr__(self, "order", choice(ServeOrder, self.order, "vision.order"))


@dataclass
class VisionMetrics:
    """Counters of the stage, shared by its streams; read by the run summary."""

    submitted: int = 0
    completed: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    """HUD readings the backend did not trust (``VisionResult.rejected``), by field."""
    latency_ms: deque[float] = field(default_factory=lambda: deque(maxlen=10000))
    queue_wait_ms: deque[float] = field(default_factory=lambda: deque(maxlen=10000))
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    """Held while updating: several workers of one process share these counters."""
    on_sample: Callable[[str, float], None] | None = field(default=None, repr=False, compare=False)
    """Also called with ``("vision", call seconds)`` and ``("vision_queue", wait seconds)``
    (a metrics endpoint's histograms)."""

    def fail(self, reason: str) -> None:
        with self.lock:
            self.failures[reason] += 1

    @property
    def failed(self) -> int:
        """Calls that ended without a result, all reasons together."""
        return sum(self.failures.values())


def _timed_infer(backend: Any, frame: Frame, lease: Any = None) -> tuple[VisionResult, float]:
    t0 = time.perf_counter()
    result = backend.infer(frame) if lease is None else backend.infer_on(lease, frame)
    return result, (time.perf_counter() - t0) * 1000.0


class VisionStage:
    """The vision step's shared parts: backend, pool (the in-flight bound), counters, clock.

    >>> from operators.vision.local import LocalVisionBackend
    >>> stage = VisionStage(LocalVisionBackend(), VisionPolicy(max_in_flight=2))
    >>> queue = stage.for_stream()  # one per stream: offer / poll / next_wake / drain
    """

    name = "vision"

    def __init__(
        self,
        backend: VisionBackend,
        policy: VisionPolicy,
        *,
        pool: BoundedPool | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.backend = backend
        self.policy = policy
        if policy.inline and isinstance(backend, SupportsShare):
            msg = (
                f"vision.inline calls the model in the worker's thread, which would wait on "
                f"every call of the {getattr(backend, 'name', type(backend).__name__)!r} "
                "backend: inline is for an in-process model (local); set it false"
            )
            raise ValueError(msg)
        executor = InlineExecutor() if policy.inline else None
        self.pool = pool or BoundedPool("framewax-vision", policy.max_in_flight, executor)
        self.clock = clock
        self.stats = VisionMetrics()
        self.routed = isinstance(backend, RoutedBackend)
        enforces = isinstance(backend, EnforcesDeadline) and backend.enforces_deadline
        self.grace_ms = 500.0 if enforces else 0.0

    def for_stream(self) -> VisionQueue:
        return VisionQueue(self)

    def set_share(self, share: float) -> None:
        """A remote model's limits are the whole cluster's: with a backend that shares a
        server (:class:`~operators.stage.SupportsShare`, the HTTP backends) this process
        takes ``share`` of ``max_in_flight`` and of each endpoint's limit (its fraction of
        the streams), rounded down, at least 1. An in-process model is this process's own
        (its own cores): its limit stays what the config says, per process."""
        if not 0.0 < share <= 1.0:
            msg = f"share must be in (0, 1]; got {share}"
            raise ValueError(msg)
        if isinstance(self.backend, SupportsShare):
            self.pool.set_limit(share_of(self.policy.max_in_flight, share))
            self.backend.set_share(share)

    def warm_up(self) -> None:
        if isinstance(self.backend, SupportsWarmUp):
            self.backend.warm_up()

    def close(self) -> None:
        """Close the backend first (an HTTP backend aborts the calls still in flight, whose
        frames the drain has already resolved), then stop the pool's threads."""
        if isinstance(self.backend, SupportsClose):
            self.backend.close()
        self.pool.close()

    def sample_to(self, on_sample: Callable[[str, float], None] | None) -> None:
        """Report each item's timing to ``on_sample(name, seconds)`` (metrics histograms)."""
        self.stats.on_sample = on_sample

    def metrics(self) -> dict[str, Any]:
        m = self.stats
        with m.lock:
            out: dict[str, Any] = {
                "backend": getattr(self.backend, "name", type(self.backend).__name__),
                "submitted": m.submitted,
                "completed": m.completed,
                "failed": m.failed,
                "call_ms": percentiles(m.latency_ms),
                "queue_wait_ms": percentiles(m.queue_wait_ms),
                "peak_in_flight": self.pool.peak,
                "in_flight": self.pool.in_flight,
                "limit": self.pool.limit,
                "failures": dict(m.failures),
                "rejected": dict(m.rejected),
            }
        if isinstance(self.backend, SupportsMetrics):
            bm = self.backend.metrics()
            if "endpoints" in bm:
                eps = bm["endpoints"]
                out["retries"] = sum(e.get("retries", 0) for e in eps)
                out["endpoints"] = eps
            if bm.get("regions_without_text"):
                out["regions_without_text"] = bm["regions_without_text"]
            if bm.get("fields"):
                out["hud_fields"] = bm["fields"]
            if bm.get("recalibrate"):
                out["recalibrate"] = bm["recalibrate"]
        return out


Out = VisionResult | Outcome


class VisionQueue:
    """One stream's frames waiting for a slot and calls in flight (see the module doc)."""

    def __init__(self, stage: VisionStage) -> None:
        self.stage = stage
        self.pending: deque[Frame] = deque()
        # future -> (frame, sent at); in send order, so the oldest is first.
        self.inflight: dict[Future[tuple[VisionResult, float]], tuple[Frame, float]] = {}
        # Finished futures, appended by the pool threads (deque.append is atomic),
        # so a poll costs O(finished), not O(in flight).
        self.finished: deque[Future[tuple[VisionResult, float]]] = deque()
        self.deferred: list[Outcome] = []
        self.progress_at = stage.clock.now()

    # -- StreamLogic ---------------------------------------------------------------
    def offer(self, frames: list[Frame]) -> list[Out]:
        self.pending.extend(frames)
        return self._pump()

    def poll(self) -> list[Out]:
        return self._pump()

    def next_wake(self) -> float | None:
        if self.inflight or self.pending or self.deferred:
            return self.stage.clock.now() + self.stage.policy.poll_ms / 1000.0
        return None

    def drain(self, until: float | None = None) -> list[Out]:
        """Finish the stream: every call ends by its own deadline, every waiting frame gets a
        slot or, once no slot has freed for a whole call deadline, ``dropped(shutdown)``."""
        st, pol = self.stage, self.stage.policy
        clock = st.clock
        out = self._pump()
        limit_ms = pol.deadline_ms + st.grace_ms
        more, why = pump_until_done(
            clock,
            busy=lambda: bool(self.inflight or self.pending),
            running=lambda: bool(self.inflight),
            pump=self._pump,
            progress_at=lambda: self.progress_at,
            stall_s=limit_ms / 1000.0,
            stall_why=f"no slot freed within {limit_ms:.0f} ms",
            poll_s=pol.poll_ms / 1000.0,
            until=until,
        )
        out.extend(more)
        for frame, _sent in self.inflight.values():
            out.append(Outcome.failed(frame, "timeout", f"still in flight {why}"))
            st.stats.fail("timeout")
        out.extend(Outcome.dropped(f, "shutdown", f"no slot {why}") for f in self.pending)
        out.extend(self.deferred)
        self.deferred = []
        self.inflight.clear()
        self.pending.clear()
        return out

    # -- the schedule ----------------------------------------------------------------
    def _pump(self) -> list[Out]:
        st = self.stage
        now = st.clock.now()
        out: list[Out] = []
        # Drops decided with the last harvest go out now, after the results did:
        # a result shares its activation with no bulk of drops to order and sink.
        carried, self.deferred = self.deferred, []
        self._collect(now, out)
        out.extend(self._expire(now))
        drops = self._stale(now)
        self._send(now, drops)
        self._collect(now, out)  # what an inline pool has already answered
        drops.extend(self._backlog())
        if drops and any(isinstance(r, VisionResult) for r in out):
            self.deferred = drops  # next poll, a millisecond from now (deferred once only)
            return carried + out
        return carried + drops + out

    def _collect(self, now: float, out: list[Out]) -> None:
        while self.finished:
            fut = self.finished.popleft()
            entry = self.inflight.pop(fut, None)
            if entry is not None:  # else: given up at its deadline, already failed
                out.append(self._harvest(fut, *entry))
                self.progress_at = now

    def _expire(self, now: float) -> list[Outcome]:
        """Give up calls past their deadline (the dict is in send order: oldest first)."""
        st, pol = self.stage, self.stage.policy
        limit = (pol.deadline_ms + st.grace_ms) / 1000.0
        out = []
        while self.inflight:
            fut, (frame, sent) = next(iter(self.inflight.items()))
            if now - sent <= limit:
                break
            del self.inflight[fut]
            self.progress_at = now  # its slot may free soon: wait a deadline for it
            st.stats.fail("timeout")
            out.append(
                Outcome.failed(frame, "timeout", f"no result within {pol.deadline_ms:.0f} ms")
            )
        return out

    def _stale(self, now: float) -> list[Outcome]:
        """Frames that waited past the staleness budget are not worth a call any more."""
        pol = self.stage.policy
        drops: list[Outcome] = []
        budget = pol.staleness_ms / 1000.0
        if budget > 0 and self.pending and now - self.pending[0].captured_at > budget:
            keep: deque[Frame] = deque()
            for f in self.pending:
                if now - f.captured_at > budget:
                    waited = (now - f.captured_at) * 1000
                    drops.append(Outcome.dropped(f, "stale", f"waited {waited:.0f} ms"))
                else:
                    keep.append(f)
            self.pending = keep
        return drops

    def _backlog(self) -> list[Outcome]:
        """What still waits once the free slots are taken is bounded: the oldest go."""
        limit = self.stage.policy.max_pending
        drops = []
        while len(self.pending) > limit:
            f = self.pending.popleft()
            drops.append(Outcome.dropped(f, "backlog", f"queue over {limit}"))
        return drops

    def _send(self, now: float, drops: list[Outcome]) -> None:
        st, pol = self.stage, self.stage.policy
        sent_newest = False
        while self.pending and st.pool.try_acquire():
            lease = None
            if st.routed:
                lease = st.backend.reserve()  # type: ignore[attr-defined]
                if lease is None:  # every endpoint is full: wait here, under the budget
                    st.pool.release()
                    break
            newest = pol.order is ServeOrder.NEWEST
            f = self.pending.pop() if newest else self.pending.popleft()
            waited = now - f.captured_at
            with st.stats.lock:
                st.stats.submitted += 1
                st.stats.queue_wait_ms.append(waited * 1000.0)
            if st.stats.on_sample is not None:
                st.stats.on_sample("vision_queue", waited)
            fut = st.pool.submit(_timed_infer, st.backend, f, lease)
            self.inflight[fut] = (f, now)
            fut.add_done_callback(self.finished.append)
            self.progress_at = now
            sent_newest = newest
        if sent_newest and self.pending:
            # Newest-first: frames older than the ones just sent would only hold
            # the ordered output back until they went stale; drop them now.
            drops.extend(
                Outcome.dropped(f, "superseded", "a newer frame took the free slot")
                for f in self.pending
            )
            self.pending.clear()

    def _harvest(self, fut: Future[tuple[VisionResult, float]], frame: Frame, sent: float) -> Out:
        m, backend = self.stage.stats, self.stage.backend
        try:
            result, ms = fut.result()
        except StageError as ex:
            m.fail(ex.reason)
            return Outcome.failed(frame, ex.reason, ex.detail)
        except Exception as ex:  # a backend bug must not stop the flow
            logger.exception(
                "vision backend %s failed on %s#%s", backend.name, frame.stream_id, frame.seq
            )
            m.fail("error")
            return Outcome.failed(frame, "error", f"{type(ex).__name__}: {ex}")
        if not isinstance(result, VisionResult) or (result.stream_id, result.seq) != (
            frame.stream_id,
            frame.seq,
        ):
            m.fail("error")
            return Outcome.failed(
                frame, "error", f"backend returned {result!r} for seq {frame.seq}"
            )
        with m.lock:
            m.completed += 1
            m.latency_ms.append(ms)
            m.rejected.update(f for f, _why in result.rejected)
        if m.on_sample is not None:
            m.on_sample("vision", ms / 1000.0)
        return dataclasses.replace(result, queue_ms=max(0.0, (sent - frame.captured_at) * 1000.0))
